//! The service's messages to and from the store's: civic addresses, validation states, and the
//! addresses and locations answered (a dry run's without ids).

use crate::convert::timestamp;
use crate::domain::emergency::{CivicAddress, Validation, ValidationState};
use crate::domain::ids::{AccountId, AddressId};
use crate::proto;
use crate::store::{EmergencyAddressView, EmergencyLocationView};

pub(super) fn civic_address(a: &proto::CivicAddress) -> CivicAddress {
    CivicAddress {
        country: a.country.clone(),
        company_name: a.company_name.clone(),
        house_number: a.house_number.clone(),
        house_number_suffix: a.house_number_suffix.clone(),
        pre_directional: a.pre_directional.clone(),
        street_name: a.street_name.clone(),
        street_suffix: a.street_suffix.clone(),
        post_directional: a.post_directional.clone(),
        city: a.city.clone(),
        state_or_province: a.state_or_province.clone(),
        postal_code: a.postal_code.clone(),
        latitude: a.latitude,
        longitude: a.longitude,
    }
}

pub(super) fn validation_state_from(state: proto::ValidationState) -> ValidationState {
    match state {
        proto::ValidationState::StructureValid => ValidationState::StructureValid,
        proto::ValidationState::Invalid => ValidationState::Invalid,
        proto::ValidationState::Unvalidated | proto::ValidationState::Unspecified => {
            ValidationState::Unvalidated
        }
    }
}

fn validation_state(state: ValidationState) -> proto::ValidationState {
    match state {
        ValidationState::Unvalidated => proto::ValidationState::Unvalidated,
        ValidationState::StructureValid => proto::ValidationState::StructureValid,
        ValidationState::Invalid => proto::ValidationState::Invalid,
    }
}

pub fn emergency_address(view: EmergencyAddressView) -> proto::EmergencyAddress {
    let a = view.address;
    proto::EmergencyAddress {
        address_id: view.address_id.into(),
        account_id: view.account_id.into(),
        address: Some(proto::CivicAddress {
            country: a.country,
            company_name: a.company_name,
            house_number: a.house_number,
            house_number_suffix: a.house_number_suffix,
            pre_directional: a.pre_directional,
            street_name: a.street_name,
            street_suffix: a.street_suffix,
            post_directional: a.post_directional,
            city: a.city,
            state_or_province: a.state_or_province,
            postal_code: a.postal_code,
            latitude: a.latitude,
            longitude: a.longitude,
        }),
        validation_state: validation_state(view.validation.state) as i32,
        validation_problems: view
            .validation
            .problems
            .into_iter()
            .map(|p| proto::ValidationProblem {
                field: p.field,
                description: p.description,
            })
            .collect(),
        create_time: Some(timestamp(view.create_time)),
        update_time: Some(timestamp(view.update_time)),
    }
}

/// What a dry run answers for an address it did not write: as it would be stored, without an id
/// or times.
pub(super) fn unsaved_address(
    account_id: AccountId,
    address: CivicAddress,
    validation: Validation,
) -> proto::EmergencyAddress {
    let now = chrono::Utc::now();
    let view = EmergencyAddressView {
        address_id: AddressId::generate(),
        account_id,
        address,
        validation,
        create_time: now,
        update_time: now,
    };
    proto::EmergencyAddress {
        address_id: String::new(),
        create_time: None,
        update_time: None,
        ..emergency_address(view)
    }
}

pub fn emergency_location(view: EmergencyLocationView) -> proto::EmergencyLocation {
    proto::EmergencyLocation {
        location_id: view.location_id.into(),
        account_id: view.account_id.into(),
        address_id: view.address.address_id.to_string(),
        place: view.place,
        address: Some(emergency_address(view.address)),
        create_time: Some(timestamp(view.create_time)),
    }
}
