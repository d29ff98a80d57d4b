//! The number inventory: orders that acquire numbers, reading and listing numbers, updating
//! their product type and calling name, and the deletion queue (delete, restore, purge).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde::{Deserialize, Serialize};

use super::Store;
use super::entities::{phone_number, phone_number_order};
use super::page::{Page, PageRequest};
use super::telephony::number_state;
use crate::domain::phone_number::{
    self as rules, E164, NumberStatus, ProductType, check_product_type,
};
use crate::domain::{DomainError, account::new_id};
use crate::error::{Error, Result};

/// The outcome of one number of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Normalised E.164, or the input as given when it could not be parsed.
    pub e164: String,
    pub acquired: bool,
    pub reason: String,
}

/// An order with its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub order: phone_number_order::Model,
    pub items: Vec<OrderItem>,
}

/// Filters of `list_phone_numbers`; `None` means no filter on that field.
#[derive(Debug, Clone, Default)]
pub struct NumberFilter {
    pub status: Option<NumberStatus>,
    pub product_type: Option<ProductType>,
    pub account_id: Option<String>,
    pub user_id: Option<String>,
}

/// Fields of a number to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct NumberUpdate {
    pub product_type: Option<ProductType>,
    pub calling_name: Option<String>,
}

fn order_status(items: &[OrderItem]) -> &'static str {
    let acquired = items.iter().filter(|i| i.acquired).count();
    match acquired {
        0 => "FAILED",
        n if n == items.len() => "SUCCESSFUL",
        _ => "PARTIAL",
    }
}

fn not_found(e164: &str) -> DomainError {
    DomainError::NotFound {
        resource: "phone number",
        name: e164.to_owned(),
    }
}

