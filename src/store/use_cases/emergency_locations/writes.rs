//! The mutations: addresses (created, corrected in place with an event for everyone on them,
//! deleted when unused), locations, and giving a location to a holder.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::domain::DomainError;
use crate::domain::emergency::{CivicAddress, Validation};
use crate::domain::ids::{AccountId, AddressId, LocationId};
use crate::error::Result;
use crate::store::db::emergency::{
    EmergencyAddressView, EmergencyLocationView, address_not_found, location_not_found,
    location_of_another_account, problems_to_db,
};
use crate::store::db::entities::{
    account, emergency_address, emergency_location, emergency_location_use, phone_number, user,
};
use crate::store::db::{account_not_found, now};
use crate::store::engine::mutation::{Mutation, TxnFuture};

use super::effective::{LocationHolder, account_users, announce, effective_locations};

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

pub(super) struct CreateAddress {
    pub(super) account_id: AccountId,
    pub(super) address: CivicAddress,
    pub(super) validation: Validation,
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

pub(super) struct UpdateAddress {
    pub(super) id: AddressId,
    pub(super) address: CivicAddress,
    pub(super) validation: Validation,
    pub(super) actor: String,
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

pub(super) struct DeleteAddress {
    pub(super) id: AddressId,
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

/// The address a new location is on.
// One per request: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum LocationAddress {
    Existing(AddressId),
    /// Created with the location, in the same transaction.
    New {
        account_id: AccountId,
        address: CivicAddress,
        validation: Validation,
    },
}

pub(super) struct CreateLocation {
    pub(super) address: LocationAddress,
    pub(super) place: String,
}

impl Mutation for CreateLocation {
    type Output = EmergencyLocationView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, EmergencyLocationView> {
        Box::pin(async move {
            let address: EmergencyAddressView = match &self.address {
                LocationAddress::Existing(id) => emergency_address::Entity::find_by_id(id.as_str())
                    .one(txn)
                    .await?
                    .ok_or_else(|| address_not_found(id))?
                    .into(),
                LocationAddress::New {
                    account_id,
                    address,
                    validation,
                } => {
                    CreateAddress {
                        account_id: account_id.clone(),
                        address: address.clone(),
                        validation: validation.clone(),
                    }
                    .run(txn)
                    .await?
                }
            };
            let row = emergency_location::ActiveModel {
                id: Set(LocationId::generate().into()),
                account_id: Set(address.account_id.to_string()),
                address_id: Set(address.address_id.to_string()),
                place: Set(self.place.clone()),
                create_time: Set(now()),
            }
            .insert(txn)
            .await?;
            Ok(EmergencyLocationView::new(row, address))
        })
    }
}

/// How many holders a refused deletion names.
const IN_USE_NAMED: usize = 10;

pub(super) struct DeleteLocation {
    pub(super) id: LocationId,
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
            let holders: Vec<(String, String)> = emergency_location_use::Entity::find()
                .select_only()
                .column(emergency_location_use::Column::HolderKind)
                .column(emergency_location_use::Column::HolderId)
                .filter(emergency_location_use::Column::LocationId.eq(self.id.as_str()))
                .order_by_asc(emergency_location_use::Column::HolderKind)
                .order_by_asc(emergency_location_use::Column::HolderId)
                .into_tuple()
                .all(txn)
                .await?;
            if !holders.is_empty() {
                let count = |kind: &str| holders.iter().filter(|(k, _)| k == kind).count();
                // The first few by name, so that the admin sees whom to move.
                let named: Vec<String> = holders
                    .iter()
                    .take(IN_USE_NAMED)
                    .map(|(kind, id)| format!("{kind} {id}"))
                    .collect();
                return Err(DomainError::precondition(
                    "LOCATION_IN_USE",
                    self.id.as_str(),
                    format!(
                        "emergency location {} is used by {} user(s), {} number(s) and {} account default(s), among them {}; give them another location first (ListUsers and ListPhoneNumbers filter by emergency_location_id)",
                        self.id,
                        count("user"),
                        count("number"),
                        count("account"),
                        named.join(", ")
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

pub(super) struct SetLocation {
    pub(super) holder: LocationHolder,
    pub(super) location: Option<LocationId>,
    pub(super) actor: String,
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
                    return Err(location_of_another_account(location, &account_id).into());
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
