//! The number inventory: orders that acquire numbers, reading and listing numbers, updating
//! their product type and calling name, and the deletion queue (delete, restore, purge).
//! Order input is parsed and checked before the order's transaction opens.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set};

use super::Requester;
use crate::domain::phone_number::{self as rules, CallingName, E164, NumberStatus, ProductType};
use crate::error::Result;
use crate::store::db::entities::enums::NumberStatus as Stored;
use crate::store::db::entities::phone_number;
use crate::store::db::history::list_periods;
use crate::store::db::numbers::{
    NumberFilter, lock_number, lock_number_row, number_not_found, number_state, numbers_query,
    update_number_row,
};
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::views::{AssignmentPeriod, NumberView};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};
use crate::store::engine::set_run::{BatchItem, BatchOptions, ItemResult};

/// Fields of a number to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct NumberUpdate {
    pub product_type: Option<ProductType>,
    pub calling_name: Option<CallingName>,
}

/// An item of BatchUpdatePhoneNumbers.
#[derive(Debug, Clone)]
pub struct NumberUpdateItem {
    pub number: E164,
    pub update: NumberUpdate,
}

/// Numbers removed from the deletion queue per purge mutation.
const PURGE_CHUNK: u64 = 1000;

/// The number inventory: the store's surface for it.
pub struct Inventory<'a> {
    engine: &'a Engine,
    /// How long a deleted number stays restorable.
    deletion_queue_period: chrono::Duration,
}

impl<'a> Inventory<'a> {
    pub(crate) fn new(engine: &'a Engine, deletion_queue_period: chrono::Duration) -> Self {
        Self {
            engine,
            deletion_queue_period,
        }
    }

    pub async fn get(&self, e164: &str) -> Result<NumberView> {
        let number = NumberView::from(
            phone_number::Entity::find_by_id(e164)
                .one(self.engine.reader())
                .await?
                .ok_or_else(|| number_not_found(e164))?,
        );
        if !rules::exists_at(&number_state(&number), crate::store::db::now()) {
            return Err(number_not_found(e164).into());
        }
        Ok(number)
    }

    /// Numbers in E.164 order, filtered. Every combination of filters is served by an index that
    /// ends in `e164` (migrations m0002 and m0008), so a page costs the same however large the
    /// inventory.
    pub async fn list(
        &self,
        filter: &NumberFilter,
        page: &PageRequest,
    ) -> Result<Page<NumberView>> {
        // A number with an account or a user is ASSIGNED (a table constraint): beside those
        // filters, ASSIGNED adds nothing and another status matches nothing. So no index is
        // needed for account and status together.
        let owned = filter.account_id.is_some() || filter.user_id.is_some();
        let status = match filter.status {
            Some(NumberStatus::Assigned) if owned => None,
            Some(_) if owned => return Ok(page.finish(Vec::new(), |n| n.e164.clone())),
            status => status,
        };
        let query = numbers_query(
            filter,
            status,
            page.after.as_deref(),
            crate::store::db::now(),
        );
        let numbers = query
            .limit(page.fetch_limit())
            .all(self.engine.reader())
            .await?
            .into_iter()
            .map(NumberView::from)
            .collect();
        Ok(page.finish(numbers, |n| n.e164.clone()))
    }

    pub async fn update(&self, number: &E164, update: NumberUpdate) -> Result<NumberView> {
        self.engine
            .write(UpdatePhoneNumber {
                number: number.clone(),
                update,
            })
            .await
    }

