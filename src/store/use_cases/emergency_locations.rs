//! Emergency addresses, the locations on them, and which location an account (its default), a
//! user or a number has.
//!
//! A user's effective location is their number's, else their own, else their account's
//! default. A change that moves anyone's effective location (an address corrected in place, a
//! location given or taken) writes an EMERGENCY_LOCATION_UPDATED event for each such user, in
//! the same transaction: the users' effective locations are worked out before and after from
//! three queries over the account, not one query per user.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::domain::DomainError;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::emergency::{CivicAddress, Validation, ValidationState};
use crate::domain::ids::{AccountId, AddressId, LocationId, UserId};
use crate::domain::phone_number::E164;
use crate::domain::telephony::TelephonySettings;
use crate::error::Result;
use crate::store::db::emergency::{
    EmergencyAddressView, EmergencyLocationView, address_not_found, location_not_found,
    problems_to_db, with_addresses,
};
use crate::store::db::entities::{
    account, emergency_address, emergency_location, emergency_location_use, phone_number, user,
};
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::{account_not_found, now};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};
use crate::store::engine::outbox::append_changes;

/// What holds a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationHolder {
    /// The account's default.
    Account(AccountId),
    User(AccountId, UserId),
    Number(E164),
}

impl LocationHolder {
    fn kind(&self) -> &'static str {
        match self {
            Self::Account(_) => "account",
            Self::User(..) => "user",
            Self::Number(_) => "number",
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::Account(id) => id.as_str(),
            Self::User(_, id) => id.as_str(),
            Self::Number(number) => number.as_str(),
        }
    }
}

/// Where a user's effective location comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationSource {
    Number,
    User,
    AccountDefault,
}

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

    pub async fn create_location(
        &self,
        address_id: &AddressId,
        place: String,
    ) -> Result<EmergencyLocationView> {
        self.engine
            .write(CreateLocation {
                address_id: address_id.clone(),
                place,
            })
            .await
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

    /// The user's effective location and where it comes from.
    pub async fn effective(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
    ) -> Result<Option<(EmergencyLocationView, LocationSource)>> {
        let uses = Uses::of_account(self.engine.reader(), account_id).await?;
        let number: Option<String> = phone_number::Entity::find()
            .select_only()
            .column(phone_number::Column::E164)
            .filter(phone_number::Column::UserId.eq(user_id.as_str()))
            .into_tuple()
            .one(self.engine.reader())
            .await?;
        let Some((location, source)) = uses.effective(user_id.as_str(), number.as_deref()) else {
            return Ok(None);
        };
        let location = self
            .location(&LocationId::from_stored(location.to_owned()))
            .await?;
        Ok(Some((location, source)))
    }
}

/// The location uses of one account, by holder kind and id.
struct Uses {
    by_holder: HashMap<(String, String), String>,
}

impl Uses {
    async fn of_account(
        db: &impl sea_orm::ConnectionTrait,
        account_id: &AccountId,
    ) -> Result<Self> {
        use emergency_location_use::Column;
        let rows: Vec<(String, String, String)> = emergency_location_use::Entity::find()
            .select_only()
            .column(Column::HolderKind)
            .column(Column::HolderId)
            .column(Column::LocationId)
            .filter(Column::AccountId.eq(account_id.as_str()))
            .into_tuple()
            .all(db)
            .await?;
        Ok(Self {
            by_holder: rows
                .into_iter()
                .map(|(kind, id, location)| ((kind, id), location))
                .collect(),
        })
    }

    fn get(&self, kind: &str, id: &str) -> Option<&str> {
        self.by_holder
            .get(&(kind.to_owned(), id.to_owned()))
            .map(String::as_str)
    }

