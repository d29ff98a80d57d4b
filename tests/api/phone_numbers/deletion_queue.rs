//! DeletePhoneNumber and RestorePhoneNumber: the deletion queue, its period, and the purge of
//! expired numbers.

use super::{
    BUSINESS, account_with_user, assert_mentions, by_status, delete, expect_code, list_e164, order,
};
use crate::common::fixtures::unix_now;
use crate::common::{Backend, TestApp, spawn_app, spawn_app_with};
use prost_types::Timestamp;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::Duration;
use telephony_admin::proto::{
    ListPhoneNumbersRequest, PhoneNumber, PhoneNumberOrderStatus, PhoneNumberStatus,
    RestorePhoneNumberRequest,
};
use tonic::{Code, Status};

const SEVEN_DAYS: i64 = 7 * 24 * 3600;

async fn restore(app: &TestApp, id: &str) -> Result<PhoneNumber, Status> {
    app.numbers()
        .restore_phone_number(RestorePhoneNumberRequest {
            phone_number_id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

fn seconds(t: &Option<Timestamp>) -> i64 {
    t.as_ref().expect("timestamp set").seconds
}

/// Polls until the number reads as NOT_FOUND; its deletion time passing is not an event the
/// API can announce.
async fn wait_until_gone(app: &TestApp, id: &str) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match app.try_get_number(id).await {
                Err(status) if status.code() == Code::NotFound => return,
                Ok(number) => {
                    assert_eq!(number.status, PhoneNumberStatus::DeleteInProgress as i32)
                }
                Err(status) => panic!("unexpected status while waiting: {status:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the number is gone once its deletion time has passed");
}

async fn delete_queues_an_unassigned_number(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let deleted = delete(&app, "+1 (206) 555-0100").await.expect("deleted");
    assert_eq!(deleted.status(), PhoneNumberStatus::DeleteInProgress);
    let expected = unix_now() + SEVEN_DAYS;
    let deletion = seconds(&deleted.deletion_time);
    assert!(
        (deletion - expected).abs() <= 60,
        "deletion time {deletion} is not about 7 days from now ({expected})"
    );
    assert_eq!(app.get_number("+12065550100").await, deleted);

    let status = expect_code(delete(&app, "+12065550100").await, Code::FailedPrecondition);
    assert_mentions(&status, "deletion queue");
    assert_eq!(
        app.get_number("+12065550100").await.deletion_time,
        deleted.deletion_time,
        "a second delete does not move the deletion time"
    );

    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    let status = expect_code(
        app.assign(&account_id, &user_id, "+12065550100").await,
        Code::FailedPrecondition,
    );
    assert_mentions(&status, "deletion queue");
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        ""
    );
    assert_eq!(app.get_number("+12065550100").await, deleted);

    expect_code(delete(&app, "+12065550199").await, Code::NotFound);
    expect_code(delete(&app, "hello").await, Code::InvalidArgument);
}

async fn delete_refuses_an_assigned_number(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    app.assign(&account_id, &user_id, "+12065550100")
        .await
        .expect("assigned");
    let before = app.get_number("+12065550100").await;

    let status = expect_code(delete(&app, "+12065550100").await, Code::FailedPrecondition);
    assert_mentions(&status, "assigned");
    let after = app.get_number("+12065550100").await;
    assert_eq!(after, before);
    assert_eq!(after.status(), PhoneNumberStatus::Assigned);
    assert_eq!(after.deletion_time, None);
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        "+12065550100"
    );
}

async fn restore_brings_a_number_back(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;

    let status = expect_code(
        restore(&app, "+12065550101").await,
        Code::FailedPrecondition,
    );
    assert_mentions(&status, "not in the deletion queue");
    assert_eq!(
        app.get_number("+12065550101").await.status(),
        PhoneNumberStatus::Unassigned
    );

    delete(&app, "+12065550100").await.expect("deleted");
    let restored = restore(&app, "+1 206 555 0100").await.expect("restored");
    assert_eq!(restored.status(), PhoneNumberStatus::Unassigned);
    assert_eq!(restored.deletion_time, None);
    assert_eq!(app.get_number("+12065550100").await, restored);

    expect_code(
        restore(&app, "+12065550100").await,
        Code::FailedPrecondition,
    );
    expect_code(restore(&app, "+12065550199").await, Code::NotFound);

    // A restored number is an ordinary inventory number again.
    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    app.assign(&account_id, &user_id, "+12065550100")
        .await
        .expect("a restored number can be assigned");
}

async fn restore_after_the_queue_period_is_not_found(backend: Backend) {
    // The purge runs at start-up and then only after a minute: the expired row is still stored
    // while the test runs, so this checks that an expired number is gone before it is purged.
    let app = spawn_app_with(backend, |s| {
        s.deletion_queue_period = Duration::from_secs(1);
        s.maintenance_interval = Duration::from_secs(3600);
    })
    .await;
    let first = order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;
    let deleted = delete(&app, "+12065550100").await.expect("deleted");
    let deletion = seconds(&deleted.deletion_time);
    assert!(
        (deletion - (unix_now() + 1)).abs() <= 60,
        "the configured queue period applies"
    );

    wait_until_gone(&app, "+12065550100").await;
    let status = expect_code(restore(&app, "+12065550100").await, Code::NotFound);
    assert_mentions(&status, "+12065550100");
    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        ["+12065550101"]
    );
    assert!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress))
            .await
            .is_empty()
    );
    expect_code(delete(&app, "+12065550100").await, Code::NotFound);

    let again = order(&app, BUSINESS, &["+12065550100"]).await;
    assert_eq!(again.status(), PhoneNumberOrderStatus::Successful);
    let number = app.get_number("+12065550100").await;
    assert_eq!(number.status(), PhoneNumberStatus::Unassigned);
    assert_eq!(number.order_id, again.order_id);
    assert_ne!(number.order_id, first.order_id);
    assert_eq!(number.deletion_time, None);
}

