//! `EmergencyLocationService`: an account's emergency addresses (validated as they are written)
//! and the locations on them, and which location an account, a user or a number has. Account
//! admins manage their account's, viewers read them, organisation admins do everything.

mod convert;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::caller::Caller;
use crate::domain::DomainError;
use crate::domain::emergency::{AddressValidator, CivicAddress, parse_place};
use crate::domain::ids::{AccountId, AddressId, LocationId, UserId};
use crate::domain::phone_number::E164;
use crate::error::Result;
use crate::proto::{self, emergency_location_service_server::EmergencyLocationService};
use crate::store::{EmergencyAddressView, EmergencyLocationView, LocationAddress, LocationHolder};
use convert::{
    civic_address, emergency_address, emergency_location, unsaved_address, validation_state_from,
};

pub struct EmergencyLocationApi {
    pub context: Arc<ApiContext>,
    /// Says what it can of each address written (the built-in one checks structure offline).
    pub validator: Arc<dyn AddressValidator>,
}

impl EmergencyLocationApi {
    /// The address `raw` parsed, and the validator's verdict on it.
    fn validated(
        &self,
        raw: Option<&proto::CivicAddress>,
    ) -> Result<(CivicAddress, crate::domain::emergency::Validation)> {
        let raw = raw.ok_or_else(|| DomainError::invalid("address", "is required"))?;
        let address = civic_address(raw).parse("address.")?;
        let validation = self.validator.validate(&address);
        Ok((address, validation))
    }

    /// The address `id`, if the caller's key covers its account.
    async fn address_for(&self, caller: &Caller, raw_id: &str) -> Result<EmergencyAddressView> {
        let id = AddressId::parse("address_id", raw_id)?;
        let address = self
            .context
            .store
            .emergency_locations()
            .address(&id)
            .await?;
        caller.require_account(&address.account_id)?;
        Ok(address)
    }

    /// The location `id`, if the caller's key covers its account.
    async fn location_for(&self, caller: &Caller, raw_id: &str) -> Result<EmergencyLocationView> {
        let id = LocationId::parse("location_id", raw_id)?;
        let location = self
            .context
            .store
            .emergency_locations()
            .location(&id)
            .await?;
        caller.require_account(&location.account_id)?;
        Ok(location)
    }
}

