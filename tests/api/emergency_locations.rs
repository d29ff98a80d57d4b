//! Emergency addresses and locations end to end: validation per country (US, CA, a country
//! without rules), keyset pages with filters, who may do what, the effective location's
//! precedence seen through the events it writes, an address corrected in place reaching
//! everyone on it (1,000 users in one transaction), and deletion refused while in use.

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

fn white_house() -> CivicAddress {
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

async fn create_address(app: &TestApp, account: &str, address: CivicAddress) -> EmergencyAddress {
    app.emergency_locations()
        .create_emergency_address(CreateEmergencyAddressRequest {
            account_id: account.into(),
            address: Some(address),
        })
        .await
        .unwrap_or_else(|s| panic!("create address: {s:?}"))
        .into_inner()
}

async fn create_location(app: &TestApp, address_id: &str, place: &str) -> EmergencyLocation {
    app.emergency_locations()
        .create_emergency_location(CreateEmergencyLocationRequest {
            address_id: address_id.into(),
            place: place.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("create location: {s:?}"))
        .into_inner()
}

async fn set(app: &TestApp, target: Target, location_id: &str) -> Result<(), tonic::Status> {
    app.emergency_locations()
        .set_emergency_location(SetEmergencyLocationRequest {
            target: Some(target),
            location_id: location_id.into(),
        })
        .await
        .map(|_| ())
}

fn problem_fields(address: &EmergencyAddress) -> Vec<&str> {
    address
        .validation_problems
        .iter()
        .map(|p| p.field.as_str())
        .collect()
}

/// The users that got an EMERGENCY_LOCATION_UPDATED event after `after`, in order.
async fn location_events(app: &TestApp, account: &str, after: u64) -> Vec<(String, u64)> {
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
async fn effective(app: &TestApp, account: &str, user: &str) -> Option<(String, Source)> {
    let location = app.get_user(account, user).await.emergency_location?;
    Some((
        location.location_id,
        Source::try_from(location.source).unwrap(),
    ))
}

async fn head(app: &TestApp, account: &str) -> u64 {
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

async fn the_effective_location_moves_and_each_user_hears_of_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let with_number = app.create_user(&account, "a@example.com").await.user_id;
    let without = app.create_user(&account, "b@example.com").await.user_id;
    app.order_business_numbers(&[number(1)]).await;
    app.assign(&account, &with_number, &number(1))
        .await
        .unwrap();
    let address = create_address(&app, &account, white_house()).await;
    let floor1 = create_location(&app, &address.address_id, "Floor 1").await;
    let floor2 = create_location(&app, &address.address_id, " Floor 2 ").await;
    assert_eq!(floor2.place, "Floor 2");
    assert_eq!(
        floor2.address.as_ref().unwrap().address_id,
        address.address_id
    );

    // The account's default reaches both users.
    let start = head(&app, &account).await;
    set(
        &app,
        Target::AccountId(account.clone()),
        &floor1.location_id,
    )
    .await
    .unwrap();
    let events = location_events(&app, &account, start).await;
    let users: Vec<&str> = events.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(users, [with_number.as_str(), without.as_str()]);
    assert_eq!(
        effective(&app, &account, &without).await,
        Some((floor1.location_id.clone(), Source::AccountDefault))
    );

    // A user's own location overrides the default: only that user moves.
    let start = head(&app, &account).await;
    let user_target = Target::User(UserRef {
        account_id: account.clone(),
        user_id: without.clone(),
    });
    set(&app, user_target.clone(), &floor2.location_id)
        .await
        .unwrap();
    let events = location_events(&app, &account, start).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, without);
    assert_eq!(
        effective(&app, &account, &without).await,
        Some((floor2.location_id.clone(), Source::User))
    );

    // A number's location overrides its holder's: only its holder moves.
    let start = head(&app, &account).await;
    set(&app, Target::PhoneNumber(number(1)), &floor2.location_id)
        .await
        .unwrap();
    let events = location_events(&app, &account, start).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, with_number);
    assert_eq!(
        effective(&app, &account, &with_number).await,
        Some((floor2.location_id.clone(), Source::Number))
    );
    let on_number = app.get_number(&number(1)).await.emergency_location.unwrap();
    assert_eq!(on_number.location_id, floor2.location_id);
    assert_eq!(on_number.source, Source::Number as i32);
    // Setting what is already there moves no one.
    let start = head(&app, &account).await;
    set(&app, Target::PhoneNumber(number(1)), &floor2.location_id)
        .await
        .unwrap();
    assert!(location_events(&app, &account, start).await.is_empty());

    // Correcting the address reaches everyone on it; no sign-out is asked of them.
    let start = head(&app, &account).await;
    let corrected = app
        .emergency_locations()
        .update_emergency_address(UpdateEmergencyAddressRequest {
            address_id: address.address_id.clone(),
            address: Some(CivicAddress {
                postal_code: "20500-0003".into(),
                ..white_house()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(corrected.address_id, address.address_id);
    assert_eq!(corrected.address.unwrap().postal_code, "20500-0003");
    assert_eq!(location_events(&app, &account, start).await.len(), 2);
    let user = app.get_user(&account, &without).await;
    assert!(
        user.sign_out_pending.is_none()
            || user.sign_out_pending.unwrap().latest_change_sequence <= start,
        "a location change asks no sign-out"
    );

    // Taking the user's own location away falls back to the default.
    let start = head(&app, &account).await;
    set(&app, user_target, "").await.unwrap();
    assert_eq!(location_events(&app, &account, start).await.len(), 1);
    assert_eq!(
        effective(&app, &account, &without).await,
        Some((floor1.location_id.clone(), Source::AccountDefault))
    );
}

async fn nothing_in_use_is_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let user = app.create_user(&account, "a@example.com").await.user_id;
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "").await;
    let target = Target::User(UserRef {
        account_id: account.clone(),
        user_id: user.clone(),
    });
    set(&app, target.clone(), &location.location_id)
        .await
        .unwrap();

    let refused = app
        .emergency_locations()
        .delete_emergency_location(DeleteEmergencyLocationRequest {
            location_id: location.location_id.clone(),
        })
        .await
        .expect_err("in use");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("1 user(s)"), "{refused:?}");
    assert_eq!(
        refused
            .get_details_precondition_failure()
            .unwrap()
            .violations[0]
            .r#type,
        "LOCATION_IN_USE"
    );
    let refused = app
        .emergency_locations()
        .delete_emergency_address(DeleteEmergencyAddressRequest {
            address_id: address.address_id.clone(),
        })
        .await
        .expect_err("has a location");
    assert_eq!(
        refused
            .get_details_precondition_failure()
            .unwrap()
            .violations[0]
            .r#type,
        "ADDRESS_IN_USE"
    );

    set(&app, target, "").await.unwrap();
    app.emergency_locations()
        .delete_emergency_location(DeleteEmergencyLocationRequest {
            location_id: location.location_id,
        })
        .await
        .unwrap();
    app.emergency_locations()
        .delete_emergency_address(DeleteEmergencyAddressRequest {
            address_id: address.address_id.clone(),
        })
        .await
        .unwrap();
    let gone = app
        .emergency_locations()
        .get_emergency_address(GetEmergencyAddressRequest {
            address_id: address.address_id,
        })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
}

async fn keys_reach_their_account_and_viewers_only_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let other = app.create_account("Other").await.account_id;
    let address = create_address(&app, &acme, white_house()).await;
    let location = create_location(&app, &address.address_id, "").await;
    let acme_admin = app.create_key(Role::Admin, account_scope(&acme)).await;
    let other_admin = app.create_key(Role::Admin, account_scope(&other)).await;
    let viewer = app.create_key(Role::Viewer, Scope::Organisation).await;

    let get = |key: &str| {
        let mut client = app.emergency_locations_as(Some(key));
        let id = address.address_id.clone();
        async move {
            client
                .get_emergency_address(GetEmergencyAddressRequest { address_id: id })
                .await
        }
    };
    assert!(get(&acme_admin).await.is_ok());
    assert!(get(&viewer).await.is_ok());
    assert_eq!(
        get(&other_admin).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let create = |key: &str, account: &str| {
        let mut client = app.emergency_locations_as(Some(key));
        let account = account.to_owned();
        async move {
            client
                .create_emergency_address(CreateEmergencyAddressRequest {
                    account_id: account,
                    address: Some(white_house()),
                })
                .await
        }
    };
    assert!(create(&acme_admin, &acme).await.is_ok());
    assert_eq!(
        create(&viewer, &acme).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        create(&acme_admin, &other).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let listed = app
        .emergency_locations_as(Some(&viewer))
        .list_emergency_locations(ListEmergencyLocationsRequest {
            account_id: acme.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.locations.len(), 1);

    // A location of another account cannot be given.
    let other_user = app.create_user(&other, "o@example.com").await.user_id;
    let refused = set(
        &app,
        Target::User(UserRef {
            account_id: other,
            user_id: other_user,
        }),
        &location.location_id,
    )
    .await
    .expect_err("another account's location");
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

/// An address with 1,000 users on it (the account's default) is corrected: 1,000 events, with
/// consecutive sequences (one transaction).
async fn correcting_an_address_reaches_a_thousand_users_at_once(backend: Backend) {
    const USERS: usize = 1000;
    let app = spawn_app(backend).await;
    let account = app.create_account("Big").await.account_id;
    bulk_users(&app, &account, "u", USERS).await;
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "HQ").await;
    set(
        &app,
        Target::AccountId(account.clone()),
        &location.location_id,
    )
    .await
    .unwrap();

    let start = head(&app, &account).await;
    let started = std::time::Instant::now();
    app.emergency_locations()
        .update_emergency_address(UpdateEmergencyAddressRequest {
            address_id: address.address_id,
            address: Some(CivicAddress {
                company_name: "Acme Inc.".into(),
                ..white_house()
            }),
        })
        .await
        .unwrap();
    let took = started.elapsed();
    let events = location_events(&app, &account, start).await;
    assert_eq!(events.len(), USERS);
    let sequences: Vec<u64> = events.iter().map(|(_, s)| *s).collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: one transaction"
    );
    println!("{backend:?}: an address of {USERS} users corrected in {took:?}");
}

fn with_the_rule(settings: &mut telephony_admin::config::ServeSettings) {
    settings.emergency_location_countries = "US,CA".into();
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

async fn assign_with(
    app: &TestApp,
    account: &str,
    user: &str,
    number: &str,
    location: &str,
) -> Result<telephony_admin::proto::User, tonic::Status> {
    app.telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            account_id: account.into(),
            user_id: user.into(),
            e164_phone_number: number.into(),
            request_id: String::new(),
            emergency_location_id: location.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn batch_assign(
    app: &TestApp,
    account: &str,
    items: &[(&str, &str, &str)],
    atomic: bool,
    validate_only: bool,
) -> Vec<Code> {
    app.telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account.into(),
            items: items
                .iter()
                .map(
                    |(user, number, location)| batch_assign_phone_numbers_request::Item {
                        user_id: (*user).into(),
                        e164_phone_number: (*number).into(),
                        emergency_location_id: (*location).into(),
                    },
                )
                .collect(),
            atomic,
            validate_only,
            request_id: String::new(),
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results
        .into_iter()
        .map(|r| Code::from(r.status.map_or(0, |s| s.code)))
        .collect()
}

/// A US or Canadian number goes only to a user with an emergency location: given with the
/// assignment, their own, or their account's default. Other countries' numbers need none.
async fn a_us_number_needs_an_emergency_location(backend: Backend) {
    let app = spawn_app_with(backend, with_the_rule).await;
    let account = app.create_account("Acme").await.account_id;
    let users: Vec<String> = bulk_users(&app, &account, "u", 5)
        .await
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    const LONDON: &str = "+442071838750";
    app.order_business_numbers(&[number(1), number(2), number(3), number(4), LONDON.into()])
        .await;
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "Floor 3").await;

    let refused = assign_with(&app, &account, &users[0], &number(1), "")
        .await
        .expect_err("no location");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "EMERGENCY_LOCATION_REQUIRED");
    assert!(refused.message().contains("US number"), "{refused:?}");

    // With a location, in the same transaction; the user keeps it for their next number.
    assign_with(&app, &account, &users[0], &number(1), &location.location_id)
        .await
        .expect("assigned with a location");
    app.unassign(&account, &users[0], true).await.unwrap();
    assign_with(&app, &account, &users[0], &number(1), "")
        .await
        .expect("the user's own location now");

    // Other countries' numbers need none.
    assign_with(&app, &account, &users[4], LONDON, "")
        .await
        .expect("a UK number");

    // Batches answer per item as the single RPC does: best effort, dry run, atomic.
    let items = [
        (users[1].as_str(), number(2), ""),
        (users[2].as_str(), number(3), location.location_id.as_str()),
    ];
    let items: Vec<(&str, &str, &str)> =
        items.iter().map(|(u, n, l)| (*u, n.as_str(), *l)).collect();
    assert_eq!(
        batch_assign(&app, &account, &items, false, true).await,
        [Code::FailedPrecondition, Code::Ok],
        "dry run"
    );
    assert_eq!(
        batch_assign(&app, &account, &items, true, false).await,
        [Code::FailedPrecondition, Code::Aborted],
        "atomic"
    );
    assert_eq!(
        batch_assign(&app, &account, &items, false, false).await,
        [Code::FailedPrecondition, Code::Ok],
        "best effort"
    );

    // The account's default covers everyone else.
    set(
        &app,
        Target::AccountId(account.clone()),
        &location.location_id,
    )
    .await
    .unwrap();
    assign_with(&app, &account, &users[1], &number(2), "")
        .await
        .expect("the account's default");

    // A location of another account is not given.
    let other = app.create_account("Other").await.account_id;
    let other_address = create_address(&app, &other, white_house()).await;
    let foreign = create_location(&app, &other_address.address_id, "").await;
    let refused = assign_with(&app, &account, &users[3], &number(4), &foreign.location_id)
        .await
        .expect_err("another account's location");
    assert_eq!(reason(&refused), "LOCATION_OF_ANOTHER_ACCOUNT");
}

/// `import assignments` takes an `emergency_location_id` column; a row without one, for a US
/// number and a user without a location, is refused in the result file.
async fn an_import_gives_locations_with_numbers(backend: Backend) {
    let app = spawn_app_with(backend, with_the_rule).await;
    let account = app.create_account("Import").await.account_id;
    for name in ["ann", "bob"] {
        app.create_user(&account, &format!("{name}@example.com"))
            .await;
    }
    app.order_business_numbers(&[number(11), number(12)]).await;
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "Floor 1").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("assignments.csv");
    std::fs::write(
        &file,
        format!(
            "email,e164_phone_number,emergency_location_id\n\
             ann@example.com,{},{}\n\
             bob@example.com,{},\n",
            number(11),
            location.location_id,
            number(12)
        ),
    )
    .unwrap();
    let output = crate::cli_bulk::cli(
        &app,
        &[
            "import",
            "assignments",
            file.to_str().unwrap(),
            "--account",
            &account,
        ],
    )
    .await;
    assert!(!output.status.success(), "one row is refused");
    let results = dir.path().join("assignments.csv.results.csv");
    assert_eq!(
        crate::cli_bulk::statuses(&results),
        ["OK", "FAILED_PRECONDITION"]
    );
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.contains("needs an emergency location"), "{text}");
}

async fn listed_users(app: &TestApp, account: &str, filter: ListUsersRequest) -> Vec<String> {
    app.users()
        .list_users(ListUsersRequest {
            account_id: account.into(),
            ..filter
        })
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.user_id)
        .collect()
}

