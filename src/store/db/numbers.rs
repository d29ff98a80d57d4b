//! The `phone_numbers` table's row functions that several use cases share: numbers locked for
//! a change, the domain's view of one, their fields and deletion written many numbers in one
//! statement, putting assigned numbers back into the inventory, and the query of a
//! ListPhoneNumbers page with its filters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};

use super::entities::enums::{self, NumberStatus as Stored};
use super::entities::phone_number;
use super::users::value_per_row;
use super::views::NumberView;
use super::writes::Writes;
use crate::domain::DomainError;
use crate::domain::ids::{AccountId, LocationId, UserId};
use crate::domain::phone_number::{E164, NumberState, NumberStatus, NumberType, ProductType};
use crate::error::Result;

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
    /// Numbers whose own emergency location is this one.
    pub emergency_location: Option<LocationId>,
}

/// Whether a key of `account` (`None`: an organisation key) may see the number: an
/// account-scoped key sees unassigned numbers (to assign them) and its account's numbers. Every
/// answer about a number, reads and assignments alike, hides the others the same way.
pub fn visible_to(account: Option<&AccountId>, number: &NumberView) -> bool {
    match account {
        None => true,
        Some(own) => {
            number.status == NumberStatus::Unassigned || number.account_id.as_ref() == Some(own)
        }
    }
}

pub(crate) fn number_not_found(e164: &E164) -> DomainError {
    DomainError::NotFound {
        resource: "phone number",
        name: e164.to_string(),
    }
}

/// The domain's view of a stored number.
pub(crate) fn number_state(number: &NumberView) -> NumberState {
    NumberState {
        e164: number.e164.clone(),
        status: number.status,
        product_type: number.product_type,
        deletion_time: number.deletion_time,
    }
}

/// The number's row, locked, whether or not its deletion time has passed.
pub(crate) async fn lock_number_row(
    txn: &DatabaseTransaction,
    e164: &E164,
) -> Result<Option<NumberView>> {
    Ok(phone_number::Entity::find_by_id(e164.as_str())
        .lock_exclusive()
        .one(txn)
        .await?
        .map(NumberView::from))
}

/// Writes the columns set in `model` to the number's row.
pub(crate) async fn update_number_row(
    txn: &DatabaseTransaction,
    e164: &E164,
    model: phone_number::ActiveModel,
) -> Result<()> {
    phone_number::Entity::update_many()
        .set(model)
        .filter(phone_number::Column::E164.eq(e164.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Puts assigned numbers (held by users the caller has locked) back into the inventory as
/// unassigned, closing their history periods at `now`: three statements, each on its own table
/// (callers pass at most [`super::SET_CHUNK`] numbers).
pub(crate) fn release_numbers(writes: &mut Writes, e164s: &[&E164], now: DateTime<Utc>) {
    super::emergency::forget_numbers(writes, e164s);
    writes.push(
        &phone_number::Entity::update_many()
            .set(phone_number::ActiveModel {
                status: Set(NumberStatus::Unassigned.into()),
                account_id: Set(None),
                user_id: Set(None),
                associate_time: Set(None),
                update_time: Set(now),
                ..Default::default()
            })
            .filter(phone_number::Column::E164.is_in(e164s.iter().map(|e| e.as_str()))),
    );
    super::history::close_periods(writes, e164s.iter().copied(), now);
}

/// Writes each number's product type and calling name as `numbers` holds them (each number
/// once): one UPDATE per [`super::SET_CHUNK`] numbers, the values by E.164.
pub(crate) async fn write_number_fields(
    txn: &DatabaseTransaction,
    numbers: &[&NumberView],
    now: DateTime<Utc>,
) -> Result<()> {
    use phone_number::Column;
    for chunk in numbers.chunks(super::SET_CHUNK) {
        let (products, names): (Vec<_>, Vec<_>) = chunk
            .iter()
            .map(|number| {
                let e164 = number.e164.as_str();
                let product = enums::ProductType::from(number.product_type);
                (
                    (e164, product.into()),
                    (e164, number.calling_name.as_str().into()),
                )
            })
            .unzip();
        phone_number::Entity::update_many()
            .col_expr(Column::ProductType, value_per_row(Column::E164, &products))
            .col_expr(Column::CallingName, value_per_row(Column::E164, &names))
            .col_expr(Column::UpdateTime, Expr::value(now))
            .filter(Column::E164.is_in(chunk.iter().map(|number| number.e164.as_str())))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Moves the numbers `e164s` into the deletion queue, to be purged at `deletion_time`: one
/// UPDATE per [`super::SET_CHUNK`] numbers.
pub(crate) async fn queue_for_deletion(
    txn: &DatabaseTransaction,
    e164s: &[&E164],
    deletion_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in e164s.chunks(super::SET_CHUNK) {
        phone_number::Entity::update_many()
            .set(phone_number::ActiveModel {
                status: Set(NumberStatus::DeleteInProgress.into()),
                deletion_time: Set(Some(deletion_time)),
                update_time: Set(now),
                ..Default::default()
            })
            .filter(phone_number::Column::E164.is_in(chunk.iter().map(|e| e.as_str())))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The numbers `e164s`, locked, by E.164: a query per [`super::SET_CHUNK`] numbers.
pub(crate) async fn lock_numbers(
    txn: &DatabaseTransaction,
    e164s: &[&E164],
) -> Result<HashMap<E164, NumberView>> {
    let mut numbers = HashMap::with_capacity(e164s.len());
    for chunk in e164s.chunks(super::SET_CHUNK) {
        let found = phone_number::Entity::find()
            .filter(phone_number::Column::E164.is_in(chunk.iter().map(|e| e.as_str())))
            .lock_exclusive()
            .all(txn)
            .await?;
        for row in found {
            let number = NumberView::from(row);
            numbers.insert(number.e164.clone(), number);
        }
    }
    Ok(numbers)
}

/// The query of a ListPhoneNumbers page (without its limit), `status` as adjusted for the owner
/// filters.
pub(crate) fn numbers_query(
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
    if let Some(location) = &filter.emergency_location {
        query = query.filter(super::emergency::number_location_is(location));
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
