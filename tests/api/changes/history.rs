//! What the change log records: every kind of event with its fields and notice, nothing for a
//! refused or no-op change, and ListChanges paging through that same history.

use super::{
    account_with_users, after, expect_checkpoint, expect_event, from_now, logout, read_gap_free,
    settings, watch,
};
use crate::common::fixtures::{number, unix_now};
use crate::common::{Backend, TestApp, spawn_app};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, DeleteUserRequest, ListChangesRequest,
    PhoneNumberStatus, TelephonySettings,
};
use tonic::Code;

const OFF: TelephonySettings = TelephonySettings {
    inbound_calling: false,
    outbound_calling: false,
    sms: false,
};

/// The id of the organisation admin key the server created at start (the tests' default key).
async fn bootstrap_key_id(app: &TestApp) -> String {
    app.store
        .keys()
        .list()
        .await
        .expect("list keys")
        .into_iter()
        .find(|k| k.name == "bootstrap")
        .expect("the bootstrap key exists")
        .id
        .to_string()
}

fn assert_event(
    event: &ChangeEvent,
    kind: ChangeKind,
    sequence: u64,
    account_id: &str,
    user_id: &str,
    actor: &str,
) {
    assert_eq!(event.kind, kind as i32, "{event:?}");
    assert_eq!(event.sequence, sequence, "{event:?}");
    assert_eq!(event.account_id, account_id);
    assert_eq!(event.user_id, user_id);
    assert_eq!(
        event.actor, actor,
        "the actor is the API key that made the change"
    );
    assert!(event.sign_out_required, "every change needs a new sign-in");
    uuid::Uuid::try_parse(&event.event_id)
        .unwrap_or_else(|_| panic!("event_id {:?} is a UUID", event.event_id));
    let occurred = event
        .occur_time
        .as_ref()
        .expect("occur_time is set")
        .seconds;
    let now = unix_now();
    assert!(
        (now - 60..=now + 5).contains(&occurred),
        "occur_time {occurred} is about now ({now})"
    );
}