    /// The number's location, else the user's, else the account's default.
    fn effective(&self, user_id: &str, number: Option<&str>) -> Option<(&str, LocationSource)> {
        number
            .and_then(|n| self.get("number", n))
            .map(|l| (l, LocationSource::Number))
            .or_else(|| self.get("user", user_id).map(|l| (l, LocationSource::User)))
            .or_else(|| {
                self.by_holder
                    .iter()
                    .find(|((kind, _), _)| kind == "account")
                    .map(|(_, l)| (l.as_str(), LocationSource::AccountDefault))
            })
    }
}

/// A user of the account, with what an event about them carries.
struct AccountUser {
    id: String,
    number: Option<String>,
    settings: TelephonySettings,
}

/// Every user of the account with their number: two queries.
async fn account_users(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
) -> Result<Vec<AccountUser>> {
    let users: Vec<(String, bool, bool, bool)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::InboundCalling)
        .column(user::Column::OutboundCalling)
        .column(user::Column::Sms)
        .filter(user::Column::AccountId.eq(account_id.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let numbers: HashMap<String, String> = phone_number::Entity::find()
        .select_only()
        .column(phone_number::Column::UserId)
        .column(phone_number::Column::E164)
        .filter(phone_number::Column::AccountId.eq(account_id.as_str()))
        .filter(phone_number::Column::UserId.is_not_null())
        .into_tuple::<(String, String)>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    Ok(users
        .into_iter()
        .map(|(id, inbound_calling, outbound_calling, sms)| AccountUser {
            number: numbers.get(&id).cloned(),
            id,
            settings: TelephonySettings {
                inbound_calling,
                outbound_calling,
                sms,
            },
        })
        .collect())
}

/// Each user's effective location id in the account.
async fn effective_locations(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    users: &[AccountUser],
) -> Result<Vec<Option<String>>> {
    let uses = Uses::of_account(txn, account_id).await?;
    Ok(users
        .iter()
        .map(|u| {
            uses.effective(&u.id, u.number.as_deref())
                .map(|(l, _)| l.to_owned())
        })
        .collect())
}

/// One EMERGENCY_LOCATION_UPDATED event per user for whom `moved` holds.
async fn announce(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    users: &[AccountUser],
    moved: impl Fn(usize) -> bool,
    actor: &str,
) -> Result<()> {
    let changes: Vec<NewChange> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| moved(*i))
        .map(|(_, u)| NewChange {
            account_id: account_id.clone(),
            user_id: UserId::from_stored(u.id.clone()),
            kind: ChangeKind::EmergencyLocationUpdated,
            e164_phone_number: u.number.clone().map(E164::from_stored),
            settings: u.settings,
            actor: actor.to_owned(),
        })
        .collect();
    append_changes(txn, changes).await?;
    Ok(())
}

fn address_row(
    id: String,
    account_id: String,
    a: CivicAddress,
    v: &Validation,
    create_time: chrono::DateTime<chrono::Utc>,
) -> emergency_address::ActiveModel {
    emergency_address::ActiveModel {
        id: Set(id),
        account_id: Set(account_id),
        country: Set(a.country),
        company_name: Set(a.company_name),
        house_number: Set(a.house_number),
        house_number_suffix: Set(a.house_number_suffix),
        pre_directional: Set(a.pre_directional),
        street_name: Set(a.street_name),
        street_suffix: Set(a.street_suffix),
        post_directional: Set(a.post_directional),
        city: Set(a.city),
        state_or_province: Set(a.state_or_province),
        postal_code: Set(a.postal_code),
        latitude: Set(a.latitude),
        longitude: Set(a.longitude),
        validation_state: Set(v.state.as_str().to_owned()),
        validation_problems: Set(problems_to_db(v)),
        create_time: Set(create_time),
        update_time: Set(now()),
    }
}

struct CreateAddress {
    account_id: AccountId,
    address: CivicAddress,
    validation: Validation,
}

