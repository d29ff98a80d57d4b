//! The number inventory: orders that acquire numbers, reading and listing numbers, updating
//! their product type and calling name, and the deletion queue (delete, restore, purge).
//! Order input is parsed and checked before the order's transaction opens.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::Store;
use super::entities::enums::{self, NumberStatus as Stored};
use super::entities::{phone_number, phone_number_order};
use super::page::{Page, PageRequest};
use super::views::{NumberView, OrderRecord};
use super::writer::{Mutation, TxnFuture};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::phone_number::{
    self as rules, CallingName, E164, NumberState, NumberStatus, NumberType, OrderStatus,
    ProductType, check_product_type,
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

/// Filters of `list_phone_numbers`; `None` means no filter on that field.
#[derive(Debug, Clone, Default)]
pub struct NumberFilter {
    pub status: Option<NumberStatus>,
    pub product_type: Option<ProductType>,
    pub account_id: Option<AccountId>,
    pub user_id: Option<UserId>,
    /// Numbers whose E.164 form starts with this ("+" and digits).
    pub e164_prefix: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub number_type: Option<NumberType>,
}

/// Fields of a number to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct NumberUpdate {
    pub product_type: Option<ProductType>,
    pub calling_name: Option<CallingName>,
}

fn order_status(items: &[OrderItem]) -> OrderStatus {
    OrderStatus::of(items.iter().filter(|i| i.acquired).count(), items.len())
}

/// Whether a key of `account` (`None`: an organisation key) may see the number: an
/// account-scoped key sees unassigned numbers (to assign them) and its account's numbers. Every
/// answer about a number, reads and assignments alike, hides the others the same way.
pub fn visible_to(account: Option<&str>, number: &NumberView) -> bool {
    match account {
        None => true,
        Some(own) => {
            number.status == NumberStatus::Unassigned || number.account_id.as_deref() == Some(own)
        }
    }
}

pub(super) fn not_found(e164: &str) -> DomainError {
    DomainError::NotFound {
        resource: "phone number",
        name: e164.to_owned(),
    }
}

/// Numbers removed from the deletion queue per purge mutation.
const PURGE_CHUNK: u64 = 1000;

// ---------------------------------------------------------------------------------------------
// Repository functions: one query each.
// ---------------------------------------------------------------------------------------------

/// The domain's view of a stored number.
pub(super) fn number_state(number: &NumberView) -> NumberState {
    NumberState {
        e164: number.e164.clone(),
        status: number.status,
        product_type: number.product_type,
        deletion_time: number.deletion_time,
    }
}

/// The number's row, locked, whether or not its deletion time has passed.
async fn lock_number_row(txn: &DatabaseTransaction, e164: &str) -> Result<Option<NumberView>> {
    Ok(phone_number::Entity::find_by_id(e164)
        .lock_exclusive()
        .one(txn)
        .await?
        .map(NumberView::from))
}

/// The number's row, locked; NOT_FOUND when it is not (or no longer) in the inventory.
pub(super) async fn lock_number(txn: &DatabaseTransaction, e164: &str) -> Result<NumberView> {
    match lock_number_row(txn, e164).await? {
        Some(number) if rules::exists_at(&number_state(&number), super::now()) => Ok(number),
        _ => Err(not_found(e164).into()),
    }
}

/// Writes the columns set in `model` to the number's row.
async fn update_number_row(
    txn: &DatabaseTransaction,
    e164: &str,
    model: phone_number::ActiveModel,
) -> Result<()> {
    phone_number::Entity::update_many()
        .set(model)
        .filter(phone_number::Column::E164.eq(e164))
        .exec(txn)
        .await?;
    Ok(())
}

/// Puts an assigned number back into the inventory as unassigned.
pub(super) async fn release_number(txn: &DatabaseTransaction, e164: &str) -> Result<()> {
    let now = super::now();
    let updated = phone_number::Entity::update_many()
        .set(phone_number::ActiveModel {
            status: Set(NumberStatus::Unassigned.into()),
            account_id: Set(None),
            user_id: Set(None),
            associate_time: Set(None),
            update_time: Set(now),
            ..Default::default()
        })
        .filter(phone_number::Column::E164.eq(e164))
        .exec(txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(not_found(e164).into());
    }
    super::history::close_periods(txn, [e164], now).await
}

// ---------------------------------------------------------------------------------------------
// Use cases, each run by the writer inside a savepoint.
// ---------------------------------------------------------------------------------------------

/// An order whose numbers were parsed and checked: each is a number to acquire, or an item that
/// already failed.
pub(super) struct CreatePhoneNumberOrder {
    pub product_type: ProductType,
    pub candidates: Vec<Result<E164, OrderItem>>,
}