async fn every_event_kind_carries_its_fields_and_notice(backend: Backend) {
    let app = spawn_app(backend).await;
    let actor = bootstrap_key_id(&app).await;
    let (account, users) = account_with_users(&app, "acme", 1).await;
    let user = &users[0];
    let n = number(0);
    app.order_business_numbers(std::slice::from_ref(&n)).await;
    let mut watch = watch(&app, from_now()).await;
    assert_eq!(
        expect_checkpoint(&mut watch).await,
        0,
        "nothing has changed yet"
    );
    let mut streamed = Vec::new();

    app.assign(&account, user, &n).await.unwrap();
    let assigned = expect_event(&mut watch).await;
    assert_event(
        &assigned,
        ChangeKind::PhoneNumberAssigned,
        1,
        &account,
        user,
        &actor,
    );
    assert_eq!(assigned.e164_phone_number, n);
    assert_eq!(assigned.telephony_settings, Some(OFF));
    assert!(
        assigned.notice.contains(&n) && assigned.notice.contains("Sign out and sign back in"),
        "{}",
        assigned.notice
    );
    streamed.push(assigned);

    app.update_settings(&account, user, settings(true, false, true), &[])
        .await
        .unwrap();
    let updated = expect_event(&mut watch).await;
    assert_event(
        &updated,
        ChangeKind::TelephonySettingsUpdated,
        2,
        &account,
        user,
        &actor,
    );
    assert_eq!(updated.e164_phone_number, n, "the user's current number");
    assert_eq!(
        updated.telephony_settings,
        Some(settings(true, false, true))
    );
    for fragment in [
        "inbound calling is on",
        "outbound calling is off",
        "SMS is on",
        "Sign out and sign back in",
    ] {
        assert!(
            updated.notice.contains(fragment),
            "{fragment:?} in {}",
            updated.notice
        );
    }
    streamed.push(updated);

    let sequence = logout(&app, &account, user).await;
    let signed_out = expect_event(&mut watch).await;
    assert_event(
        &signed_out,
        ChangeKind::UserSignOutRequested,
        3,
        &account,
        user,
        &actor,
    );
    assert_eq!(sequence, 3, "LogoutUser answers with its event's sequence");
    assert_eq!(signed_out.e164_phone_number, n);
    assert_eq!(
        signed_out.telephony_settings,
        Some(settings(true, false, true)),
        "a sign-out leaves the settings as they are"
    );
    assert!(
        signed_out.notice.contains("sign out"),
        "{}",
        signed_out.notice
    );
    streamed.push(signed_out);

    app.unassign(&account, user, true).await.unwrap();
    let unassigned = expect_event(&mut watch).await;
    assert_event(
        &unassigned,
        ChangeKind::PhoneNumberUnassigned,
        4,
        &account,
        user,
        &actor,
    );
    assert_eq!(unassigned.e164_phone_number, n, "the number removed");
    assert_eq!(unassigned.telephony_settings, Some(OFF));
    assert!(
        unassigned.notice.contains(&n)
            && unassigned.notice.contains("removed")
            && unassigned.notice.contains("Sign out and sign back in"),
        "{}",
        unassigned.notice
    );
    streamed.push(unassigned);

    app.assign(&account, user, &n).await.unwrap();
    streamed.push(expect_event(&mut watch).await);
    app.users()
        .delete_user(DeleteUserRequest {
            account_id: account.clone(),
            user_id: user.clone(),
        })
        .await
        .unwrap();
    let deleted = expect_event(&mut watch).await;
    assert_event(&deleted, ChangeKind::UserDeleted, 6, &account, user, &actor);
    assert_eq!(
        deleted.e164_phone_number, n,
        "the number the deletion freed"
    );
    assert_eq!(deleted.telephony_settings, Some(OFF));
    assert!(
        deleted.notice.contains(&n)
            && deleted.notice.contains("deleted")
            && deleted.notice.contains("signed out"),
        "{}",
        deleted.notice
    );
    streamed.push(deleted);

    let ids: std::collections::HashSet<_> = streamed.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), streamed.len(), "every event has its own id");
    assert_eq!(
        app.all_changes("", "").await,
        streamed,
        "the history holds exactly what was streamed"
    );
}

