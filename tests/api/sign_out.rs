//! Who still has to sign out, through the public API: every sign-out-required change (assign,
//! unassign, a settings change, LogoutUser) marks its user as pending with the oldest and newest
//! change not yet acknowledged; `AcknowledgeSignOut` clears that only when it covers the newest
//! one (a stale acknowledgement leaves the newer change pending), refuses a sequence beyond the
//! log, is idempotent with a `request_id`, and leaves a SIGN_OUT_ACKNOWLEDGED event (not
//! sign-out-required) in the audit trail and on the watch stream; `ListUsers` filters by it.

use std::time::Duration;

use telephony_admin::proto::{
    AcknowledgeSignOutRequest, ChangeEvent, ChangeKind, ListUsersRequest, LogoutUserRequest,
    SignOutPending, TelephonySettings, User, WatchChangesRequest, watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::fixtures::number;
use crate::common::{Backend, TestApp, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

pub fn ack(account_id: &str, user_id: &str, through_sequence: u64) -> AcknowledgeSignOutRequest {
    AcknowledgeSignOutRequest {
        account_id: account_id.into(),
        user_id: user_id.into(),
        through_sequence,
        request_id: String::new(),
    }
}

async fn acknowledge(app: &TestApp, request: AcknowledgeSignOutRequest) -> Result<User, Status> {
    app.users()
        .acknowledge_sign_out(request)
        .await
        .map(|r| r.into_inner())
}

pub async fn logout(app: &TestApp, account_id: &str, user_id: &str) -> u64 {
    app.users()
        .logout_user(LogoutUserRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("logout: {s:?}"))
        .into_inner()
        .sequence
}

/// The user's events, in order.
async fn events_of(app: &TestApp, account: &str, user: &str) -> Vec<ChangeEvent> {
    app.all_changes(account, user).await
}

fn pending(user: &User) -> Option<(u64, u64)> {
    user.sign_out_pending
        .as_ref()
        .map(|p| (p.oldest_change_sequence, p.latest_change_sequence))
}

fn acknowledgements(events: &[ChangeEvent]) -> Vec<&ChangeEvent> {
    events
        .iter()
        .filter(|e| e.kind == ChangeKind::SignOutAcknowledged as i32)
        .collect()
}

const ALL_ON: TelephonySettings = TelephonySettings {
    inbound_calling: true,
    outbound_calling: true,
    sms: true,
};

async fn every_sign_out_change_marks_the_user_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&account, "ann@example.com").await;
    let bob = app.create_user(&account, "bob@example.com").await.user_id;
    assert_eq!(ann.sign_out_pending, None, "a new user has nothing pending");
    let ann = ann.user_id;
    app.order_business_numbers(&[number(1)]).await;

    // The answer of the assignment already shows the pending change.
    let assigned = app.assign(&account, &ann, &number(1)).await.unwrap();
    let events = events_of(&app, &account, &ann).await;
    let first = &events[0];
    assert_eq!(first.kind, ChangeKind::PhoneNumberAssigned as i32);
    assert_eq!(pending(&assigned), Some((first.sequence, first.sequence)));
    let stored = app.get_user(&account, &ann).await;
    assert_eq!(stored.sign_out_pending, assigned.sign_out_pending);
    let state: SignOutPending = stored.sign_out_pending.unwrap();
    assert_eq!(state.oldest_change_time, first.occur_time);
    assert_eq!(state.latest_change_time, first.occur_time);

    app.update_settings(&account, &ann, ALL_ON, &[])
        .await
        .unwrap();
    let unassigned = app.unassign(&account, &ann, true).await.unwrap();
    let logout_sequence = logout(&app, &account, &ann).await;

    let events = events_of(&app, &account, &ann).await;
    let kinds: Vec<i32> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::PhoneNumberAssigned as i32,
            ChangeKind::TelephonySettingsUpdated as i32,
            ChangeKind::PhoneNumberUnassigned as i32,
            ChangeKind::UserSignOutRequested as i32,
        ]
    );
    assert_eq!(
        pending(&unassigned),
        Some((events[0].sequence, events[2].sequence)),
        "the unassignment's answer: the oldest change stays, the newest moves"
    );
    let user = app.get_user(&account, &ann).await;
    assert_eq!(pending(&user), Some((events[0].sequence, logout_sequence)));
    let state = user.sign_out_pending.unwrap();
    assert_eq!(state.oldest_change_time, events[0].occur_time);
    assert_eq!(state.latest_change_time, events[3].occur_time);

    // Another user's changes are not Ann's, and Bob has none.
    assert_eq!(app.get_user(&account, &bob).await.sign_out_pending, None);
}

