//! Emergency addresses, the locations on them, and which location an account (its default), a
//! user or a number has.
//!
//! A user's effective location is their number's, else their own, else their account's
//! default. A change that moves anyone's effective location (an address corrected in place, a
//! location given or taken) writes an EMERGENCY_LOCATION_UPDATED event for each such user, in
//! the same transaction: the users' effective locations are worked out before and after from
//! three queries over the account, not one query per user.
//!
//! - [`effective`]: who holds which location, and whose effective location a change moves;
//! - [`writes`]: the mutations (addresses, locations, giving a location);
//! - [`assignment`]: what an assignment checks and gives;
//! - [`own`]: users' own locations changed by user updates.

mod assignment;
mod effective;
mod own;
mod writes;

use std::sync::LazyLock;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};

use crate::domain::emergency::{CivicAddress, Validation, ValidationState};
use crate::domain::ids::{AccountId, AddressId, LocationId, UserId};
use crate::domain::phone_number::E164;
use crate::error::Result;
use crate::store::db::emergency::{
    EmergencyAddressView, EmergencyLocationView, address_not_found, location_not_found,
    location_of, with_addresses,
};
use crate::store::db::entities::{emergency_address, emergency_location, phone_number};
use crate::store::db::page::{Page, PageRequest};
use crate::store::engine::Engine;

pub(crate) use assignment::AssignmentLocations;
pub use effective::{LocationHolder, LocationSource};
pub(crate) use own::{check_named, give_users, named_locations, set_own_locations};
pub use writes::LocationAddress;
use writes::{
    CreateAddress, CreateLocation, DeleteAddress, DeleteLocation, SetLocation, UpdateAddress,
};

/// Emergency addresses and locations: the store's surface for them.
pub struct EmergencyLocations<'a> {
    engine: &'a Engine,
}