async fn refused_and_no_op_changes_emit_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 2).await;
    let (first, second) = (&users[0], &users[1]);
    let (n0, n1) = (number(10), number(11));
    app.order_business_numbers(&[n0.clone(), n1.clone()]).await;

    app.assign(&account, first, &n0).await.unwrap();
    let taken = app.assign(&account, second, &n0).await.unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition, "{taken:?}");
    assert!(taken.message().contains("already assigned"), "{taken:?}");
    let second_number = app.assign(&account, first, &n1).await.unwrap_err();
    assert_eq!(
        second_number.code(),
        Code::FailedPrecondition,
        "{second_number:?}"
    );
    let unconfirmed = app.unassign(&account, first, false).await.unwrap_err();
    assert_eq!(unconfirmed.code(), Code::InvalidArgument, "{unconfirmed:?}");
    assert!(unconfirmed.message().contains("confirm"), "{unconfirmed:?}");
    let nothing_to_unassign = app.unassign(&account, second, true).await.unwrap_err();
    assert_eq!(nothing_to_unassign.code(), Code::FailedPrecondition);
    let no_number = app
        .update_settings(&account, second, settings(true, true, true), &[])
        .await
        .unwrap_err();
    assert_eq!(no_number.code(), Code::FailedPrecondition, "{no_number:?}");

    // Already all off: nothing changes, so nothing is emitted.
    let unchanged = app
        .update_settings(&account, first, OFF, &[])
        .await
        .unwrap();
    assert_eq!(unchanged, OFF);
    app.update_settings(&account, first, settings(false, false, true), &["sms"])
        .await
        .unwrap();
    // The same value again, and a change to a field outside the mask: both no-ops.
    app.update_settings(&account, first, settings(false, false, true), &["sms"])
        .await
        .unwrap();
    let masked = app
        .update_settings(&account, first, settings(true, true, true), &["sms"])
        .await
        .unwrap();
    assert_eq!(masked, settings(false, false, true));

    // A retried assignment with the same request id changes nothing more.
    let request = AssignPhoneNumberRequest {
        emergency_location_id: String::new(),
        account_id: account.clone(),
        user_id: second.clone(),
        e164_phone_number: n1.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    for _ in 0..2 {
        app.telephony()
            .assign_phone_number(request.clone())
            .await
            .unwrap();
    }

    let kinds: Vec<(u64, i32, String)> = app
        .all_changes("", "")
        .await
        .into_iter()
        .map(|e| (e.sequence, e.kind, e.user_id))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, ChangeKind::PhoneNumberAssigned as i32, first.clone()),
            (
                2,
                ChangeKind::TelephonySettingsUpdated as i32,
                first.clone()
            ),
            (3, ChangeKind::PhoneNumberAssigned as i32, second.clone()),
        ],
        "one event per effective change, none for refusals or no-ops"
    );
    // The stream agrees: a full replay ends at 3.
    let mut replay = watch(&app, after(0)).await;
    let (events, _) = read_gap_free(&mut replay, 0, 3, true).await;
    assert_eq!(events.len(), 3);
    // The refusals left the state alone.
    assert_eq!(app.get_user(&account, first).await.primary_phone_number, n0);
    assert_eq!(
        app.get_user(&account, second).await.primary_phone_number,
        n1
    );
    let held = app.get_number(&n0).await;
    assert_eq!(held.status, PhoneNumberStatus::Assigned as i32);
    assert_eq!(held.association.unwrap().user_id, *first);
}

async fn list_changes_pages_through_the_same_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, a_users) = account_with_users(&app, "alpha", 2).await;
    let (b, b_users) = account_with_users(&app, "beta", 1).await;
    for i in 0..10 {
        match i % 3 {
            0 => logout(&app, &a, &a_users[0]).await,
            1 => logout(&app, &a, &a_users[1]).await,
            _ => logout(&app, &b, &b_users[0]).await,
        };
    }
    let mut stream = watch(&app, after(0)).await;
    let (streamed, _) = read_gap_free(&mut stream, 0, 10, true).await;

    let mut paged = Vec::new();
    let mut page_sizes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .changes()
            .list_changes(ListChangesRequest {
                page_size: 3,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        page_sizes.push(page.events.len());
        paged.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(page_sizes, vec![3, 3, 3, 1]);
    assert_eq!(paged, streamed, "pages hold what the stream sent");

    let later: Vec<u64> = app
        .all_changes_as(
            &app.admin_key,
            ListChangesRequest {
                after_sequence: 4,
                ..Default::default()
            },
        )
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(later, (5..=10).collect::<Vec<_>>());
    let of_b: Vec<ChangeEvent> = app.all_changes(&b, "").await;
    assert_eq!(
        of_b,
        streamed
            .iter()
            .filter(|e| e.account_id == b)
            .cloned()
            .collect::<Vec<_>>()
    );
    let of_user: Vec<u64> = app
        .all_changes("", &a_users[1])
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(of_user, vec![2, 5, 8]);

    let garbage = app
        .changes()
        .list_changes(ListChangesRequest {
            page_token: "certainly-not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    assert!(garbage.message().contains("page_token"), "{garbage:?}");
    // A token is bound to the filters it was made for.
    let first = app
        .changes()
        .list_changes(ListChangesRequest {
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let other_filter = app
        .changes()
        .list_changes(ListChangesRequest {
            account_id: a.clone(),
            page_size: 3,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        other_filter.code(),
        Code::InvalidArgument,
        "{other_filter:?}"
    );
}

on_both_databases!(
    every_event_kind_carries_its_fields_and_notice,
    refused_and_no_op_changes_emit_nothing,
    list_changes_pages_through_the_same_history,
);
