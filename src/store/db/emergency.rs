//! Emergency addresses and locations as the store answers them, and the row functions their
//! use cases share.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Select,
};

use super::entities::{
    emergency_address, emergency_location, emergency_location_use, phone_number, user,
};
use super::users::{UserFilter, UserWithNumber, with_number};
use super::views::UserView;
use super::writes::Writes;
use crate::domain::DomainError;
use crate::domain::FieldViolation;
use crate::domain::emergency::{CivicAddress, Validation, ValidationState};
use crate::domain::ids::UserId;
use crate::domain::ids::{AccountId, AddressId, LocationId};
use crate::domain::phone_number::E164;
use crate::error::Result;

/// An address, with what the validator found of it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencyAddressView {
    pub address_id: AddressId,
    pub account_id: AccountId,
    pub address: CivicAddress,
    pub validation: Validation,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<emergency_address::Model> for EmergencyAddressView {
    fn from(row: emergency_address::Model) -> Self {
        let problems: Vec<(String, String)> =
            serde_json::from_str(&row.validation_problems).unwrap_or_default();
        Self {
            address_id: AddressId::from_stored(row.id),
            account_id: AccountId::from_stored(row.account_id),
            address: CivicAddress {
                country: row.country,
                company_name: row.company_name,
                house_number: row.house_number,
                house_number_suffix: row.house_number_suffix,
                pre_directional: row.pre_directional,
                street_name: row.street_name,
                street_suffix: row.street_suffix,
                post_directional: row.post_directional,
                city: row.city,
                state_or_province: row.state_or_province,
                postal_code: row.postal_code,
                latitude: row.latitude,
                longitude: row.longitude,
            },
            validation: Validation {
                state: ValidationState::from_stored(&row.validation_state),
                problems: problems
                    .into_iter()
                    .map(|(field, description)| FieldViolation::new(field, description))
                    .collect(),
            },
            create_time: row.create_time,
            update_time: row.update_time,
        }
    }
}

/// The validator's problems as stored: JSON pairs of field and description.
pub(crate) fn problems_to_db(validation: &Validation) -> String {
    let pairs: Vec<(&str, &str)> = validation
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.description.as_str()))
        .collect();
    serde_json::to_string(&pairs).expect("pairs of strings serialise")
}

/// A location, with its address as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct EmergencyLocationView {
    pub location_id: LocationId,
    pub account_id: AccountId,
    pub place: String,
    pub address: EmergencyAddressView,
    pub create_time: DateTime<Utc>,
}

impl EmergencyLocationView {
    pub(crate) fn new(row: emergency_location::Model, address: EmergencyAddressView) -> Self {
        Self {
            location_id: LocationId::from_stored(row.id),
            account_id: AccountId::from_stored(row.account_id),
            place: row.place,
            address,
            create_time: row.create_time,
        }
    }
}

pub(crate) fn address_not_found(id: &AddressId) -> DomainError {
    DomainError::NotFound {
        resource: "emergency address",
        name: id.to_string(),
    }
}

/// A location given to a holder of another account than the location's.
pub(crate) fn location_of_another_account(
    location: &LocationId,
    account_id: &AccountId,
) -> DomainError {
    DomainError::precondition(
        "LOCATION_OF_ANOTHER_ACCOUNT",
        location.as_str(),
        format!("emergency location {location} belongs to another account than {account_id}"),
    )
}

pub(crate) fn location_not_found(id: &LocationId) -> DomainError {
    DomainError::NotFound {
        resource: "emergency location",
        name: id.to_string(),
    }
}

/// A user's row and number, and the locations of their number, of themselves and of their
/// account's default.
#[derive(FromQueryResult)]
struct UserWithLocations {
    #[sea_orm(nested)]
    user: UserWithNumber,
    number_location: Option<String>,
    user_location: Option<String>,
    account_location: Option<String>,
}