impl<'a> EmergencyLocations<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    pub async fn create_address(
        &self,
        account_id: &AccountId,
        address: CivicAddress,
        validation: Validation,
    ) -> Result<EmergencyAddressView> {
        self.engine
            .write(CreateAddress {
                account_id: account_id.clone(),
                address,
                validation,
            })
            .await
    }

    pub async fn address(&self, id: &AddressId) -> Result<EmergencyAddressView> {
        Ok(emergency_address::Entity::find_by_id(id.as_str())
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| address_not_found(id))?
            .into())
    }

    /// An account's addresses in creation order, of one country or validation state if asked.
    pub async fn list_addresses(
        &self,
        account_id: &AccountId,
        country: Option<&str>,
        state: Option<ValidationState>,
        page: &PageRequest,
    ) -> Result<Page<EmergencyAddressView>> {
        use emergency_address::Column;
        let mut query = emergency_address::Entity::find()
            .filter(Column::AccountId.eq(account_id.as_str()))
            .order_by_asc(Column::Id);
        if let Some(country) = country {
            query = query.filter(Column::Country.eq(country));
        }
        if let Some(state) = state {
            query = query.filter(Column::ValidationState.eq(state.as_str()));
        }
        if let Some(after) = &page.after {
            query = query.filter(Column::Id.gt(after.as_str()));
        }
        let rows = query
            .limit(page.fetch_limit())
            .all(self.engine.reader())
            .await?;
        let views = rows.into_iter().map(EmergencyAddressView::from).collect();
        Ok(page.finish(views, |v: &EmergencyAddressView| v.address_id.to_string()))
    }

    /// Corrects an address in place; the users whose effective location is on it get an event.
    pub async fn update_address(
        &self,
        id: &AddressId,
        address: CivicAddress,
        validation: Validation,
        actor: String,
    ) -> Result<EmergencyAddressView> {
        self.engine
            .write(UpdateAddress {
                id: id.clone(),
                address,
                validation,
                actor,
            })
            .await
    }

    pub async fn delete_address(&self, id: &AddressId) -> Result<()> {
        self.engine.write(DeleteAddress { id: id.clone() }).await
    }

    /// A location on an address, or on a new address created with it.
    pub async fn create_location(
        &self,
        address: LocationAddress,
        place: String,
    ) -> Result<EmergencyLocationView> {
        self.engine.write(CreateLocation { address, place }).await
    }

    pub async fn location(&self, id: &LocationId) -> Result<EmergencyLocationView> {
        let row = emergency_location::Entity::find_by_id(id.as_str())
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| location_not_found(id))?;
        Ok(with_addresses(self.engine.reader(), vec![row])
            .await?
            .remove(0))
    }

    /// An account's locations in creation order, on one address if asked.
    pub async fn list_locations(
        &self,
        account_id: &AccountId,
        address_id: Option<&AddressId>,
        page: &PageRequest,
    ) -> Result<Page<EmergencyLocationView>> {
        use emergency_location::Column;
        let mut query = emergency_location::Entity::find()
            .filter(Column::AccountId.eq(account_id.as_str()))
            .order_by_asc(Column::Id);
        if let Some(address_id) = address_id {
            query = query.filter(Column::AddressId.eq(address_id.as_str()));
        }
        if let Some(after) = &page.after {
            query = query.filter(Column::Id.gt(after.as_str()));
        }
        let rows = query
            .limit(page.fetch_limit())
            .all(self.engine.reader())
            .await?;
        let views = with_addresses(self.engine.reader(), rows).await?;
        Ok(page.finish(views, |v: &EmergencyLocationView| v.location_id.to_string()))
    }

    pub async fn delete_location(&self, id: &LocationId) -> Result<()> {
        self.engine.write(DeleteLocation { id: id.clone() }).await
    }

    /// Gives `location` to `holder` (`None` takes it away); returns the holder's account.
    pub async fn set(
        &self,
        holder: LocationHolder,
        location: Option<LocationId>,
        actor: String,
    ) -> Result<AccountId> {
        self.engine
            .write(SetLocation {
                holder,
                location,
                actor,
            })
            .await
    }

    /// The account a number is assigned to, if it is (the account whose locations it may have).
    pub async fn number_account(&self, number: &E164) -> Result<Option<AccountId>> {
        let row = phone_number::Entity::find_by_id(number.as_str())
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| crate::store::db::numbers::number_not_found(number))?;
        Ok(row.account_id.map(AccountId::from_stored))
    }

    /// The effective location of a number and the user and account holding it (each given if
    /// any): the number's, else the user's, else the account's default, and where it comes
    /// from. One statement of three primary-key lookups (on SQLite, a direct read).
    pub async fn effective(
        &self,
        number: Option<&E164>,
        user_id: Option<&UserId>,
        account_id: Option<&AccountId>,
    ) -> Result<Option<(LocationId, LocationSource)>> {
        let ids = [
            number.map(E164::as_str),
            user_id.map(UserId::as_str),
            account_id.map(AccountId::as_str),
        ];
        let direct = self.engine.direct().and_then(|direct| {
            direct.read_one(&EFFECTIVE_SQL_SQLITE, ids, |row| {
                Some([row.get(0).ok()?, row.get(1).ok()?, row.get(2).ok()?])
            })
        });
        let found: [Option<String>; 3] = match direct {
            Some(found) => found.unwrap_or_default(),
            None => {
                let db = self.engine.reader();
                let backend = db.get_database_backend();
                let sql = if backend == DbBackend::Postgres {
                    &EFFECTIVE_SQL_POSTGRES
                } else {
                    &EFFECTIVE_SQL_SQLITE
                };
                let row = db
                    .query_one_raw(Statement::from_sql_and_values(
                        backend,
                        sql.as_str(),
                        ids.map(|id| sea_orm::Value::from(id.map(str::to_owned))),
                    ))
                    .await?;
                match row {
                    Some(row) => [
                        row.try_get_by_index(0)?,
                        row.try_get_by_index(1)?,
                        row.try_get_by_index(2)?,
                    ],
                    None => Default::default(),
                }
            }
        };
        Ok(resolve_effective(found))
    }
}

/// The first of the locations of a number, a user and an account, and where it comes from.
pub(crate) fn resolve_effective(
    found: [Option<String>; 3],
) -> Option<(LocationId, LocationSource)> {
    let sources = [
        LocationSource::Number,
        LocationSource::User,
        LocationSource::AccountDefault,
    ];
    found
        .into_iter()
        .zip(sources)
        .find_map(|(location, source)| Some((LocationId::from_stored(location?), source)))
}

/// [`effective_sql`] for each database, made once.
static EFFECTIVE_SQL_SQLITE: LazyLock<String> = LazyLock::new(|| effective_sql("?"));
static EFFECTIVE_SQL_POSTGRES: LazyLock<String> = LazyLock::new(|| effective_sql("$"));

/// The locations of a number, a user and an account, in one row (`marker`: `?` or `$`, the
/// database's parameter mark).
fn effective_sql(marker: &str) -> String {
    format!(
        "SELECT {}, {}, {}",
        location_of("number", &format!("{marker}1")),
        location_of("user", &format!("{marker}2")),
        location_of("account", &format!("{marker}3"))
    )
}