    /// BatchUpdatePhoneNumbers: each item as [`Inventory::update`] would answer it.
    pub async fn batch_update(
        &self,
        items: Vec<BatchItem<NumberUpdateItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<NumberView>>> {
        let items = items
            .into_iter()
            .map(|item| {
                item.map(|item| UpdatePhoneNumber {
                    number: item.number,
                    update: item.update,
                })
            })
            .collect();
        self.engine
            .run_each("BatchUpdatePhoneNumbers", items, options, caller.scope())
            .await
    }

    /// Moves an unassigned number into the deletion queue.
    pub async fn delete(&self, e164: &str) -> Result<NumberView> {
        self.engine
            .write(DeletePhoneNumber {
                e164: e164.to_owned(),
                deletion_queue_period: self.deletion_queue_period,
            })
            .await
    }

    /// BatchDeletePhoneNumbers: each item as [`Inventory::delete`] would answer it.
    pub async fn batch_delete(
        &self,
        items: Vec<BatchItem<E164>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<NumberView>>> {
        let period = self.deletion_queue_period;
        let items = items
            .into_iter()
            .map(|item| {
                item.map(|number| DeletePhoneNumber {
                    e164: number.as_str().to_owned(),
                    deletion_queue_period: period,
                })
            })
            .collect();
        self.engine
            .run_each("BatchDeletePhoneNumbers", items, options, caller.scope())
            .await
    }

    /// Brings a number back from the deletion queue as unassigned.
    pub async fn restore(&self, e164: &str) -> Result<NumberView> {
        self.engine
            .write(RestorePhoneNumber {
                e164: e164.to_owned(),
            })
            .await
    }

    /// Removes numbers whose deletion time has passed, chunk by chunk; returns how many went.
    pub async fn purge_deleted(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = self.engine.write(PurgeDeletedNumbers { now }).await?;
            total += deleted;
            if deleted < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// The periods `e164` was held, newest first; only `account`'s when given.
    pub async fn history(
        &self,
        e164: &str,
        account: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AssignmentPeriod>> {
        list_periods(self.engine.reader(), e164, account, page).await
    }
}

struct UpdatePhoneNumber {
    pub number: E164,
    pub update: NumberUpdate,
}

impl Mutation for UpdatePhoneNumber {
    type Output = NumberView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, NumberView> {
        Box::pin(update_phone_number(txn, self))
    }
}

async fn update_phone_number(
    txn: &DatabaseTransaction,
    cmd: &UpdatePhoneNumber,
) -> Result<NumberView> {
    let mut row = lock_number(txn, cmd.number.as_str()).await?;
    let state = number_state(&row);
    let now = crate::store::db::now();
    let mut model = phone_number::ActiveModel {
        update_time: Set(now),
        ..Default::default()
    };
    if let Some(product_type) = cmd.update.product_type {
        rules::check_product_type_change(&state, &cmd.number, product_type)?;
        model.product_type = Set(product_type.into());
        row.product_type = product_type;
    }
    if let Some(calling_name) = &cmd.update.calling_name {
        model.calling_name = Set(calling_name.to_string());
        row.calling_name = calling_name.to_string();
    }
    row.update_time = now;
    update_number_row(txn, cmd.number.as_str(), model).await?;
    Ok(row)
}

struct DeletePhoneNumber {
    pub e164: String,
    pub deletion_queue_period: chrono::Duration,
}

impl Mutation for DeletePhoneNumber {
    type Output = NumberView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, NumberView> {
        Box::pin(delete_phone_number(txn, self))
    }
}

/// Moves an unassigned number into the deletion queue.
async fn delete_phone_number(
    txn: &DatabaseTransaction,
    cmd: &DeletePhoneNumber,
) -> Result<NumberView> {
    let mut row = lock_number(txn, &cmd.e164).await?;
    rules::check_delete(&number_state(&row))?;
    let now = crate::store::db::now();
    row.status = NumberStatus::DeleteInProgress;
    row.deletion_time = Some(rules::deletion_time(now, cmd.deletion_queue_period));
    row.update_time = now;
    update_number_row(
        txn,
        &cmd.e164,
        phone_number::ActiveModel {
            status: Set(row.status.into()),
            deletion_time: Set(row.deletion_time),
            update_time: Set(now),
            ..Default::default()
        },
    )
    .await?;
    Ok(row)
}

struct RestorePhoneNumber {
    pub e164: String,
}

impl Mutation for RestorePhoneNumber {
    type Output = NumberView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, NumberView> {
        Box::pin(restore_phone_number(txn, self))
    }
}

/// Brings a number back from the deletion queue as unassigned.
async fn restore_phone_number(
    txn: &DatabaseTransaction,
    cmd: &RestorePhoneNumber,
) -> Result<NumberView> {
    let mut row = lock_number_row(txn, &cmd.e164)
        .await?
        .ok_or_else(|| number_not_found(&cmd.e164))?;
    let now = crate::store::db::now();
    rules::check_restore(&number_state(&row), now)?;
    row.status = NumberStatus::Unassigned;
    row.deletion_time = None;
    row.update_time = now;
    update_number_row(
        txn,
        &cmd.e164,
        phone_number::ActiveModel {
            status: Set(row.status.into()),
            deletion_time: Set(None),
            update_time: Set(now),
            ..Default::default()
        },
    )
    .await?;
    Ok(row)
}

/// Removes up to [`PURGE_CHUNK`] numbers whose deletion time has passed.
struct PurgeDeletedNumbers {
    now: DateTime<Utc>,
}

impl Mutation for PurgeDeletedNumbers {
    type Output = u64;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, u64> {
        Box::pin(async move {
            let expired: Vec<String> = phone_number::Entity::find()
                .select_only()
                .column(phone_number::Column::E164)
                .filter(
                    phone_number::Column::Status.eq(Stored::from(NumberStatus::DeleteInProgress)),
                )
                .filter(phone_number::Column::DeletionTime.lte(self.now))
                .limit(PURGE_CHUNK)
                .into_tuple()
                .all(txn)
                .await?;
            if expired.is_empty() {
                return Ok(0);
            }
            Ok(phone_number::Entity::delete_many()
                .filter(phone_number::Column::E164.is_in(expired))
                .exec(txn)
                .await?
                .rows_affected)
        })
    }
}