/// The user, their number and the locations that make their effective one (number, user,
/// account default) in one indexed query: what GetUser answers.
pub(crate) async fn find_user_view_with_locations(
    conn: &impl ConnectionTrait,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<Option<(UserView, [Option<String>; 3])>> {
    let location_of = |kind: &str, holder: &str| Expr::cust(location_of(kind, holder));
    let query = user::Entity::find_by_id(user_id.as_str())
        .filter(user::Column::AccountId.eq(account_id.as_str()));
    let row = with_number(query, false)
        .expr_as(
            location_of("number", "\"phone_numbers\".\"e164\""),
            "number_location",
        )
        .expr_as(location_of("user", "\"users\".\"id\""), "user_location")
        .expr_as(
            location_of("account", "\"users\".\"account_id\""),
            "account_location",
        )
        .into_model::<UserWithLocations>()
        .one(conn)
        .await?;
    Ok(row.map(|r| {
        let locations = [r.number_location, r.user_location, r.account_location];
        (r.user.into_view(), locations)
    }))
}

/// [`find_user_view_with_locations`] for the direct SQLite read: the user's row and number
/// ([`DIRECT_USER_VIEW`](super::users::DIRECT_USER_VIEW)'s columns), then the three locations.
pub(crate) static DIRECT_USER_VIEW_WITH_LOCATIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}, {}, {}, {} {}",
        super::users::DIRECT_USER_COLUMNS,
        location_of("number", "p.e164"),
        location_of("user", "u.id"),
        location_of("account", "u.account_id"),
        super::users::DIRECT_USER_FROM,
    )
});

/// A row of [`DIRECT_USER_VIEW_WITH_LOCATIONS`]; `None` when a value is not in the form the
/// store writes.
pub(crate) fn direct_user_view_with_locations(
    row: &rusqlite::Row<'_>,
) -> Option<(UserView, [Option<String>; 3])> {
    let user = super::users::direct_user_view(row)?;
    let first = super::users::DIRECT_USER_COLUMN_COUNT;
    let location = |i: usize| row.get::<_, Option<String>>(first + i).ok();
    Some((user, [location(0)?, location(1)?, location(2)?]))
}

/// The SQL of a subselect: the location of the holder `kind` whose id is the SQL `holder` (a
/// column or a parameter).
pub(crate) fn location_of(kind: &str, holder: &str) -> String {
    format!(
        "(SELECT location_id FROM emergency_location_uses WHERE holder_kind = '{kind}' AND holder_id = {holder})"
    )
}

/// Narrows a list of `account_id`'s users by the location filters of `filter` (`countries`:
/// those whose numbers need a location); `None` when no user can match (the account's default
/// gives everyone a location).
pub(crate) async fn by_location(
    db: &impl ConnectionTrait,
    mut query: Select<user::Entity>,
    account_id: &AccountId,
    filter: &UserFilter,
    countries: &[String],
) -> Result<Option<Select<user::Entity>>> {
    if let Some(location) = &filter.emergency_location {
        query = query.filter(own_location_is(location));
    }
    if filter.missing_emergency_location {
        if has_default_location(db, account_id).await? {
            return Ok(None);
        }
        query = query.filter(lacking_location(account_id, countries));
    }
    Ok(Some(query))
}

/// Numbers whose own location is `location`.
pub(crate) fn number_location_is(location: &LocationId) -> SimpleExpr {
    use emergency_location_use::Column;
    phone_number::Column::E164.in_subquery(
        Query::select()
            .column(Column::HolderId)
            .from(emergency_location_use::Entity)
            .and_where(Column::HolderKind.eq("number"))
            .and_where(Column::LocationId.eq(location.as_str()))
            .to_owned(),
    )
}

/// Users whose own location is `location`.
fn own_location_is(location: &LocationId) -> SimpleExpr {
    use emergency_location_use::Column;
    user::Column::Id.in_subquery(
        Query::select()
            .column(Column::HolderId)
            .from(emergency_location_use::Entity)
            .and_where(Column::HolderKind.eq("user"))
            .and_where(Column::LocationId.eq(location.as_str()))
            .to_owned(),
    )
}

/// Users of `account_id` (which has no default location) who hold a number of one of
/// `countries` and have no location: none of their own, none of their number's.
fn lacking_location(account_id: &AccountId, countries: &[String]) -> Condition {
    use emergency_location_use::Column;
    let holders = |kind: &str| {
        Query::select()
            .column(Column::HolderId)
            .from(emergency_location_use::Entity)
            .and_where(Column::HolderKind.eq(kind))
            .and_where(Column::AccountId.eq(account_id.as_str()))
            .to_owned()
    };
    Condition::all()
        .add(
            user::Column::Id.in_subquery(
                Query::select()
                    .column(phone_number::Column::UserId)
                    .from(phone_number::Entity)
                    .and_where(phone_number::Column::AccountId.eq(account_id.as_str()))
                    .and_where(phone_number::Column::Country.is_in(countries.iter().cloned()))
                    .and_where(phone_number::Column::E164.not_in_subquery(holders("number")))
                    .to_owned(),
            ),
        )
        .add(user::Column::Id.not_in_subquery(holders("user")))
}