#[tonic::async_trait]
impl EmergencyLocationService for EmergencyLocationApi {
    async fn create_emergency_address(
        &self,
        request: Request<proto::CreateEmergencyAddressRequest>,
    ) -> Result<Response<proto::EmergencyAddress>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let req = request.get_ref();
        let account_id = AccountId::parse("account_id", &req.account_id)?;
        caller.require_account(&account_id)?;
        let (address, validation) = self.validated(req.address.as_ref())?;
        if req.validate_only {
            // The account must exist, as for a real run.
            self.context.store.accounts().get(&account_id).await?;
            return Ok(Response::new(unsaved_address(
                account_id, address, validation,
            )));
        }
        let created = self
            .context
            .store
            .emergency_locations()
            .create_address(&account_id, address, validation)
            .await?;
        tracing::info!(address_id = %created.address_id, account_id = %account_id, validation = created.validation.state.as_str(), actor = %caller.key_id, "emergency address created");
        Ok(Response::new(emergency_address(created)))
    }

    async fn get_emergency_address(
        &self,
        request: Request<proto::GetEmergencyAddressRequest>,
    ) -> Result<Response<proto::EmergencyAddress>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let address = self
            .address_for(&caller, &request.get_ref().address_id)
            .await?;
        Ok(Response::new(emergency_address(address)))
    }

    async fn list_emergency_addresses(
        &self,
        request: Request<proto::ListEmergencyAddressesRequest>,
    ) -> Result<Response<proto::ListEmergencyAddressesResponse>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let req = request.get_ref();
        let account_id = AccountId::parse("account_id", &req.account_id)?;
        caller.require_account(&account_id)?;
        let country = req.country.trim().to_ascii_uppercase();
        if !country.is_empty()
            && (country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(DomainError::invalid(
                "country",
                "must be an ISO 3166-1 alpha-2 country code, e.g. US",
            )
            .into());
        }
        let state = match proto::ValidationState::try_from(req.validation_state) {
            Ok(proto::ValidationState::Unspecified) => None,
            Ok(state) => Some(validation_state_from(state)),
            Err(_) => {
                return Err(
                    DomainError::invalid("validation_state", "is not a known state").into(),
                );
            }
        };
        let page = self.context.page(
            req.page_size,
            &req.page_token,
            &format!(
                "account_id={account_id}&country={country}&state={}",
                req.validation_state
            ),
        )?;
        let found = self
            .context
            .store
            .emergency_locations()
            .list_addresses(
                &account_id,
                (!country.is_empty()).then_some(country.as_str()),
                state,
                &page,
            )
            .await?;
        Ok(Response::new(proto::ListEmergencyAddressesResponse {
            addresses: found.items.into_iter().map(emergency_address).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn update_emergency_address(
        &self,
        request: Request<proto::UpdateEmergencyAddressRequest>,
    ) -> Result<Response<proto::EmergencyAddress>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let req = request.get_ref();
        let existing = self.address_for(&caller, &req.address_id).await?;
        let (address, validation) = self.validated(req.address.as_ref())?;
        let updated = self
            .context
            .store
            .emergency_locations()
            .update_address(
                &existing.address_id,
                address,
                validation,
                caller.requester().actor(),
            )
            .await?;
        tracing::info!(address_id = %updated.address_id, validation = updated.validation.state.as_str(), actor = %caller.key_id, "emergency address corrected");
        Ok(Response::new(emergency_address(updated)))
    }

    async fn delete_emergency_address(
        &self,
        request: Request<proto::DeleteEmergencyAddressRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let existing = self
            .address_for(&caller, &request.get_ref().address_id)
            .await?;
        self.context
            .store
            .emergency_locations()
            .delete_address(&existing.address_id)
            .await?;
        tracing::info!(address_id = %existing.address_id, actor = %caller.key_id, "emergency address deleted");
        Ok(Response::new(()))
    }

    async fn create_emergency_location(
        &self,
        request: Request<proto::CreateEmergencyLocationRequest>,
    ) -> Result<Response<proto::EmergencyLocation>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let req = request.get_ref();
        let (address, account_id) = if req.address_id.is_empty() {
            // A new address with the location: as CreateEmergencyAddress checks it.
            if req.account_id.is_empty() && req.address.is_none() {
                return Err(DomainError::invalid(
                    "address_id",
                    "is required (or account_id and address, for a location on a new address)",
                )
                .into());
            }
            let account_id = AccountId::parse("account_id", &req.account_id)?;
            caller.require_account(&account_id)?;
            let (address, validation) = self.validated(req.address.as_ref())?;
            let new = LocationAddress::New {
                account_id: account_id.clone(),
                address,
                validation,
            };
            (new, account_id)
        } else {
            if req.address.is_some() {
                return Err(DomainError::invalid(
                    "address",
                    "must be empty when address_id names an existing address",
                )
                .into());
            }
            let existing = self.address_for(&caller, &req.address_id).await?;
            let account_id = existing.account_id.clone();
            if !req.account_id.is_empty() && req.account_id != account_id.as_str() {
                return Err(DomainError::invalid(
                    "account_id",
                    "must be empty or the address's account when address_id is given",
                )
                .into());
            }
            (LocationAddress::Existing(existing.address_id), account_id)
        };
        let place = parse_place("place", &req.place)?;
        if req.validate_only {
            let address = match address {
                LocationAddress::Existing(id) => emergency_address(
                    self.context
                        .store
                        .emergency_locations()
                        .address(&id)
                        .await?,
                ),
                LocationAddress::New {
                    account_id,
                    address,
                    validation,
                } => {
                    self.context.store.accounts().get(&account_id).await?;
                    unsaved_address(account_id, address, validation)
                }
            };
            return Ok(Response::new(proto::EmergencyLocation {
                account_id: account_id.into(),
                address_id: address.address_id.clone(),
                place,
                address: Some(address),
                ..Default::default()
            }));
        }
        let created = self
            .context
            .store
            .emergency_locations()
            .create_location(address, place)
            .await?;
        tracing::info!(location_id = %created.location_id, address_id = %created.address.address_id, actor = %caller.key_id, "emergency location created");
        Ok(Response::new(emergency_location(created)))
    }

    async fn get_emergency_location(
        &self,
        request: Request<proto::GetEmergencyLocationRequest>,
    ) -> Result<Response<proto::EmergencyLocation>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let location = self
            .location_for(&caller, &request.get_ref().location_id)
            .await?;
        Ok(Response::new(emergency_location(location)))
    }

    async fn list_emergency_locations(
        &self,
        request: Request<proto::ListEmergencyLocationsRequest>,
    ) -> Result<Response<proto::ListEmergencyLocationsResponse>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let req = request.get_ref();
        let account_id = AccountId::parse("account_id", &req.account_id)?;
        caller.require_account(&account_id)?;
        let address_id = match req.address_id.as_str() {
            "" => None,
            raw => Some(AddressId::parse("address_id", raw)?),
        };
        let page = self.context.page(
            req.page_size,
            &req.page_token,
            &format!("account_id={account_id}&address_id={}", req.address_id),
        )?;
        let found = self
            .context
            .store
            .emergency_locations()
            .list_locations(&account_id, address_id.as_ref(), &page)
            .await?;
        Ok(Response::new(proto::ListEmergencyLocationsResponse {
            locations: found.items.into_iter().map(emergency_location).collect(),
            next_page_token: found.next_page_token,
        }))
    }

    async fn delete_emergency_location(
        &self,
        request: Request<proto::DeleteEmergencyLocationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let existing = self
            .location_for(&caller, &request.get_ref().location_id)
            .await?;
        self.context
            .store
            .emergency_locations()
            .delete_location(&existing.location_id)
            .await?;
        tracing::info!(location_id = %existing.location_id, actor = %caller.key_id, "emergency location deleted");
        Ok(Response::new(()))
    }

    async fn set_emergency_location(
        &self,
        request: Request<proto::SetEmergencyLocationRequest>,
    ) -> Result<Response<proto::SetEmergencyLocationResponse>, Status> {
        use proto::set_emergency_location_request::Target;
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let req = request.get_ref();
        let holder = match &req.target {
            None => {
                return Err(DomainError::invalid(
                    "target",
                    "is required: account_id, user or phone_number",
                )
                .into());
            }
            Some(Target::AccountId(raw)) => {
                let id = AccountId::parse("account_id", raw)?;
                caller.require_account(&id)?;
                LocationHolder::Account(id)
            }
            Some(Target::User(user)) => {
                let account_id = AccountId::parse("user.account_id", &user.account_id)?;
                let user_id = UserId::parse("user.user_id", &user.user_id)?;
                caller.require_account(&account_id)?;
                LocationHolder::User(account_id, user_id)
            }
            Some(Target::PhoneNumber(raw)) => {
                let number = E164::parse("phone_number", raw)?;
                // A scoped key reaches only its account's numbers.
                if caller.account().is_some() {
                    match self
                        .context
                        .store
                        .emergency_locations()
                        .number_account(&number)
                        .await?
                    {
                        Some(account_id) => caller.require_account(&account_id)?,
                        None => return Err(crate::error::Error::outside_scope().into()),
                    }
                }
                LocationHolder::Number(number)
            }
        };
        let location = match req.location_id.as_str() {
            "" => None,
            raw => Some(self.location_for(&caller, raw).await?),
        };
        self.context
            .store
            .emergency_locations()
            .set(
                holder.clone(),
                location.as_ref().map(|l| l.location_id.clone()),
                caller.requester().actor(),
            )
            .await?;
        tracing::info!(holder = ?holder, location_id = req.location_id, actor = %caller.key_id, "emergency location set");
        Ok(Response::new(proto::SetEmergencyLocationResponse {
            location: location.map(emergency_location),
        }))
    }
}