async fn a_stale_acknowledgement_leaves_the_newer_change_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&account, "ann@example.com").await.user_id;
    let bob = app.create_user(&account, "bob@example.com").await.user_id;
    app.order_business_numbers(&[number(1)]).await;

    let before = logout(&app, &account, &bob).await;
    app.assign(&account, &ann, &number(1)).await.unwrap();
    let between = logout(&app, &account, &bob).await;
    app.update_settings(&account, &ann, ALL_ON, &[])
        .await
        .unwrap();
    let logged_out = logout(&app, &account, &ann).await;
    let events = events_of(&app, &account, &ann).await;
    let (assigned, updated) = (events[0].sequence, events[1].sequence);
    assert!(before < assigned && assigned < between && between < updated);

    // Older than anything pending: nothing is acknowledged, nothing recorded.
    let answer = acknowledge(&app, ack(&account, &ann, before))
        .await
        .unwrap();
    assert_eq!(pending(&answer), Some((assigned, logged_out)));
    assert!(acknowledgements(&events_of(&app, &account, &ann).await).is_empty());

    // The assignment is acknowledged; the settings change becomes the oldest pending one.
    let answer = acknowledge(&app, ack(&account, &ann, between))
        .await
        .unwrap();
    assert_eq!(pending(&answer), Some((updated, logged_out)));
    assert_eq!(
        answer.sign_out_pending.as_ref().unwrap().oldest_change_time,
        events[1].occur_time
    );
    assert_eq!(app.get_user(&account, &ann).await, answer);

    // The same (now stale) acknowledgement again changes nothing.
    let again = acknowledge(&app, ack(&account, &ann, assigned))
        .await
        .unwrap();
    assert_eq!(again, answer);

    // A change made after the session service read `updated`: acknowledging `updated` (which
    // is older than the logout) still leaves the logout pending.
    let answer = acknowledge(&app, ack(&account, &ann, updated))
        .await
        .unwrap();
    assert_eq!(pending(&answer), Some((logged_out, logged_out)));

    // Covering the newest change clears the state.
    let answer = acknowledge(&app, ack(&account, &ann, logged_out))
        .await
        .unwrap();
    assert_eq!(answer.sign_out_pending, None);
    assert_eq!(app.get_user(&account, &ann).await.sign_out_pending, None);
    // With nothing pending, an acknowledgement answers the user and records nothing.
    let head = events_of(&app, &account, "").await.last().unwrap().sequence;
    let answer = acknowledge(&app, ack(&account, &ann, head)).await.unwrap();
    assert_eq!(answer.sign_out_pending, None);

    // Three acknowledgements did something; each is in the audit trail, not sign-out-required.
    let events = events_of(&app, &account, &ann).await;
    let acks = acknowledgements(&events);
    assert_eq!(acks.len(), 3, "{events:?}");
    for event in acks {
        assert!(!event.sign_out_required);
        assert_eq!(event.user_id, ann);
        assert!(event.notice.contains("signed out and back in"), "{event:?}");
    }
    // An acknowledgement is no change to pick up: it left nothing pending.
    assert_eq!(app.get_user(&account, &ann).await.sign_out_pending, None);
    assert!(
        app.get_user(&account, &bob)
            .await
            .sign_out_pending
            .is_some()
    );
}

async fn an_acknowledgement_beyond_the_log_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&account, "ann@example.com").await.user_id;
    let head = logout(&app, &account, &ann).await;

    let refused = acknowledge(&app, ack(&account, &ann, head + 1))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let reason = refused
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone());
    assert_eq!(reason.as_deref(), Some("SEQUENCE_AHEAD_OF_LOG"));
    assert!(
        refused.message().contains(&format!("({head})")),
        "the message names the newest sequence: {}",
        refused.message()
    );
    assert_eq!(
        pending(&app.get_user(&account, &ann).await),
        Some((head, head)),
        "a refused acknowledgement changes nothing"
    );

    let zero = acknowledge(&app, ack(&account, &ann, 0)).await.unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
    let violations = zero.get_details_bad_request().expect("BadRequest");
    assert_eq!(violations.field_violations[0].field, "through_sequence");
    let huge = acknowledge(&app, ack(&account, &ann, u64::MAX))
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::InvalidArgument);
    let bad_id = acknowledge(
        &app,
        AcknowledgeSignOutRequest {
            request_id: "not-a-uuid".into(),
            ..ack(&account, &ann, head)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    let unknown = acknowledge(
        &app,
        ack(&account, crate::common::fixtures::UNKNOWN_ID, head),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

async fn a_retried_acknowledgement_returns_the_first_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&account, "ann@example.com").await.user_id;
    let first = logout(&app, &account, &ann).await;
    let request = AcknowledgeSignOutRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..ack(&account, &ann, first)
    };
    let answer = acknowledge(&app, request.clone()).await.unwrap();
    assert_eq!(answer.sign_out_pending, None);
    let second = logout(&app, &account, &ann).await;
    let retried = acknowledge(&app, request.clone()).await.unwrap();
    assert_eq!(retried, answer, "the retry gets the first answer");
    assert_eq!(
        pending(&app.get_user(&account, &ann).await),
        Some((second, second)),
        "and acknowledges nothing more"
    );
    let events = events_of(&app, &account, &ann).await;
    assert_eq!(acknowledgements(&events).len(), 1);
    let reused = acknowledge(
        &app,
        AcknowledgeSignOutRequest {
            through_sequence: second,
            ..request
        },
    )
    .await
    .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
}

