//! Locations given and taken, the effective location's precedence through GetUser,
//! GetPhoneNumber and the events it writes, an address corrected in place reaching its 1,000
//! users in one transaction, deletion refused while in use, and who may do what.

use super::*;
use crate::common::http_receiver::{Mode, Receiver};
use telephony_admin::proto::watch_changes_response;

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
    let listed = app
        .all_numbers(telephony_admin::proto::ListPhoneNumbersRequest {
            emergency_location_id: floor2.location_id.clone(),
            ..Default::default()
        })
        .await;
    let listed: Vec<&str> = listed
        .iter()
        .map(|n| n.e164_phone_number.as_str())
        .collect();
    assert_eq!(listed, [number(1)], "numbers by their own location");
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
    assert!(
        refused.message().contains(&format!("user {user}")),
        "the holders are named: {refused:?}"
    );
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
                    ..Default::default()
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
/// consecutive sequences (one transaction), seen by a watcher and delivered to a webhook.
async fn correcting_an_address_reaches_a_thousand_users_at_once(backend: Backend) {
    const USERS: usize = 1000;
    let app = spawn_app_with(backend, crate::webhooks::fast_delivery).await;
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
    // A watcher and a webhook, from before the edit.
    let mut stream = app
        .changes()
        .watch_changes(telephony_admin::proto::WatchChangesRequest {
            account_id: account.clone(),
            after_sequence: Some(start),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let receiver = Receiver::start(Mode::Accept).await;
    crate::webhooks::create_for(&app, &receiver, None).await;
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
    let mut watched = 0;
    while watched < USERS {
        let wait = tokio::time::timeout(std::time::Duration::from_secs(30), stream.message());
        let message = wait
            .await
            .expect("events in time")
            .unwrap()
            .expect("stream open");
        if let Some(watch_changes_response::Kind::Event(event)) = message.kind {
            assert_eq!(event.kind, ChangeKind::EmergencyLocationUpdated as i32);
            watched += 1;
        }
    }
    let delivered = receiver
        .wait_for(USERS, std::time::Duration::from_secs(120))
        .await;
    assert!(
        delivered
            .iter()
            .all(|d| d.kind == "CHANGE_KIND_EMERGENCY_LOCATION_UPDATED")
    );
    assert!(receiver.bad_signatures().is_empty());
    let events = location_events(&app, &account, start).await;
    assert_eq!(events.len(), USERS);
    let sequences: Vec<u64> = events.iter().map(|(_, s)| *s).collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: one transaction"
    );
    println!("{backend:?}: an address of {USERS} users corrected in {took:?}");
}

/// UpdateUser and BatchUpdateUsers set and take away users' own locations when the mask names
/// `emergency_location_id`, item by item; every user whose location moved hears of it.
async fn user_updates_set_and_clear_locations(backend: Backend) {
    use crate::common::fixtures::mask;
    use telephony_admin::proto::{
        BatchUpdateUsersRequest, UpdateUserRequest, batch_update_users_request,
    };
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let users: Vec<String> = bulk_users(&app, &account, "u", 3)
        .await
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "Floor 4").await;
    let item = |user: &str, location: &str| batch_update_users_request::Item {
        user_id: user.into(),
        emergency_location_id: location.into(),
        update_mask: Some(mask(&["emergency_location_id"])),
        ..Default::default()
    };
    let start = head(&app, &account).await;
    let results = app
        .users()
        .batch_update_users(BatchUpdateUsersRequest {
            account_id: account.clone(),
            items: vec![
                item(&users[0], &location.location_id),
                item(&users[1], &location.location_id),
                item(&users[2], crate::common::fixtures::UNKNOWN_ID),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let codes: Vec<Code> = results
        .iter()
        .map(|r| Code::from(r.status.as_ref().map_or(0, |s| s.code)))
        .collect();
    assert_eq!(codes, [Code::Ok, Code::Ok, Code::NotFound]);
    let moved: Vec<String> = location_events(&app, &account, start)
        .await
        .into_iter()
        .map(|(user, _)| user)
        .collect();
    assert_eq!(moved, users[..2]);
    assert_eq!(
        effective(&app, &account, &users[0]).await,
        Some((location.location_id.clone(), Source::User))
    );

    // A name change leaves the location alone; naming the path with no id takes it away.
    let update = |user: &str, paths: &[&str]| UpdateUserRequest {
        account_id: account.clone(),
        user_id: user.into(),
        display_name: "Renamed".into(),
        update_mask: Some(mask(paths)),
        ..Default::default()
    };
    app.users()
        .update_user(update(&users[1], &["display_name"]))
        .await
        .unwrap();
    assert!(effective(&app, &account, &users[1]).await.is_some());
    let start = head(&app, &account).await;
    app.users()
        .update_user(update(&users[0], &["emergency_location_id"]))
        .await
        .unwrap();
    assert_eq!(effective(&app, &account, &users[0]).await, None);
    assert_eq!(location_events(&app, &account, start).await.len(), 1);
}

/// A deleted user, a number back in the inventory and a deleted account hold no location any
/// more: the location can be deleted, and the number shows none.
async fn holders_that_leave_release_their_locations(backend: Backend) {
    use telephony_admin::proto::{DeleteAccountRequest, DeleteUserRequest};
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let user = app.create_user(&account, "a@example.com").await.user_id;
    app.order_business_numbers(&[number(31)]).await;
    app.assign(&account, &user, &number(31)).await.unwrap();
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "").await;
    let by_user = Target::User(UserRef {
        account_id: account.clone(),
        user_id: user.clone(),
    });
    set(&app, by_user, &location.location_id).await.unwrap();
    set(&app, Target::PhoneNumber(number(31)), &location.location_id)
        .await
        .unwrap();
    app.users()
        .delete_user(DeleteUserRequest {
            account_id: account.clone(),
            user_id: user,
        })
        .await
        .unwrap();
    assert!(
        app.get_number(&number(31))
            .await
            .emergency_location
            .is_none()
    );
    app.emergency_locations()
        .delete_emergency_location(DeleteEmergencyLocationRequest {
            location_id: location.location_id,
        })
        .await
        .expect("no holder is left");
    // An account goes with its addresses and locations.
    let other = create_location(&app, &address.address_id, "Floor 9").await;
    set(&app, Target::AccountId(account.clone()), &other.location_id)
        .await
        .unwrap();
    app.accounts()
        .delete_account(DeleteAccountRequest {
            account_id: account,
        })
        .await
        .unwrap();
    let gone = app
        .emergency_locations()
        .get_emergency_address(GetEmergencyAddressRequest {
            address_id: address.address_id,
        })
        .await
        .expect_err("deleted with its account");
    assert_eq!(gone.code(), Code::NotFound);
}

on_both_databases!(
    holders_that_leave_release_their_locations,
    user_updates_set_and_clear_locations,
    the_effective_location_moves_and_each_user_hears_of_it,
    nothing_in_use_is_deleted,
    keys_reach_their_account_and_viewers_only_read,
    correcting_an_address_reaches_a_thousand_users_at_once,
);
