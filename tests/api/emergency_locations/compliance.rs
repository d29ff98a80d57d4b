//! The users who lack a location their number requires: listed by ListUsers, counted by a
//! gauge.

use super::*;

use super::assignment::with_the_rule;
use crate::common::process::TestProcess;

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

/// The gauge counts, across the organisation, the users that the listing names.
async fn a_gauge_counts_the_users_lacking_a_location(backend: Backend) {
    let server = TestProcess::spawn(
        backend,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--maintenance-interval",
            "200ms",
        ],
        &[("TELEPHONY_ADMIN_EMERGENCY_LOCATION_COUNTRIES", "US,CA")],
    )
    .await;
    let gauge = || async {
        crate::metrics::scrape(&server)
            .await
            .1
            .iter()
            .find(|s| s.name == "telephony_admin_users_missing_emergency_location")
            .map(|s| s.value)
    };
    let wait_for = |expected: f64| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let value = gauge().await;
            if value == Some(expected) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gauge stayed at {value:?}, expected {expected}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let clients = crate::common::clients::Clients::of(&server);
    let (account, users, numbers) = clients.set_up(2, 2).await;
    wait_for(0.0).await;
    let mut locations = server.emergency_locations();
    let address = locations
        .create_emergency_address(CreateEmergencyAddressRequest {
            account_id: account.clone(),
            address: Some(white_house()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let location = locations
        .create_emergency_location(CreateEmergencyLocationRequest {
            address_id: address.address_id,
            place: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .location_id;
    // Both get a number with a location, then lose the location.
    for (user, number) in users.iter().zip(&numbers) {
        server
            .telephony()
            .assign_phone_number(AssignPhoneNumberRequest {
                account_id: account.clone(),
                user_id: user.clone(),
                e164_phone_number: number.clone(),
                request_id: String::new(),
                emergency_location_id: location.clone(),
            })
            .await
            .unwrap();
        locations
            .set_emergency_location(SetEmergencyLocationRequest {
                target: Some(Target::User(UserRef {
                    account_id: account.clone(),
                    user_id: user.clone(),
                })),
                location_id: String::new(),
            })
            .await
            .unwrap();
    }
    wait_for(2.0).await;
    locations
        .set_emergency_location(SetEmergencyLocationRequest {
            target: Some(Target::AccountId(account.clone())),
            location_id: location,
        })
        .await
        .unwrap();
    wait_for(0.0).await;
}

on_both_databases!(
    users_lacking_a_required_location_are_listed,
    a_gauge_counts_the_users_lacking_a_location,
);