impl Mutation for CreateAddress {
    type Output = EmergencyAddressView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, EmergencyAddressView> {
        Box::pin(async move {
            account::Entity::find_by_id(self.account_id.as_str())
                .one(txn)
                .await?
                .ok_or_else(|| account_not_found(&self.account_id))?;
            let row = address_row(
                AddressId::generate().into(),
                self.account_id.to_string(),
                self.address.clone(),
                &self.validation,
                now(),
            )
            .insert(txn)
            .await?;
            Ok(row.into())
        })
    }
}

struct UpdateAddress {
    id: AddressId,
    address: CivicAddress,
    validation: Validation,
    actor: String,
}

impl Mutation for UpdateAddress {
    type Output = EmergencyAddressView;
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, EmergencyAddressView> {
        Box::pin(async move {
            let existing = emergency_address::Entity::find_by_id(self.id.as_str())
                .lock_exclusive()
                .one(txn)
                .await?
                .ok_or_else(|| address_not_found(&self.id))?;
            let account_id = AccountId::from_stored(existing.account_id.clone());
            let row = address_row(
                existing.id.clone(),
                existing.account_id.clone(),
                self.address.clone(),
                &self.validation,
                existing.create_time,
            )
            .update(txn)
            .await?;
            // Everyone whose effective location is on this address hears of it.
            let on_address: Vec<String> = emergency_location::Entity::find()
                .select_only()
                .column(emergency_location::Column::Id)
                .filter(emergency_location::Column::AddressId.eq(self.id.as_str()))
                .into_tuple()
                .all(txn)
                .await?;
            if !on_address.is_empty() {
                let users = account_users(txn, &account_id).await?;
                let effective = effective_locations(txn, &account_id, &users).await?;
                announce(
                    txn,
                    &account_id,
                    &users,
                    |i| {
                        effective[i]
                            .as_ref()
                            .is_some_and(|l| on_address.contains(l))
                    },
                    &self.actor,
                )
                .await?;
            }
            Ok(row.into())
        })
    }
}

struct DeleteAddress {
    id: AddressId,
}

impl Mutation for DeleteAddress {
    type Output = ();
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(async move {
            emergency_address::Entity::find_by_id(self.id.as_str())
                .lock_exclusive()
                .one(txn)
                .await?
                .ok_or_else(|| address_not_found(&self.id))?;
            let locations = emergency_location::Entity::find()
                .filter(emergency_location::Column::AddressId.eq(self.id.as_str()))
                .count(txn)
                .await?;
            if locations > 0 {
                return Err(DomainError::precondition(
                    "ADDRESS_IN_USE",
                    self.id.as_str(),
                    format!(
                        "emergency address {} has {locations} location(s); delete them first (ListEmergencyLocations with address_id)",
                        self.id
                    ),
                )
                .into());
            }
            emergency_address::Entity::delete_by_id(self.id.as_str())
                .exec(txn)
                .await?;
            Ok(())
        })
    }
}

struct CreateLocation {
    address_id: AddressId,
    place: String,
}

impl Mutation for CreateLocation {
    type Output = EmergencyLocationView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, EmergencyLocationView> {
        Box::pin(async move {
            let address: EmergencyAddressView =
                emergency_address::Entity::find_by_id(self.address_id.as_str())
                    .one(txn)
                    .await?
                    .ok_or_else(|| address_not_found(&self.address_id))?
                    .into();
            let row = emergency_location::ActiveModel {
                id: Set(LocationId::generate().into()),
                account_id: Set(address.account_id.to_string()),
                address_id: Set(self.address_id.to_string()),
                place: Set(self.place.clone()),
                create_time: Set(now()),
            }
            .insert(txn)
            .await?;
            Ok(EmergencyLocationView::new(row, address))
        })
    }
}

struct DeleteLocation {
    id: LocationId,
}

