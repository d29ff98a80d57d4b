//! Emergency addresses and locations as the store answers them, and the row functions their
//! use cases share.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::entities::{emergency_address, emergency_location};
use crate::domain::DomainError;
use crate::domain::FieldViolation;
use crate::domain::emergency::{CivicAddress, Validation, ValidationState};
use crate::domain::ids::{AccountId, AddressId, LocationId};
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

pub(crate) fn location_not_found(id: &LocationId) -> DomainError {
    DomainError::NotFound {
        resource: "emergency location",
        name: id.to_string(),
    }
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