/// Users who hold a US number without a location (assigned before the rule was on) show up in
/// the compliance listing until they, their number or their account has a location; users are
/// also listed by the location they hold.
async fn users_lacking_a_required_location_are_listed(backend: Backend) {
    // Before the rule: numbers are assigned without locations.
    let mut app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&account, "ann@example.com").await.user_id;
    let bob = app.create_user(&account, "bob@example.com").await.user_id;
    let cat = app.create_user(&account, "cat@example.com").await.user_id;
    app.create_user(&account, "dan@example.com").await;
    app.order_business_numbers(&[number(21), number(22), number(23)])
        .await;
    for (user, n) in [(&ann, 21), (&bob, 22), (&cat, 23)] {
        app.assign(&account, user, &number(n)).await.unwrap();
    }
    app.stop().await;
    let key = app.admin_key.clone();
    let database = app.database.take().unwrap();
    let app = spawn_app_on(database, |s| {
        with_the_rule(s);
        s.bootstrap_key = Some(key);
    })
    .await;
    let missing = ListUsersRequest {
        missing_emergency_location: true,
        ..Default::default()
    };
    let mut expected = vec![ann.clone(), bob.clone(), cat.clone()];
    expected.sort();
    assert_eq!(
        listed_users(&app, &account, missing.clone()).await,
        expected
    );

    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "").await;
    set(
        &app,
        Target::User(UserRef {
            account_id: account.clone(),
            user_id: ann.clone(),
        }),
        &location.location_id,
    )
    .await
    .unwrap();
    set(&app, Target::PhoneNumber(number(22)), &location.location_id)
        .await
        .unwrap();
    assert_eq!(
        listed_users(&app, &account, missing.clone()).await,
        std::slice::from_ref(&cat)
    );
    assert_eq!(
        listed_users(
            &app,
            &account,
            ListUsersRequest {
                emergency_location_id: location.location_id.clone(),
                ..Default::default()
            }
        )
        .await,
        std::slice::from_ref(&ann),
        "users by their own location"
    );
    set(
        &app,
        Target::AccountId(account.clone()),
        &location.location_id,
    )
    .await
    .unwrap();
    assert!(listed_users(&app, &account, missing).await.is_empty());
}

on_both_databases!(
    users_lacking_a_required_location_are_listed,
    an_import_gives_locations_with_numbers,
    a_us_number_needs_an_emergency_location,
    addresses_are_validated_per_country_and_listed,
    the_effective_location_moves_and_each_user_hears_of_it,
    nothing_in_use_is_deleted,
    keys_reach_their_account_and_viewers_only_read,
    correcting_an_address_reaches_a_thousand_users_at_once,
);
