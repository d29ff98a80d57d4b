//! The number inventory: reading and listing numbers, updating their product type and calling
//! name, and the deletion queue (delete, restore, purge).
//!
//! Updating and deleting are set use cases: `UpdatePhoneNumber` and `DeletePhoneNumber` are
//! them with one item, their batch RPCs with many. The numbers of every item are read (and on
//! PostgreSQL locked) in a query per chunk; each item is decided in order by
//! `domain::phone_number` against the state the earlier items left, so that a number named twice
//! is decided as two requests would be; the successes are written with one UPDATE per chunk.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set};

use super::Requester;
use crate::domain::ids::AccountId;
use crate::domain::phone_number::{self as rules, CallingName, E164, NumberStatus, ProductType};
use crate::error::Result;
use crate::store::db::direct_rows::{phone_number_row, sqlite_statement};
use crate::store::db::distinct;
use crate::store::db::entities::enums::NumberStatus as Stored;
use crate::store::db::entities::phone_number;
use crate::store::db::history::list_periods;
use crate::store::db::numbers::{
    NumberFilter, lock_number_row, lock_numbers, number_not_found, number_state, numbers_query,
    queue_for_deletion, update_number_row, write_number_fields,
};
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::views::{AssignmentPeriod, NumberView};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};
use crate::store::engine::set_run::{Apply, BatchItem, BatchOptions, ItemResult, SetUseCase};

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

    pub async fn get(&self, e164: &E164) -> Result<NumberView> {
        let number = NumberView::from(
            phone_number::Entity::find_by_id(e164.as_str())
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
            Some(_) if owned => return Ok(page.finish(Vec::new(), |n| n.e164.to_string())),
            status => status,
        };
        let query = numbers_query(
            filter,
            status,
            page.after.as_deref(),
            crate::store::db::now(),
        )
        .limit(page.fetch_limit());
        // On SQLite, straight from the file on this thread (see `engine::sqlite_reads`).
        let direct = self.engine.direct().and_then(|direct| {
            let (sql, values) = sqlite_statement(&query)?;
            direct.read_many(&sql, params_from_iter(values), phone_number_row)
        });
        let rows = match direct {
            Some(rows) => rows,
            None => query.all(self.engine.reader()).await?,
        };
        let numbers = rows.into_iter().map(NumberView::from).collect();
        Ok(page.finish(numbers, |n| n.e164.to_string()))
    }

    pub async fn update(&self, number: &E164, update: NumberUpdate) -> Result<NumberView> {
        let item = NumberUpdateItem {
            number: number.clone(),
            update,
        };
        self.engine.run_one(UpdateNumbers, item, None).await
    }

    /// BatchUpdatePhoneNumbers: each item as [`Inventory::update`] would answer it.
    pub async fn batch_update(
        &self,
        items: Vec<BatchItem<NumberUpdateItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<NumberView>>> {
        self.engine
            .run_set(
                "BatchUpdatePhoneNumbers",
                UpdateNumbers,
                items,
                options,
                caller.scope(),
            )
            .await
    }

    /// Moves an unassigned number into the deletion queue.
    pub async fn delete(&self, number: &E164) -> Result<NumberView> {
        self.engine
            .run_one(self.delete_numbers(), number.clone(), None)
            .await
    }

    /// BatchDeletePhoneNumbers: each item as [`Inventory::delete`] would answer it.
    pub async fn batch_delete(
        &self,
        items: Vec<BatchItem<E164>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<NumberView>>> {
        self.engine
            .run_set(
                "BatchDeletePhoneNumbers",
                self.delete_numbers(),
                items,
                options,
                caller.scope(),
            )
            .await
    }

    fn delete_numbers(&self) -> DeleteNumbers {
        DeleteNumbers {
            deletion_queue_period: self.deletion_queue_period,
        }
    }

    /// Brings a number back from the deletion queue as unassigned.
    pub async fn restore(&self, e164: &E164) -> Result<NumberView> {
        self.engine
            .write(RestorePhoneNumber { e164: e164.clone() })
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
        e164: &E164,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<AssignmentPeriod>> {
        list_periods(self.engine.reader(), e164, account, page).await
    }
}

/// The use case; it needs nothing beyond its items.
#[derive(PartialEq, Eq)]
pub(crate) struct UpdateNumbers;

impl SetUseCase for UpdateNumbers {
    type Item = NumberUpdateItem;
    type Output = NumberView;
    const APPENDS_CHANGES: bool = false;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a NumberUpdateItem>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<NumberView>>> {
        Box::pin(update_all(txn, items, apply))
    }
}

/// Each item changes its number as the earlier items left it; each changed number is written
/// once, as the last of its items left it.
async fn update_all(
    txn: &DatabaseTransaction,
    items: Vec<&NumberUpdateItem>,
    apply: Apply,
) -> Result<Vec<Result<NumberView>>> {
    let now = crate::store::db::now();
    let mut numbers = lock_numbers(txn, &distinct(items.iter().map(|i| &i.number))).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut changed = Vec::new();
    for item in &items {
        let outcome = existing(&mut numbers, &item.number, now).and_then(|number| {
            if let Some(product_type) = item.update.product_type {
                rules::check_product_type_change(
                    &number_state(number),
                    &item.number,
                    product_type,
                )?;
                number.product_type = product_type;
            }
            if let Some(calling_name) = &item.update.calling_name {
                number.calling_name = calling_name.to_string();
            }
            number.update_time = now;
            Ok(number.clone())
        });
        if outcome.is_ok() {
            changed.push(&item.number);
        }
        outcomes.push(outcome);
    }
    if apply.writes(items.len(), items.len() - changed.len()) {
        let written: Vec<&NumberView> = distinct(changed.into_iter())
            .into_iter()
            .filter_map(|e164| numbers.get(e164))
            .collect();
        write_number_fields(txn, &written, now).await?;
    }
    Ok(outcomes)
}

/// The use case, with the deletion queue's period.
#[derive(PartialEq, Eq)]
pub(crate) struct DeleteNumbers {
    /// How long a deleted number stays restorable.
    pub deletion_queue_period: chrono::Duration,
}

impl SetUseCase for DeleteNumbers {
    type Item = E164;
    type Output = NumberView;
    const APPENDS_CHANGES: bool = false;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a E164>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<NumberView>>> {
        Box::pin(delete_all(txn, self, items, apply))
    }
}

/// Each item moves an unassigned number into the deletion queue, decided against the state the
/// earlier items left (a number named twice is already queued the second time); every queued
/// number gets the same deletion time.
async fn delete_all(
    txn: &DatabaseTransaction,
    use_case: &DeleteNumbers,
    items: Vec<&E164>,
    apply: Apply,
) -> Result<Vec<Result<NumberView>>> {
    let now = crate::store::db::now();
    let deletion_time = rules::deletion_time(now, use_case.deletion_queue_period);
    let mut numbers = lock_numbers(txn, &distinct(items.iter().copied())).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut queued = Vec::new();
    for number in &items {
        let outcome = existing(&mut numbers, number, now).and_then(|row| {
            rules::check_delete(&number_state(row))?;
            row.status = NumberStatus::DeleteInProgress;
            row.deletion_time = Some(deletion_time);
            row.update_time = now;
            Ok(row.clone())
        });
        if outcome.is_ok() {
            queued.push(*number);
        }
        outcomes.push(outcome);
    }
    if apply.writes(items.len(), items.len() - queued.len()) {
        queue_for_deletion(txn, &queued, deletion_time, now).await?;
    }
    Ok(outcomes)
}

/// The number `e164` of those read, as the earlier items left it; NOT_FOUND when it is not (or
/// no longer) in the inventory.
fn existing<'n>(
    numbers: &'n mut HashMap<E164, NumberView>,
    e164: &E164,
    now: DateTime<Utc>,
) -> Result<&'n mut NumberView> {
    numbers
        .get_mut(e164)
        .filter(|number| rules::exists_at(&number_state(number), now))
        .ok_or_else(|| number_not_found(e164).into())
}

struct RestorePhoneNumber {
    pub e164: E164,
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