impl CreatePhoneNumberOrder {
    /// Parses and checks every requested number, without touching the database.
    fn parse(product_type: ProductType, requested: &[String]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let candidates = requested
            .iter()
            .map(|raw| {
                let parsed = match E164::parse("e164_phone_numbers", raw) {
                    Ok(parsed) => parsed,
                    // Echo what was sent, but not a megabyte of it.
                    Err(e) => {
                        return Err(failed(
                            crate::domain::truncate(raw.trim(), 64),
                            reason_of(&e),
                        ));
                    }
                };
                let e164 = parsed.to_string();
                if !seen.insert(e164.clone()) {
                    return Err(failed(
                        e164,
                        "the number appears more than once in this order".into(),
                    ));
                }
                check_product_type(&parsed, product_type)
                    .map_err(|e| failed(e164, reason_of(&e)))?;
                Ok(parsed)
            })
            .collect();
        Self {
            product_type,
            candidates,
        }
    }
}

impl Mutation for CreatePhoneNumberOrder {
    type Output = OrderRecord;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, OrderRecord> {
        Box::pin(create_phone_number_order(txn, self))
    }
}

/// Acquires every candidate that is not in the inventory yet. Each failure is recorded with its
/// reason; the others still succeed.
///
/// Numbers are written in E.164 order, whatever the request's order, so that two orders that
/// overlap take their locks in the same order and cannot deadlock. Only what the order changes
/// is locked: a number already in the inventory is left alone (the insert that conflicts with
/// it does not lock it), so assignments of it go on while the order runs.
pub(super) async fn create_phone_number_order(
    txn: &DatabaseTransaction,
    cmd: &CreatePhoneNumberOrder,
) -> Result<OrderRecord> {
    let now = super::now();
    let order_id = new_id();
    let mut acquiring: Vec<&E164> = cmd
        .candidates
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .collect();
    acquiring.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut acquired = std::collections::HashSet::with_capacity(acquiring.len());
    for parsed in acquiring {
        let e164 = parsed.as_str();
        // A number whose deletion time has passed is gone, even before the purge runs. The
        // delete touches (and locks) that row only.
        phone_number::Entity::delete_many()
            .filter(phone_number::Column::E164.eq(e164))
            .filter(phone_number::Column::Status.eq(Stored::from(NumberStatus::DeleteInProgress)))
            .filter(phone_number::Column::DeletionTime.lte(now))
            .exec(txn)
            .await?;
        let row = phone_number::ActiveModel {
            e164: Set(e164.to_owned()),
            country: Set(parsed.country().to_owned()),
            number_type: Set(parsed.number_type().into()),
            product_type: Set(cmd.product_type.into()),
            status: Set(NumberStatus::Unassigned.into()),
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
            .exec_without_returning(txn)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            acquired.insert(e164);
        }
    }
    // The items in the request's order.
    let items: Vec<OrderItem> = cmd
        .candidates
        .iter()
        .map(|candidate| match candidate {
            Err(item) => item.clone(),
            Ok(parsed) if acquired.contains(parsed.as_str()) => OrderItem {
                e164: parsed.to_string(),
                acquired: true,
                reason: String::new(),
            },
            Ok(parsed) => failed(
                parsed.to_string(),
                "the number is already in the inventory".into(),
            ),
        })
        .collect();
    let order = phone_number_order::ActiveModel {
        id: Set(order_id),
        product_type: Set(cmd.product_type.into()),
        status: Set(order_status(&items).into()),
        items: Set(serde_json::to_string(&items)
            .map_err(|e| Error::Internal(format!("order items not storable: {e}")))?),
        create_time: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(OrderRecord::new(order, items))
}

pub(super) struct UpdatePhoneNumber {
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

pub(super) async fn update_phone_number(
    txn: &DatabaseTransaction,
    cmd: &UpdatePhoneNumber,
) -> Result<NumberView> {
    let mut row = lock_number(txn, cmd.number.as_str()).await?;
    let state = number_state(&row);
    let now = super::now();
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

pub(super) struct DeletePhoneNumber {
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
pub(super) async fn delete_phone_number(
    txn: &DatabaseTransaction,
    cmd: &DeletePhoneNumber,
) -> Result<NumberView> {
    let mut row = lock_number(txn, &cmd.e164).await?;
    rules::check_delete(&number_state(&row))?;
    let now = super::now();
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

pub(super) struct RestorePhoneNumber {
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
pub(super) async fn restore_phone_number(
    txn: &DatabaseTransaction,
    cmd: &RestorePhoneNumber,
) -> Result<NumberView> {
    let mut row = lock_number_row(txn, &cmd.e164)
        .await?
        .ok_or_else(|| not_found(&cmd.e164))?;
    let now = super::now();
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

// ---------------------------------------------------------------------------------------------
// The store's surface for the api layer.
// ---------------------------------------------------------------------------------------------

impl Store {
    /// Acquires every number that is valid, suits the product type and is not in the inventory
    /// yet. Each failure is recorded with its reason; the others still succeed.
    pub async fn create_phone_number_order(
        &self,
        product_type: ProductType,
        requested: &[String],
    ) -> Result<OrderRecord> {
        self.write(CreatePhoneNumberOrder::parse(product_type, requested))
            .await
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
        Ok(OrderRecord::new(order, items))
    }

    pub async fn get_phone_number(&self, e164: &str) -> Result<NumberView> {
        let number = NumberView::from(
            phone_number::Entity::find_by_id(e164)
                .one(self.connection())
                .await?
                .ok_or_else(|| not_found(e164))?,
        );
        if !rules::exists_at(&number_state(&number), super::now()) {
            return Err(not_found(e164).into());
        }
        Ok(number)
    }

    /// Numbers in E.164 order, filtered. Every combination of filters is served by an index that
    /// ends in `e164` (migrations m0002 and m0008), so a page costs the same however large the
    /// inventory.
    pub async fn list_phone_numbers(
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
        let query = numbers_query(filter, status, page.after.as_deref(), super::now());
        let numbers = query
            .limit(page.fetch_limit())
            .all(self.connection())
            .await?
            .into_iter()
            .map(NumberView::from)
            .collect();
        Ok(page.finish(numbers, |n| n.e164.clone()))
    }

    pub async fn update_phone_number(
        &self,
        number: &E164,
        update: NumberUpdate,
    ) -> Result<NumberView> {
        self.write(UpdatePhoneNumber {
            number: number.clone(),
            update,
        })
        .await
    }

    /// Moves an unassigned number into the deletion queue.
    pub async fn delete_phone_number(&self, e164: &str) -> Result<NumberView> {
        self.write(DeletePhoneNumber {
            e164: e164.to_owned(),
            deletion_queue_period: self.deletion_queue_period(),
        })
        .await
    }

    /// Brings a number back from the deletion queue as unassigned.
    pub async fn restore_phone_number(&self, e164: &str) -> Result<NumberView> {
        self.write(RestorePhoneNumber {
            e164: e164.to_owned(),
        })
        .await
    }

    /// Removes numbers whose deletion time has passed, chunk by chunk; returns how many went.
    pub async fn purge_deleted_numbers(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = self.write(PurgeDeletedNumbers { now }).await?;
            total += deleted;
            if deleted < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }
}

/// The query of a ListPhoneNumbers page (without its limit), `status` as adjusted for the owner
/// filters.
pub(super) fn numbers_query(
    filter: &NumberFilter,
    status: Option<NumberStatus>,
    after: Option<&str>,
    now: DateTime<Utc>,
) -> sea_orm::Select<phone_number::Entity> {
    let mut query = phone_number::Entity::find()
        // Numbers past their deletion time are gone, purged or not.
        .filter(
            Condition::any()
                .add(phone_number::Column::DeletionTime.is_null())
                .add(phone_number::Column::DeletionTime.gt(now)),
        )
        .order_by_asc(phone_number::Column::E164);
    if let Some(status) = status {
        query = query.filter(phone_number::Column::Status.eq(Stored::from(status)));
    }
    if let Some(product_type) = filter.product_type {
        query = query
            .filter(phone_number::Column::ProductType.eq(enums::ProductType::from(product_type)));
    }
    if let Some(account_id) = &filter.account_id {
        query = query.filter(phone_number::Column::AccountId.eq(account_id.as_str()));
    }
    if let Some(user_id) = &filter.user_id {
        query = query.filter(phone_number::Column::UserId.eq(user_id.as_str()));
    }
    if let Some(prefix) = &filter.e164_prefix {
        // A range on the key, so that every index ending in e164 serves it.
        query = query.filter(phone_number::Column::E164.gte(prefix.as_str()));
        if let Some(end) = prefix_end(prefix) {
            query = query.filter(phone_number::Column::E164.lt(end));
        }
    }
    if let Some(country) = &filter.country {
        query = query.filter(phone_number::Column::Country.eq(country.as_str()));
    }
    if let Some(number_type) = filter.number_type {
        query =
            query.filter(phone_number::Column::NumberType.eq(enums::NumberType::from(number_type)));
    }
    if let Some(after) = after {
        query = query.filter(phone_number::Column::E164.gt(after));
    }
    query
}

/// The first string after every string that starts with `prefix` ("+" and digits): the prefix
/// with its last digit below 9 increased, and what follows that digit dropped. `None` when every
/// digit is 9 (no upper bound needed).
fn prefix_end(prefix: &str) -> Option<String> {
    let digits = prefix.strip_prefix('+')?;
    let last = digits.rfind(|c: char| c != '9')?;
    let next = (digits.as_bytes()[last] + 1) as char;
    Some(format!("+{}{next}", &digits[..last]))
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

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_where_its_last_digit_below_nine_is_increased() {
        assert_eq!(prefix_end("+1206").as_deref(), Some("+1207"));
        assert_eq!(prefix_end("+1299").as_deref(), Some("+13"));
        assert_eq!(prefix_end("+999"), None);
        assert_eq!(prefix_end("+4"), Some("+5".into()));
    }
}
