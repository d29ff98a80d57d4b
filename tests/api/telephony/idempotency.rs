//! Idempotent retries by request_id: a retry returns the first result, a reused id for another
//! request is refused, and an id is remembered for its window only.

use super::{ALL_ON, OFF, assert_invalid_field, get_settings, of_kind, snapshot, world};
use crate::common::fixtures::{assign_via, unassign_via, update_settings_via};
use crate::common::{Backend, spawn_app, spawn_app_with};
use telephony_admin::proto::{ChangeKind, PhoneNumberStatus, TelephonySettings};
use tonic::Code;

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn assign_retry_returns_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let request_id = new_request_id();

    let first = assign_via(
        &mut app.telephony(),
        &account_id,
        &user.user_id,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    // The retry may format the number differently: it is the same request.
    let retry = assign_via(
        &mut app.telephony(),
        &account_id,
        &user.user_id,
        "+1 (206) 555-0100",
        &request_id,
    )
    .await
    .expect("a retry is answered with the first result, not FAILED_PRECONDITION");
    assert_eq!(retry, first);
    assert_eq!(first.primary_phone_number, "+12065550100");

    let events = app.all_changes(&account_id, "").await;
    assert_eq!(
        of_kind(&events, ChangeKind::PhoneNumberAssigned).len(),
        1,
        "{events:?}"
    );
    assert_eq!(events.len(), 1);

    // Without a request_id the same request is a new one, and the rules refuse it.
    let status = app
        .assign(&account_id, &user.user_id, "+12065550100")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

async fn reused_request_id_for_another_request_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100", "+12065550101"]).await;
    let uid = user.user_id.as_str();
    let request_id = new_request_id();
    assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    let numbers = ["+12065550100", "+12065550101"];
    let before = snapshot(&app, &account_id, &[uid], &numbers).await;

    // Same operation, other number.
    let status = assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550101",
        &request_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");
    assert!(status.message().contains("different request"), "{status:?}");

    // Other operations.
    let status = unassign_via(&mut app.telephony(), &account_id, uid, true, &request_id)
        .await
        .unwrap_err();
    assert_invalid_field(&status, "request_id");
    let status = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &[],
        &request_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");

    assert_eq!(snapshot(&app, &account_id, &[uid], &numbers).await, before);

    // The same holds for ids first used by the other operations.
    let settings_id = new_request_id();
    update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &["sms"],
        &settings_id,
    )
    .await
    .unwrap();
    let status = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &[],
        &settings_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");

    let unassign_id = new_request_id();
    unassign_via(&mut app.telephony(), &account_id, uid, true, &unassign_id)
        .await
        .unwrap();
    let other = app.create_user(&account_id, "bob@example.com").await;
    app.assign(&account_id, &other.user_id, "+12065550101")
        .await
        .unwrap();
    let status = unassign_via(
        &mut app.telephony(),
        &account_id,
        &other.user_id,
        true,
        &unassign_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");
    assert_eq!(
        app.get_user(&account_id, &other.user_id)
            .await
            .primary_phone_number,
        "+12065550101"
    );
}

async fn request_id_must_be_a_uuid(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100", "+12065550101"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let numbers = ["+12065550100", "+12065550101"];
    let before = snapshot(&app, &account_id, &[uid], &numbers).await;

    for bad in ["retry-1", "12345", "not-a-uuid-at-all-not-a-uuid-at-all"] {
        let status = assign_via(&mut app.telephony(), &account_id, uid, "+12065550101", bad)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "request_id");
        assert!(status.message().contains("must be a UUID"), "{status:?}");
        let status = unassign_via(&mut app.telephony(), &account_id, uid, true, bad)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "request_id");
        let status = update_settings_via(&mut app.telephony(), &account_id, uid, ALL_ON, &[], bad)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "request_id");
    }

    assert_eq!(snapshot(&app, &account_id, &[uid], &numbers).await, before);
}

async fn unassign_retry_returns_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let request_id = new_request_id();

    let first = unassign_via(&mut app.telephony(), &account_id, uid, true, &request_id)
        .await
        .unwrap();
    assert_eq!(first.primary_phone_number, "");
    let retry = unassign_via(&mut app.telephony(), &account_id, uid, true, &request_id)
        .await
        .expect("a retry is answered with the first result, not FAILED_PRECONDITION");
    assert_eq!(retry, first);

    let events = app.all_changes(&account_id, "").await;
    assert_eq!(
        of_kind(&events, ChangeKind::PhoneNumberUnassigned).len(),
        1,
        "{events:?}"
    );
    assert_eq!(
        app.get_number("+12065550100").await.status,
        PhoneNumberStatus::Unassigned as i32
    );
}

async fn settings_retry_returns_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let request_id = new_request_id();
    let sms_only = TelephonySettings { sms: true, ..OFF };

    let first = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &["sms"],
        &request_id,
    )
    .await
    .unwrap();
    assert_eq!(first, sms_only);

    // Another request changes the settings in between.
    app.update_settings(&account_id, uid, ALL_ON, &[])
        .await
        .unwrap();
    let before_retry = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let retry = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &["sms"],
        &request_id,
    )
    .await
    .unwrap();
    assert_eq!(retry, first, "the retry answers with the first result");

    // The retry neither re-applied anything nor emitted an event.
    let after_retry = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;
    assert_eq!(after_retry, before_retry);
    assert_eq!(get_settings(&app, &account_id, uid).await, ALL_ON);
    assert_eq!(
        of_kind(&after_retry.events, ChangeKind::TelephonySettingsUpdated).len(),
        2
    );
}

/// A request_id is remembered for the idempotency window only: the housekeeping task forgets
/// it, and a retry after that is a new request.
async fn request_id_is_forgotten_after_its_window(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.idempotency_window = std::time::Duration::from_secs(3);
        s.maintenance_interval = std::time::Duration::from_millis(200);
    })
    .await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    let request_id = new_request_id();
    let first = assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    app.unassign(&account_id, uid, true).await.unwrap();

    // Within the window the retry is answered from the record and changes nothing.
    let retry = assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    assert_eq!(retry, first);
    assert_eq!(app.all_changes(&account_id, "").await.len(), 2);
    assert_eq!(
        app.get_user(&account_id, uid).await.primary_phone_number,
        ""
    );

    // Once the record is purged, the same request_id assigns the number anew.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assign_via(
            &mut app.telephony(),
            &account_id,
            uid,
            "+12065550100",
            &request_id,
        )
        .await
        .unwrap();
        if app.all_changes(&account_id, "").await.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request_id was still remembered 20 s after a 3 s window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let events = app.all_changes(&account_id, "").await;
    assert_eq!(events[2].kind, ChangeKind::PhoneNumberAssigned as i32);
    assert_eq!(
        app.get_user(&account_id, uid).await.primary_phone_number,
        "+12065550100"
    );
}

on_both_databases!(
    assign_retry_returns_the_first_result,
    reused_request_id_for_another_request_is_refused,
    request_id_must_be_a_uuid,
    unassign_retry_returns_the_first_result,
    settings_retry_returns_the_first_result,
    request_id_is_forgotten_after_its_window,
);