impl Store {
    /// Acquires every number that is valid, suits the product type and is not in the inventory
    /// yet. Each failure is recorded with its reason; the others still succeed.
    pub async fn create_phone_number_order(
        &self,
        product_type: ProductType,
        requested: &[String],
    ) -> Result<OrderRecord> {
        let now = Utc::now();
        let order_id = new_id();
        let txn = self.begin_write().await?;
        let mut items = Vec::with_capacity(requested.len());
        let mut seen = std::collections::HashSet::new();
        for raw in requested {
            let parsed = match E164::parse("e164_phone_numbers", raw) {
                Ok(parsed) => parsed,
                Err(e) => {
                    // Echo what was sent, but not a megabyte of it.
                    let shown = crate::domain::truncate(raw.trim(), 64);
                    items.push(failed(shown, reason_of(&e)));
                    continue;
                }
            };
            let e164 = parsed.to_string();
            if !seen.insert(e164.clone()) {
                items.push(failed(
                    e164,
                    "the number appears more than once in this order".into(),
                ));
                continue;
            }
            if let Err(e) = check_product_type(&parsed, product_type) {
                items.push(failed(e164, reason_of(&e)));
                continue;
            }
            // A number whose deletion time has passed is gone, even before the purge runs.
            let stale = phone_number::Entity::find_by_id(e164.as_str())
                .lock_exclusive()
                .one(&txn)
                .await?
                .filter(|row| number_state(row).is_ok_and(|state| !rules::exists_at(&state, now)));
            if stale.is_some() {
                phone_number::Entity::delete_by_id(e164.as_str())
                    .exec(&txn)
                    .await?;
            }
            let row = phone_number::ActiveModel {
                e164: Set(e164.clone()),
                country: Set(parsed.country().to_owned()),
                number_type: Set(parsed.number_type().as_str().to_owned()),
                product_type: Set(product_type.as_str().to_owned()),
                status: Set(NumberStatus::Unassigned.as_str().to_owned()),
                account_id: Set(None),
                user_id: Set(None),
                associate_time: Set(None),
                calling_name: Set(String::new()),
                order_id: Set(order_id.clone()),
                create_time: Set(now),
                update_time: Set(now),
                deletion_time: Set(None),
            };
            let inserted = phone_number::Entity::insert(row)
                .on_conflict_do_nothing_on([phone_number::Column::E164])
                .exec_without_returning(&txn)
                .await?;
            if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
                items.push(OrderItem {
                    e164,
                    acquired: true,
                    reason: String::new(),
                });
            } else {
                items.push(failed(
                    e164,
                    "the number is already in the inventory".into(),
                ));
            }
        }
        let order = phone_number_order::ActiveModel {
            id: Set(order_id),
            product_type: Set(product_type.as_str().to_owned()),
            status: Set(order_status(&items).to_owned()),
            items: Set(serde_json::to_string(&items)
                .map_err(|e| Error::Internal(format!("order items not storable: {e}")))?),
            create_time: Set(now),
        }
        .insert(&txn)
        .await?;
        self.commit(txn, false).await?;
        Ok(OrderRecord { order, items })
    }

    pub async fn get_phone_number_order(&self, order_id: &str) -> Result<OrderRecord> {
        let order = phone_number_order::Entity::find_by_id(order_id)
            .one(self.connection())
            .await?
            .ok_or_else(|| DomainError::NotFound {
                resource: "phone number order",
                name: order_id.to_owned(),
            })?;
        let items = serde_json::from_str(&order.items)
            .map_err(|e| Error::Internal(format!("order {order_id} items unreadable: {e}")))?;
        Ok(OrderRecord { order, items })
    }

    pub async fn get_phone_number(&self, e164: &str) -> Result<phone_number::Model> {
        let row = phone_number::Entity::find_by_id(e164)
            .one(self.connection())
            .await?
            .ok_or_else(|| not_found(e164))?;
        if !rules::exists_at(&number_state(&row)?, Utc::now()) {
            return Err(not_found(e164).into());
        }
        Ok(row)
    }

    /// Numbers in E.164 order, filtered. Every combination of filters is served by an index that
    /// ends in `e164` (migration m0002), so a page costs the same however large the inventory.
    pub async fn list_phone_numbers(
        &self,
        filter: &NumberFilter,
        page: &PageRequest,
    ) -> Result<Page<phone_number::Model>> {
        // A number with an account or a user is ASSIGNED (a table constraint): beside those
        // filters, ASSIGNED adds nothing and another status matches nothing. So no index is
        // needed for account and status together.
        let owned = filter.account_id.is_some() || filter.user_id.is_some();
        let status = match filter.status {
            Some(NumberStatus::Assigned) if owned => None,
            Some(_) if owned => return Ok(page.finish(Vec::new(), |n| n.e164.clone())),
            status => status,
        };
        let now = Utc::now();
        let mut query = phone_number::Entity::find()
            // Numbers past their deletion time are gone, purged or not.
            .filter(
                Condition::any()
                    .add(phone_number::Column::DeletionTime.is_null())
                    .add(phone_number::Column::DeletionTime.gt(now)),
            )
            .order_by_asc(phone_number::Column::E164);
        if let Some(status) = status {
            query = query.filter(phone_number::Column::Status.eq(status.as_str()));
        }
        if let Some(product_type) = filter.product_type {
            query = query.filter(phone_number::Column::ProductType.eq(product_type.as_str()));
        }
        if let Some(account_id) = &filter.account_id {
            query = query.filter(phone_number::Column::AccountId.eq(account_id.as_str()));
        }
        if let Some(user_id) = &filter.user_id {
            query = query.filter(phone_number::Column::UserId.eq(user_id.as_str()));
        }
        if let Some(after) = &page.after {
            query = query.filter(phone_number::Column::E164.gt(after.as_str()));
        }
        let rows = query
            .limit(page.fetch_limit())
            .all(self.connection())
            .await?;
        Ok(page.finish(rows, |n| n.e164.clone()))
    }

    pub async fn update_phone_number(
        &self,
        number: &E164,
        update: NumberUpdate,
    ) -> Result<phone_number::Model> {
        let txn = self.begin_write().await?;
        let row = self.lock_number(&txn, number.as_str()).await?;
        let state = number_state(&row)?;
        if let Some(product_type) = update.product_type {
            rules::check_product_type_change(&state, number, product_type)?;
        }
        let mut model: phone_number::ActiveModel = row.into();
        if let Some(product_type) = update.product_type {
            model.product_type = Set(product_type.as_str().to_owned());
        }
        if let Some(calling_name) = update.calling_name {
            model.calling_name = Set(calling_name);
        }
        model.update_time = Set(Utc::now());
        let updated = model.update(&txn).await?;
        self.commit(txn, false).await?;
        Ok(updated)
    }

    /// Moves an unassigned number into the deletion queue.
    pub async fn delete_phone_number(&self, e164: &str) -> Result<phone_number::Model> {
        let txn = self.begin_write().await?;
        let row = self.lock_number(&txn, e164).await?;
        rules::check_delete(&number_state(&row)?)?;
        let now = Utc::now();
        let mut model: phone_number::ActiveModel = row.into();
        model.status = Set(NumberStatus::DeleteInProgress.as_str().to_owned());
        model.deletion_time = Set(Some(now + self.deletion_queue_period()));
        model.update_time = Set(now);
        let updated = model.update(&txn).await?;
        self.commit(txn, false).await?;
        Ok(updated)
    }

    /// Brings a number back from the deletion queue as unassigned.
    pub async fn restore_phone_number(&self, e164: &str) -> Result<phone_number::Model> {
        let txn = self.begin_write().await?;
        let row = phone_number::Entity::find_by_id(e164)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| not_found(e164))?;
        let now = Utc::now();
        rules::check_restore(&number_state(&row)?, now)?;
        let mut model: phone_number::ActiveModel = row.into();
        model.status = Set(NumberStatus::Unassigned.as_str().to_owned());
        model.deletion_time = Set(None);
        model.update_time = Set(now);
        let updated = model.update(&txn).await?;
        self.commit(txn, false).await?;
        Ok(updated)
    }

    /// Removes numbers whose deletion time has passed; returns how many went.
    pub async fn purge_deleted_numbers(&self, now: DateTime<Utc>) -> Result<u64> {
        let result = phone_number::Entity::delete_many()
            .filter(phone_number::Column::Status.eq(NumberStatus::DeleteInProgress.as_str()))
            .filter(phone_number::Column::DeletionTime.lte(now))
            .exec(self.connection())
            .await?;
        Ok(result.rows_affected)
    }
}

fn failed(e164: String, reason: String) -> OrderItem {
    OrderItem {
        e164,
        acquired: false,
        reason,
    }
}

/// The human part of a validation error, without the field name.
fn reason_of(err: &DomainError) -> String {
    match err {
        DomainError::InvalidArgument(violations) => violations
            .iter()
            .map(|v| v.description.clone())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
