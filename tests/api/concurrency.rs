//! Races on assignment, on both databases: many users grabbing one number, one user grabbing many
//! numbers, concurrent retries of one idempotent request, and the schema constraint that backs
//! the one-number-per-user rule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::fixtures::number;
use crate::common::{Backend, TestApp, spawn_app};
use sea_orm::{ConnectionTrait, Database, DbBackend, SqlErr, Statement};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, ListPhoneNumbersRequest, PhoneNumber,
    PhoneNumberStatus, User,
};
use tokio::sync::Barrier;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Concurrent requests per race.
const RACERS: usize = 16;
/// Each race runs this many times on fresh users and numbers.
const ROUNDS: usize = 3;
/// Concurrent retries of one idempotent request.
const RETRIES: usize = 8;
/// Upper bound for a whole race; only reached if requests hang.
const RACE_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers, all through the public API.
// ---------------------------------------------------------------------------------------------

async fn list_numbers(app: &TestApp, status: PhoneNumberStatus, user_id: &str) -> Vec<PhoneNumber> {
    let response = app
        .numbers()
        .list_phone_numbers(ListPhoneNumbersRequest {
            status: status as i32,
            user_id: user_id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list phone numbers")
        .into_inner();
    assert!(
        response.next_page_token.is_empty(),
        "one page holds them all"
    );
    response.phone_numbers
}

/// The account's PHONE_NUMBER_ASSIGNED events, in sequence order (all pages).
async fn assigned_events(app: &TestApp, account_id: &str) -> Vec<ChangeEvent> {
    app.all_changes(account_id, "")
        .await
        .into_iter()
        .filter(|e| e.kind == ChangeKind::PhoneNumberAssigned as i32)
        .collect()
}

/// Sends every request at once: each on its own task with its own client, released together by
/// a barrier. Returns the outcomes in request order.
async fn race(app: &TestApp, requests: Vec<AssignPhoneNumberRequest>) -> Vec<Result<User, Status>> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let mut client = app.telephony();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                client
                    .assign_phone_number(request)
                    .await
                    .map(|r| r.into_inner())
            })
        })
        .collect();
    tokio::time::timeout(RACE_TIMEOUT, futures::future::join_all(tasks))
        .await
        .expect("every racing request is answered")
        .into_iter()
        .map(|joined| joined.expect("racing task"))
        .collect()
}

/// The winners; every loser must have lost cleanly: FAILED_PRECONDITION with `reason`, or
/// ABORTED (a conflict the caller may retry).
fn winners(results: &[Result<User, Status>], reason: &str, label: &str) -> Vec<User> {
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut won = Vec::new();
    for result in results {
        match result {
            Ok(user) => {
                *codes.entry("OK".into()).or_default() += 1;
                won.push(user.clone());
            }
            Err(status) => {
                *codes.entry(format!("{:?}", status.code())).or_default() += 1;
                match status.code() {
                    Code::FailedPrecondition => {
                        let failure = status
                            .get_details_precondition_failure()
                            .expect("a google.rpc.PreconditionFailure detail");
                        assert_eq!(failure.violations[0].r#type, reason, "{status:?}");
                    }
                    Code::Aborted => {
                        assert!(status.message().contains("retry"), "{status:?}");
                    }
                    other => panic!("a racing request failed with {other:?}: {status:?}"),
                }
            }
        }
    }
    eprintln!("{label}: {codes:?}");
    won
}

// ---------------------------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------------------------

async fn many_users_race_for_one_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let account_id = app.create_account("Acme").await.account_id;

    for round in 0..ROUNDS {
        let contested = number(round);
        app.order_business_numbers(std::slice::from_ref(&contested))
            .await;
        let mut users = Vec::new();
        for i in 0..RACERS {
            users.push(
                app.create_user(&account_id, &format!("r{round}-u{i}@example.com"))
                    .await,
            );
        }
        let requests = users
            .iter()
            .map(|user| AssignPhoneNumberRequest {
                emergency_location_id: String::new(),
                account_id: account_id.clone(),
                user_id: user.user_id.clone(),
                e164_phone_number: contested.clone(),
                request_id: String::new(),
            })
            .collect();

        let results = race(&app, requests).await;
        let won = winners(
            &results,
            "PHONE_NUMBER_ASSIGNED",
            &format!("{backend:?} one number, round {round}"),
        );
        assert_eq!(
            won.len(),
            1,
            "exactly one user gets the number: {results:?}"
        );
        let winner = &won[0];
        assert_eq!(winner.primary_phone_number, contested);

        let association = app
            .get_number(&contested)
            .await
            .association
            .expect("the number is assigned");
        assert_eq!(association.user_id, winner.user_id);
        assert_eq!(association.account_id, account_id);
        for user in &users {
            let held = app
                .get_user(&account_id, &user.user_id)
                .await
                .primary_phone_number;
            if user.user_id == winner.user_id {
                assert_eq!(held, contested);
            } else {
                assert_eq!(held, "", "a loser holds no number");
            }
        }

        let events: Vec<_> = assigned_events(&app, &account_id)
            .await
            .into_iter()
            .filter(|e| e.e164_phone_number == contested)
            .collect();
        assert_eq!(
            events.len(),
            1,
            "one event for the one assignment: {events:?}"
        );
        assert_eq!(events[0].user_id, winner.user_id);
    }
}