/// How many users of the organisation hold a number of one of `countries` and have no
/// location (none of their own, their number's or their account's default): one statement.
pub(crate) async fn count_lacking_location(
    db: &impl ConnectionTrait,
    countries: &[String],
) -> Result<u64> {
    if countries.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let mark = |n: usize| match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    let marks: Vec<String> = (1..=countries.len()).map(mark).collect();
    let held = |kind: &str, holder: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM emergency_location_uses AS e \
             WHERE e.holder_kind = '{kind}' AND e.holder_id = {holder})"
        )
    };
    let sql = format!(
        "SELECT COUNT(*) FROM phone_numbers AS p JOIN users AS u ON u.id = p.user_id \
         WHERE p.country IN ({}) AND {} AND {} AND {}",
        marks.join(", "),
        held("number", "p.e164"),
        held("user", "u.id"),
        held("account", "u.account_id")
    );
    let values = countries.iter().map(|c| sea_orm::Value::from(c.clone()));
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .await?;
    let count: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(count.max(0) as u64)
}

/// Takes their own locations from users: those that leave (deleted), so that a location is
/// never held by what no longer holds it, and those whose own location is taken away or
/// replaced.
pub(crate) fn forget_users(writes: &mut Writes, users: &[&UserId]) {
    forget_holders(writes, "user", users.iter().map(|id| id.as_str()));
}

/// Takes their own locations from numbers that leave their holder (back in the inventory): a
/// number's location is one of its account's.
pub(crate) fn forget_numbers(writes: &mut Writes, numbers: &[&E164]) {
    forget_holders(writes, "number", numbers.iter().map(|e164| e164.as_str()));
}

/// One DELETE per [`super::SET_CHUNK`] holders.
fn forget_holders<'a>(writes: &mut Writes, kind: &str, holders: impl Iterator<Item = &'a str>) {
    use emergency_location_use::Column;
    let holders: Vec<&str> = holders.collect();
    for chunk in holders.chunks(super::SET_CHUNK) {
        writes.push(
            &emergency_location_use::Entity::delete_many()
                .filter(Column::HolderKind.eq(kind))
                .filter(Column::HolderId.is_in(chunk.iter().copied())),
        );
    }
}

/// Removes an account's emergency addresses, locations and their uses (with the account).
pub(crate) async fn forget_account(
    txn: &impl ConnectionTrait,
    account_id: &AccountId,
) -> Result<()> {
    let id = account_id.as_str();
    emergency_location_use::Entity::delete_many()
        .filter(emergency_location_use::Column::AccountId.eq(id))
        .exec(txn)
        .await?;
    emergency_location::Entity::delete_many()
        .filter(emergency_location::Column::AccountId.eq(id))
        .exec(txn)
        .await?;
    emergency_address::Entity::delete_many()
        .filter(emergency_address::Column::AccountId.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Whether the account has a default location.
async fn has_default_location(db: &impl ConnectionTrait, account_id: &AccountId) -> Result<bool> {
    Ok(
        emergency_location_use::Entity::find_by_id(("account".to_owned(), account_id.to_string()))
            .one(db)
            .await?
            .is_some(),
    )
}

/// The locations `rows` with their addresses, in the rows' order.
pub(crate) async fn with_addresses(
    db: &impl ConnectionTrait,
    rows: Vec<emergency_location::Model>,
) -> Result<Vec<EmergencyLocationView>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.address_id.as_str()).collect();
    let addresses: std::collections::HashMap<String, EmergencyAddressView> =
        emergency_address::Entity::find()
            .filter(emergency_address::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a.into()))
            .collect();
    rows.into_iter()
        .map(|row| {
            let address = addresses.get(&row.address_id).cloned().ok_or_else(|| {
                crate::error::Error::Internal(format!(
                    "emergency location {} has no address {}",
                    row.id, row.address_id
                ))
            })?;
            Ok(EmergencyLocationView::new(row, address))
        })
        .collect()
}