/// How many rows the database holds for `e164` (the API cannot tell a purged number from an
/// expired one).
async fn rows_of(app: &TestApp, e164: &str) -> i64 {
    let backend = app.store.connection().get_database_backend();
    let row = app
        .store
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => "SELECT COUNT(*) FROM phone_numbers WHERE e164 = $1",
                _ => "SELECT COUNT(*) FROM phone_numbers WHERE e164 = ?",
            },
            [e164.into()],
        ))
        .await
        .expect("count the number's rows")
        .expect("a count");
    row.try_get_by_index(0).expect("an integer count")
}

async fn expired_numbers_are_purged(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.deletion_queue_period = Duration::from_secs(1);
        s.maintenance_interval = Duration::from_millis(200);
    })
    .await;
    order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;
    delete(&app, "+12065550100").await.expect("deleted");
    assert_eq!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress)).await,
        ["+12065550100"]
    );

    wait_until_gone(&app, "+12065550100").await;
    // The API hides it as soon as its deletion time has passed; the background task then
    // deletes its row. Wait for that, so that what follows runs after the purge.
    tokio::time::timeout(Duration::from_secs(15), async {
        while rows_of(&app, "+12065550100").await > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the purge deletes the expired number's row");
    assert!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress))
            .await
            .is_empty()
    );
    expect_code(app.try_get_number("+12065550100").await, Code::NotFound);
    expect_code(restore(&app, "+12065550100").await, Code::NotFound);
    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        ["+12065550101"],
        "the purge takes only expired numbers"
    );
    assert_eq!(
        app.get_number("+12065550101").await.status(),
        PhoneNumberStatus::Unassigned
    );

    let again = order(&app, BUSINESS, &["+12065550100"]).await;
    assert_eq!(again.status(), PhoneNumberOrderStatus::Successful);
}

on_both_databases!(
    delete_queues_an_unassigned_number,
    delete_refuses_an_assigned_number,
    restore_brings_a_number_back,
    restore_after_the_queue_period_is_not_found,
    expired_numbers_are_purged,
);