impl Mutation for DeleteLocation {
    type Output = ();
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(async move {
            emergency_location::Entity::find_by_id(self.id.as_str())
                .lock_exclusive()
                .one(txn)
                .await?
                .ok_or_else(|| location_not_found(&self.id))?;
            let holders: Vec<String> = emergency_location_use::Entity::find()
                .select_only()
                .column(emergency_location_use::Column::HolderKind)
                .filter(emergency_location_use::Column::LocationId.eq(self.id.as_str()))
                .into_tuple()
                .all(txn)
                .await?;
            if !holders.is_empty() {
                let count = |kind: &str| holders.iter().filter(|k| *k == kind).count();
                return Err(DomainError::precondition(
                    "LOCATION_IN_USE",
                    self.id.as_str(),
                    format!(
                        "emergency location {} is used by {} user(s), {} number(s) and {} account default(s); give them another location first (ListUsers and ListPhoneNumbers filter by emergency_location_id)",
                        self.id,
                        count("user"),
                        count("number"),
                        count("account")
                    ),
                )
                .into());
            }
            emergency_location::Entity::delete_by_id(self.id.as_str())
                .exec(txn)
                .await?;
            Ok(())
        })
    }
}

struct SetLocation {
    holder: LocationHolder,
    location: Option<LocationId>,
    actor: String,
}

impl SetLocation {
    /// The holder's account, checking the holder exists.
    async fn account_of_holder(&self, txn: &DatabaseTransaction) -> Result<AccountId> {
        match &self.holder {
            LocationHolder::Account(id) => {
                account::Entity::find_by_id(id.as_str())
                    .one(txn)
                    .await?
                    .ok_or_else(|| account_not_found(id))?;
                Ok(id.clone())
            }
            LocationHolder::User(account_id, user_id) => {
                user::Entity::find_by_id(user_id.as_str())
                    .filter(user::Column::AccountId.eq(account_id.as_str()))
                    .one(txn)
                    .await?
                    .ok_or_else(|| crate::store::db::users::user_not_found(account_id, user_id))?;
                Ok(account_id.clone())
            }
            LocationHolder::Number(number) => {
                let row = phone_number::Entity::find_by_id(number.as_str())
                    .one(txn)
                    .await?
                    .ok_or_else(|| crate::store::db::numbers::number_not_found(number))?;
                row.account_id.map(AccountId::from_stored).ok_or_else(|| {
                    DomainError::precondition(
                        "NUMBER_NOT_ASSIGNED",
                        number.as_str(),
                        format!(
                            "{number} is not assigned to an account: a number's location is one of its account's"
                        ),
                    )
                    .into()
                })
            }
        }
    }
}

impl Mutation for SetLocation {
    type Output = AccountId;
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, AccountId> {
        Box::pin(async move {
            let account_id = self.account_of_holder(txn).await?;
            if let Some(location) = &self.location {
                let row = emergency_location::Entity::find_by_id(location.as_str())
                    .one(txn)
                    .await?
                    .ok_or_else(|| location_not_found(location))?;
                if row.account_id != account_id.as_str() {
                    return Err(DomainError::precondition(
                        "LOCATION_OF_ANOTHER_ACCOUNT",
                        location.as_str(),
                        format!(
                            "emergency location {location} belongs to another account than {account_id}"
                        ),
                    )
                    .into());
                }
            }
            let users = account_users(txn, &account_id).await?;
            let before = effective_locations(txn, &account_id, &users).await?;
            let (kind, id) = (self.holder.kind(), self.holder.id());
            emergency_location_use::Entity::delete_by_id((kind.to_owned(), id.to_owned()))
                .exec(txn)
                .await?;
            if let Some(location) = &self.location {
                emergency_location_use::ActiveModel {
                    holder_kind: Set(kind.to_owned()),
                    holder_id: Set(id.to_owned()),
                    account_id: Set(account_id.to_string()),
                    location_id: Set(location.to_string()),
                    update_time: Set(now()),
                }
                .insert(txn)
                .await?;
            }
            let after = effective_locations(txn, &account_id, &users).await?;
            announce(
                txn,
                &account_id,
                &users,
                |i| before[i] != after[i],
                &self.actor,
            )
            .await?;
            Ok(account_id)
        })
    }
}