async fn list_users(app: &TestApp, account: &str, filter: Option<bool>, size: i32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .users()
            .list_users(ListUsersRequest {
                account_id: account.into(),
                page_size: size,
                page_token,
                sign_out_pending: filter,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("list users: {s:?}"))
            .into_inner();
        assert!(page.users.len() <= size as usize);
        for user in &page.users {
            assert_eq!(
                user.sign_out_pending.is_some(),
                filter.unwrap_or(user.sign_out_pending.is_some())
            );
        }
        ids.extend(page.users.into_iter().map(|u| u.user_id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}

async fn list_users_filters_by_sign_out_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let other = app.create_account("Other").await.account_id;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(
            app.create_user(&account, &format!("u{i}@example.com"))
                .await
                .user_id,
        );
    }
    let elsewhere = app.create_user(&other, "x@example.com").await.user_id;
    logout(&app, &other, &elsewhere).await;
    for i in [1, 2, 4, 5] {
        logout(&app, &account, &users[i]).await;
    }
    // User 5 picks the change up: no longer pending.
    let head = logout(&app, &account, &users[5]).await;
    acknowledge(&app, ack(&account, &users[5], head))
        .await
        .unwrap();

    let by_id = |ids: &[usize]| {
        let mut wanted: Vec<String> = ids.iter().map(|&i| users[i].clone()).collect();
        wanted.sort();
        wanted
    };
    assert_eq!(
        list_users(&app, &account, Some(true), 1).await,
        by_id(&[1, 2, 4])
    );
    assert_eq!(
        list_users(&app, &account, Some(true), 50).await,
        by_id(&[1, 2, 4])
    );
    assert_eq!(
        list_users(&app, &account, Some(false), 2).await,
        by_id(&[0, 3, 5])
    );
    assert_eq!(
        list_users(&app, &account, None, 4).await,
        by_id(&[0, 1, 2, 3, 4, 5])
    );

    // A page token belongs to its filter.
    let first = app
        .users()
        .list_users(ListUsersRequest {
            account_id: account.clone(),
            page_size: 1,
            sign_out_pending: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let refused = app
        .users()
        .list_users(ListUsersRequest {
            account_id: account.clone(),
            page_size: 1,
            page_token: first.next_page_token,
            sign_out_pending: Some(false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

async fn watchers_see_the_acknowledgement(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&account, "ann@example.com").await.user_id;
    let logged_out = logout(&app, &account, &ann).await;
    let mut watch = app
        .changes()
        .watch_changes(WatchChangesRequest {
            account_id: account.clone(),
            after_sequence: Some(logged_out),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    acknowledge(&app, ack(&account, &ann, logged_out))
        .await
        .unwrap();
    loop {
        let message = timeout(WAIT, watch.message())
            .await
            .expect("an item in time")
            .expect("the stream stays open")
            .expect("an item");
        if let Some(Kind::Event(event)) = message.kind {
            assert_eq!(event.kind, ChangeKind::SignOutAcknowledged as i32);
            assert_eq!(event.sequence, logged_out + 1);
            assert!(!event.sign_out_required);
            assert_eq!(event.user_id, ann);
            return;
        }
    }
}

on_both_databases!(
    every_sign_out_change_marks_the_user_pending,
    a_stale_acknowledgement_leaves_the_newer_change_pending,
    an_acknowledgement_beyond_the_log_is_refused,
    a_retried_acknowledgement_returns_the_first_answer,
    list_users_filters_by_sign_out_pending,
    watchers_see_the_acknowledgement,
);
