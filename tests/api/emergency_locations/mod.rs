//! Emergency addresses and locations end to end: validation per country (US, CA, a country
//! without rules), keyset pages with filters, who may do what, the effective location's
//! precedence seen through the events it writes, an address corrected in place reaching
//! everyone on it (1,000 users in one transaction), and deletion refused while in use.

mod assignment;
mod compliance;
mod imports;
mod locations;

use telephony_admin::proto::{
    AssignPhoneNumberRequest, BatchAssignPhoneNumbersRequest, ChangeKind, CivicAddress,
    CreateEmergencyAddressRequest, CreateEmergencyLocationRequest, DeleteEmergencyAddressRequest,
    DeleteEmergencyLocationRequest, EmergencyAddress, EmergencyLocation,
    EmergencyLocationSource as Source, GetEmergencyAddressRequest, ListChangesRequest,
    ListEmergencyAddressesRequest, ListEmergencyLocationsRequest, ListUsersRequest,
    SetEmergencyLocationRequest, UpdateEmergencyAddressRequest, UserRef, ValidationState,
    batch_assign_phone_numbers_request, set_emergency_location_request::Target,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::batch::bulk_users;
use crate::common::fixtures::number;
use crate::common::{Backend, TestApp, account_scope, spawn_app, spawn_app_on, spawn_app_with};
use telephony_admin::keys::{Role, Scope};

pub(super) fn white_house() -> CivicAddress {
    CivicAddress {
        country: "US".into(),
        company_name: "Acme".into(),
        house_number: "1600".into(),
        street_name: "Pennsylvania".into(),
        street_suffix: "Ave".into(),
        post_directional: "NW".into(),
        city: "Washington".into(),
        state_or_province: "DC".into(),
        postal_code: "20500".into(),
        ..Default::default()
    }
}

pub(super) async fn create_address(
    app: &TestApp,
    account: &str,
    address: CivicAddress,
) -> EmergencyAddress {
    app.emergency_locations()
        .create_emergency_address(CreateEmergencyAddressRequest {
            account_id: account.into(),
            address: Some(address),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("create address: {s:?}"))
        .into_inner()
}

pub(super) async fn create_location(
    app: &TestApp,
    address_id: &str,
    place: &str,
) -> EmergencyLocation {
    app.emergency_locations()
        .create_emergency_location(CreateEmergencyLocationRequest {
            address_id: address_id.into(),
            place: place.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("create location: {s:?}"))
        .into_inner()
}

pub(super) async fn set(
    app: &TestApp,
    target: Target,
    location_id: &str,
) -> Result<(), tonic::Status> {
    app.emergency_locations()
        .set_emergency_location(SetEmergencyLocationRequest {
            target: Some(target),
            location_id: location_id.into(),
        })
        .await
        .map(|_| ())
}

pub(super) fn problem_fields(address: &EmergencyAddress) -> Vec<&str> {
    address
        .validation_problems
        .iter()
        .map(|p| p.field.as_str())
        .collect()
}

/// The users that got an EMERGENCY_LOCATION_UPDATED event after `after`, in order.
pub(super) async fn location_events(
    app: &TestApp,
    account: &str,
    after: u64,
) -> Vec<(String, u64)> {
    app.all_changes_as(
        &app.admin_key,
        ListChangesRequest {
            account_id: account.into(),
            after_sequence: after,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .filter(|e| e.kind == ChangeKind::EmergencyLocationUpdated as i32)
    .inspect(|e| assert!(!e.sign_out_required, "no sign-in needed: {e:?}"))
    .map(|e| (e.user_id, e.sequence))
    .collect()
}

/// GetUser's effective location: its id and source.
pub(super) async fn effective(
    app: &TestApp,
    account: &str,
    user: &str,
) -> Option<(String, Source)> {
    let location = app.get_user(account, user).await.emergency_location?;
    Some((
        location.location_id,
        Source::try_from(location.source).unwrap(),
    ))
}

pub(super) async fn head(app: &TestApp, account: &str) -> u64 {
    app.all_changes(account, "")
        .await
        .last()
        .map_or(0, |e| e.sequence)
}

async fn addresses_are_validated_per_country_and_listed(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;

    let valid = create_address(&app, &account, white_house()).await;
    assert_eq!(
        valid.validation_state,
        ValidationState::StructureValid as i32
    );
    assert!(valid.validation_problems.is_empty());

    let bad_us = create_address(
        &app,
        &account,
        CivicAddress {
            state_or_province: "XX".into(),
            postal_code: "2050".into(),
            house_number: String::new(),
            ..white_house()
        },
    )
    .await;
    assert_eq!(bad_us.validation_state, ValidationState::Invalid as i32);
    assert_eq!(
        problem_fields(&bad_us),
        ["house_number", "state_or_province", "postal_code"]
    );

    let canada = CivicAddress {
        country: "ca".into(),
        house_number: "111".into(),
        street_name: "Wellington".into(),
        street_suffix: "St".into(),
        city: "Ottawa".into(),
        state_or_province: "on".into(),
        postal_code: "k1a0a9".into(),
        ..Default::default()
    };
    let ca = create_address(&app, &account, canada.clone()).await;
    assert_eq!(ca.validation_state, ValidationState::StructureValid as i32);
    let stored = ca.address.clone().unwrap();
    assert_eq!(
        (stored.country.as_str(), stored.state_or_province.as_str()),
        ("CA", "ON")
    );
    let bad_ca = create_address(
        &app,
        &account,
        CivicAddress {
            postal_code: "12345".into(),
            ..canada
        },
    )
    .await;
    assert_eq!(problem_fields(&bad_ca), ["postal_code"]);

    let gb = create_address(
        &app,
        &account,
        CivicAddress {
            country: "GB".into(),
            house_number: "10".into(),
            street_name: "Downing Street".into(),
            city: "London".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        gb.validation_state,
        ValidationState::Unvalidated as i32,
        "no rules for GB: not claimed valid"
    );

    let refused = app
        .emergency_locations()
        .create_emergency_address(CreateEmergencyAddressRequest {
            account_id: account.clone(),
            address: Some(CivicAddress {
                country: "USA".into(),
                latitude: Some(10.0),
                ..white_house()
            }),
            ..Default::default()
        })
        .await
        .expect_err("malformed");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["address.country", "address.latitude"]);

    // Filters and keyset pages.
    let list = |country: &str, state: ValidationState, page_token: String| {
        let mut client = app.emergency_locations();
        let account = account.clone();
        let country = country.to_owned();
        async move {
            client
                .list_emergency_addresses(ListEmergencyAddressesRequest {
                    account_id: account,
                    country,
                    validation_state: state as i32,
                    page_size: 1,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = list("US", ValidationState::Unspecified, String::new()).await;
    assert_eq!(first.addresses[0].address_id, valid.address_id);
    let second = list("US", ValidationState::Unspecified, first.next_page_token).await;
    assert_eq!(second.addresses[0].address_id, bad_us.address_id);
    assert!(second.next_page_token.is_empty());
    let invalid = list("", ValidationState::Invalid, String::new()).await;
    assert_eq!(invalid.addresses[0].address_id, bad_us.address_id);
    let next = list("", ValidationState::Invalid, invalid.next_page_token).await;
    assert_eq!(next.addresses[0].address_id, bad_ca.address_id);
}

on_both_databases!(addresses_are_validated_per_country_and_listed);