async fn one_user_races_for_many_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    let account_id = app.create_account("Acme").await.account_id;

    for round in 0..ROUNDS {
        let user = app
            .create_user(&account_id, &format!("r{round}@example.com"))
            .await;
        let numbers: Vec<String> = (0..RACERS).map(|i| number(round * RACERS + i)).collect();
        app.order_business_numbers(&numbers).await;
        let requests = numbers
            .iter()
            .map(|e164| AssignPhoneNumberRequest {
                emergency_location_id: String::new(),
                account_id: account_id.clone(),
                user_id: user.user_id.clone(),
                e164_phone_number: e164.clone(),
                request_id: String::new(),
            })
            .collect();

        let results = race(&app, requests).await;
        let won = winners(
            &results,
            "USER_HAS_PHONE_NUMBER",
            &format!("{backend:?} one user, round {round}"),
        );
        assert_eq!(
            won.len(),
            1,
            "exactly one number goes to the user: {results:?}"
        );
        let held = won[0].primary_phone_number.clone();
        assert!(numbers.contains(&held), "{held}");
        assert_eq!(
            app.get_user(&account_id, &user.user_id)
                .await
                .primary_phone_number,
            held
        );

        let of_user = list_numbers(&app, PhoneNumberStatus::Assigned, &user.user_id).await;
        assert_eq!(of_user.len(), 1, "{of_user:?}");
        assert_eq!(of_user[0].e164_phone_number, held);
        // One assigned number per round so far; every other number stayed in the inventory.
        let assigned = list_numbers(&app, PhoneNumberStatus::Assigned, "").await;
        assert_eq!(assigned.len(), round + 1, "{assigned:?}");
        let unassigned = list_numbers(&app, PhoneNumberStatus::Unassigned, "").await;
        assert_eq!(unassigned.len(), (round + 1) * (RACERS - 1));

        let events: Vec<_> = assigned_events(&app, &account_id)
            .await
            .into_iter()
            .filter(|e| e.user_id == user.user_id)
            .collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].e164_phone_number, held);
    }
}

async fn concurrent_retries_share_one_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let account_id = app.create_account("Acme").await.account_id;

    for round in 0..ROUNDS {
        let user = app
            .create_user(&account_id, &format!("r{round}@example.com"))
            .await;
        let e164 = number(round);
        app.order_business_numbers(std::slice::from_ref(&e164))
            .await;
        let request = AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account_id.clone(),
            user_id: user.user_id.clone(),
            e164_phone_number: e164.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        };

        let results = race(&app, vec![request; RETRIES]).await;
        // Concurrent retries wait for the first attempt and get its result: none fails.
        let first = results[0].as_ref().expect("every retry succeeds").clone();
        for result in &results {
            assert_eq!(result.as_ref().expect("every retry succeeds"), &first);
        }
        assert_eq!(first.primary_phone_number, e164);

        let events: Vec<_> = assigned_events(&app, &account_id)
            .await
            .into_iter()
            .filter(|e| e.user_id == user.user_id)
            .collect();
        assert_eq!(
            events.len(),
            1,
            "one event however many retries: {events:?}"
        );
    }
}

/// The one-number-per-user rule does not rest on the service's locking alone: the schema itself
/// refuses a second number for a user.
async fn schema_refuses_a_second_number_for_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let account_id = app.create_account("Acme").await.account_id;
    let user = app.create_user(&account_id, "ada@example.com").await;
    app.order_business_numbers(&[number(0), number(1)]).await;
    app.telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account_id.clone(),
            user_id: user.user_id.clone(),
            e164_phone_number: number(0),
            request_id: String::new(),
        })
        .await
        .expect("assign the first number");

    // Raw SQL on purpose: the point is what the database accepts, below the service's rules,
    // so the API cannot be used to attempt the write.
    let db = Database::connect(app.database_url.as_str())
        .await
        .expect("connect to the test database");
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "UPDATE phone_numbers SET status = 'ASSIGNED', account_id = $1, user_id = $2 WHERE e164 = $3"
        }
        _ => {
            "UPDATE phone_numbers SET status = 'ASSIGNED', account_id = ?, user_id = ? WHERE e164 = ?"
        }
    };
    let err = db
        .execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [
                account_id.clone().into(),
                user.user_id.clone().into(),
                number(1).into(),
            ],
        ))
        .await
        .expect_err("the database refuses a second number for the user");
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => assert!(
            // PostgreSQL names the index; SQLite names the column.
            message.contains("phone_numbers_user_unique")
                || message.contains("phone_numbers.user_id"),
            "{message}"
        ),
        other => panic!("expected a unique violation, got {other:?} from {err:?}"),
    }
    db.close().await.ok();

    assert_eq!(
        app.get_number(&number(1)).await.status,
        PhoneNumberStatus::Unassigned as i32
    );
    assert_eq!(
        app.get_user(&account_id, &user.user_id)
            .await
            .primary_phone_number,
        number(0)
    );
}

on_both_databases!(
    many_users_race_for_one_number,
    one_user_races_for_many_numbers,
    concurrent_retries_share_one_result,
    schema_refuses_a_second_number_for_one_user,
);
