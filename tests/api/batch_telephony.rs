//! TelephonyService's batches through the real gRPC interface: per-item results equal to the
//! single RPCs', dry runs, atomic batches, conflicts inside one batch, per-item access control,
//! the size limit and idempotent retries.

use std::time::Duration;
use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    BatchAssignPhoneNumbersRequest, BatchUnassignPhoneNumbersRequest,
    BatchUpdateTelephonySettingsRequest, BatchUserResult, ChangeKind, GetTelephonySettingsRequest,
    ListPhoneNumberAssignmentsRequest, TelephonySettings,
    batch_assign_phone_numbers_request::Item as Assignment,
    batch_update_telephony_settings_request::Item as SettingsChange,
};

use telephony_admin::proto::{WatchChangesRequest, watch_changes_response::Kind};
use tonic::Code;

use crate::common::account_scope;
use crate::common::batch::{block, bulk_users, code_of, rpc_status, timeless};
use crate::common::fixtures::{UNKNOWN_ID, mask};
use crate::common::{Backend, TestApp, spawn_app, spawn_app_with};

const REQUEST_ID: &str = "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f99";

fn assignment(user_id: &str, number: &str) -> Assignment {
    Assignment {
        emergency_location_id: String::new(),
        user_id: user_id.into(),
        e164_phone_number: number.into(),
    }
}

async fn assign_batch(
    app: &TestApp,
    account_id: &str,
    items: Vec<Assignment>,
    validate_only: bool,
    atomic: bool,
) -> Vec<BatchUserResult> {
    app.telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account_id.into(),
            items,
            validate_only,
            atomic,
            request_id: String::new(),
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results
}

/// Retries every failed item as the single RPC, on the state the batch left, and checks the
/// answers are the same code, message and details.
async fn same_as_single_rpcs(
    app: &TestApp,
    account_id: &str,
    items: &[Assignment],
    results: &[BatchUserResult],
) {
    for (item, result) in items.iter().zip(results) {
        if code_of(&result.status) == Code::Ok {
            continue;
        }
        let single = app
            .assign(account_id, &item.user_id, &item.e164_phone_number)
            .await
            .expect_err("the item fails as a single request too");
        assert_eq!(
            result.status.as_ref(),
            Some(&rpc_status(&single)),
            "item {} ({item:?})",
            result.index
        );
    }
}

async fn a_thousand_assignments_with_bad_items_mixed_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Bulk").await;
    let users = bulk_users(&app, &account.account_id, "bulk", 1000).await;
    let numbers = block(1000, 1000);
    app.order_business_numbers(&numbers).await;
    let before = app.all_changes(&account.account_id, "").await.len();

    let items: Vec<Assignment> = (0..1000)
        .map(|i| match i % 100 {
            7 => assignment(&users[i].user_id, "not a number"),
            13 => assignment(UNKNOWN_ID, &numbers[i]),
            29 => assignment(&users[i].user_id, "+12065559999"),
            // Two items of the batch want one number: the second loses, as it would alone.
            41 => assignment(&users[i].user_id, &numbers[i - 1]),
            // One user twice: the user holds the number the item before gave them.
            53 => assignment(&users[i - 1].user_id, &numbers[i]),
            _ => assignment(&users[i].user_id, &numbers[i]),
        })
        .collect();
    let results = assign_batch(&app, &account.account_id, items.clone(), false, false).await;

    assert_eq!(results.len(), 1000);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.index, i as i32, "results come in item order");
        let expected = match i % 100 {
            7 => Code::InvalidArgument,
            13 | 29 => Code::NotFound,
            41 | 53 => Code::FailedPrecondition,
            _ => Code::Ok,
        };
        assert_eq!(code_of(&result.status), expected, "item {i}: {result:?}");
        if expected == Code::Ok {
            let user = result.user.as_ref().expect("a succeeded item has its user");
            assert_eq!(user.primary_phone_number, items[i].e164_phone_number);
        } else {
            assert!(result.user.is_none(), "a failed item has no user");
        }
    }
    same_as_single_rpcs(&app, &account.account_id, &items, &results).await;

    // One event per effective assignment, in item order; each answer's pending sign-out names
    // its user's event.
    let events: Vec<_> = app.all_changes(&account.account_id, "").await[before..]
        .iter()
        .filter(|e| e.kind == ChangeKind::PhoneNumberAssigned as i32)
        .map(|e| (e.user_id.clone(), e.sequence))
        .collect();
    let succeeded: Vec<_> = results
        .iter()
        .filter(|r| code_of(&r.status) == Code::Ok)
        .map(|r| {
            let user = r.user.as_ref().expect("a succeeded item has its user");
            let pending = user
                .sign_out_pending
                .as_ref()
                .expect("a new number is pending");
            assert_eq!(
                pending.oldest_change_sequence,
                pending.latest_change_sequence
            );
            (user.user_id.clone(), pending.latest_change_sequence)
        })
        .collect();
    assert_eq!(succeeded.len(), 950);
    assert_eq!(events, succeeded);

    // Each number's history holds the one period the batch opened.
    for i in [0, 52, 999] {
        let periods = app
            .numbers()
            .list_phone_number_assignments(ListPhoneNumberAssignmentsRequest {
                phone_number_id: numbers[i].clone(),
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .phone_number_assignments;
        assert_eq!(periods.len(), 1, "number {i}: {periods:?}");
        assert_eq!(periods[0].user_id, users[i].user_id);
        assert_eq!(periods[0].account_id, account.account_id);
    }
}

async fn a_dry_run_answers_what_the_real_run_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Dry").await;
    let users = bulk_users(&app, &account.account_id, "dry", 6).await;
    let numbers = block(2000, 5);
    app.order_business_numbers(&numbers).await;
    let items = vec![
        assignment(&users[0].user_id, &numbers[0]),
        assignment(&users[1].user_id, &numbers[0]), // the number was taken by item 0
        assignment(&users[0].user_id, &numbers[1]), // user 0 holds a number since item 0
        assignment(&users[2].user_id, "+1 206 555 2002"),
        assignment(&users[3].user_id, "+12065559998"),
        assignment(&users[4].user_id, &numbers[4]),
    ];
    let events_before = app.all_changes(&account.account_id, "").await;

    let dry = assign_batch(&app, &account.account_id, items.clone(), true, false).await;
    assert_eq!(
        dry.iter().map(|r| code_of(&r.status)).collect::<Vec<_>>(),
        [
            Code::Ok,
            Code::FailedPrecondition,
            Code::FailedPrecondition,
            Code::Ok,
            Code::NotFound,
            Code::Ok
        ]
    );
    // Nothing was written, nothing was told.
    for number in &numbers {
        assert!(
            app.get_number(number).await.association.is_none(),
            "{number}"
        );
    }
    assert_eq!(
        app.all_changes(&account.account_id, "").await,
        events_before
    );

    let real = assign_batch(&app, &account.account_id, items, false, false).await;
    let strip = |results: Vec<BatchUserResult>| -> Vec<_> {
        results
            .into_iter()
            .map(|r| (r.index, r.status, r.user.map(timeless)))
            .collect()
    };
    assert_eq!(strip(dry), strip(real));
    assert_eq!(
        app.all_changes(&account.account_id, "").await.len(),
        events_before.len() + 3
    );
}

async fn an_atomic_batch_that_fails_applies_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Atomic").await;
    let users = bulk_users(&app, &account.account_id, "atomic", 5).await;
    let numbers = block(3000, 5);
    app.order_business_numbers(&numbers).await;
    let events_before = app.all_changes("", "").await;
    // A watch from the last event before the batches: it must see the second batch's events only.
    let mut watch = app
        .changes()
        .watch_changes(WatchChangesRequest {
            account_id: account.account_id.clone(),
            after_sequence: Some(events_before.last().map_or(0, |e| e.sequence)),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let mut items: Vec<Assignment> = (0..5)
        .map(|i| assignment(&users[i].user_id, &numbers[i]))
        .collect();
    items[3].e164_phone_number = "+12065559997".into();

    let results = assign_batch(&app, &account.account_id, items.clone(), false, true).await;
    for (i, result) in results.iter().enumerate() {
        let status = result.status.as_ref().expect("status");
        if i == 3 {
            assert_eq!(Code::from_i32(status.code), Code::NotFound, "{status:?}");
        } else {
            assert_eq!(Code::from_i32(status.code), Code::Aborted, "{status:?}");
            assert!(status.message.contains("item 3"), "{:?}", status.message);
            assert!(result.user.is_none());
        }
    }
    for number in &numbers {
        assert!(
            app.get_number(number).await.association.is_none(),
            "{number}"
        );
    }
    assert_eq!(app.all_changes("", "").await, events_before, "no event");

    // The same batch without the bad item commits wholly.
    items.remove(3);
    let results = assign_batch(&app, &account.account_id, items.clone(), false, true).await;
    assert!(results.iter().all(|r| code_of(&r.status) == Code::Ok));
    assert_eq!(app.all_changes("", "").await.len(), events_before.len() + 4);
    for item in &items {
        let event = loop {
            let message = tokio::time::timeout(Duration::from_secs(10), watch.message())
                .await
                .expect("an event within 10 s")
                .expect("the stream does not fail")
                .expect("the stream stays open");
            if let Some(Kind::Event(event)) = message.kind {
                break event;
            }
        };
        assert_eq!(
            (event.user_id.as_str(), event.e164_phone_number.as_str()),
            (item.user_id.as_str(), item.e164_phone_number.as_str()),
            "the watch sees the committed batch's events, in item order, and nothing else"
        );
    }
}

async fn unassign_and_settings_batches_answer_per_item(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Lines").await;
    let users = bulk_users(&app, &account.account_id, "lines", 3).await;
    let numbers = block(4000, 2);
    app.order_business_numbers(&numbers).await;
    let items = vec![
        assignment(&users[0].user_id, &numbers[0]),
        assignment(&users[1].user_id, &numbers[1]),
    ];
    assign_batch(&app, &account.account_id, items, false, false).await;

    let on = TelephonySettings {
        inbound_calling: true,
        outbound_calling: true,
        sms: true,
    };
    let settings = app
        .telephony()
        .batch_update_telephony_settings(BatchUpdateTelephonySettingsRequest {
            account_id: account.account_id.clone(),
            items: vec![
                SettingsChange {
                    user_id: users[0].user_id.clone(),
                    telephony_settings: Some(on),
                    update_mask: Some(mask(&["sms"])),
                },
                SettingsChange {
                    user_id: users[1].user_id.clone(),
                    telephony_settings: Some(on),
                    update_mask: Some(mask(&["fax"])),
                },
                SettingsChange {
                    user_id: users[2].user_id.clone(),
                    telephony_settings: Some(on),
                    update_mask: None,
                },
            ],
            ..Default::default()
        })
        .await
        .expect("settings batch")
        .into_inner()
        .results;
    assert_eq!(code_of(&settings[0].status), Code::Ok);
    assert_eq!(
        settings[0].telephony_settings,
        Some(TelephonySettings {
            sms: true,
            ..Default::default()
        })
    );
    let single = app
        .update_settings(&account.account_id, &users[1].user_id, on, &["fax"])
        .await
        .expect_err("bad mask");
    assert_eq!(settings[1].status, Some(rpc_status(&single)));
    let single = app
        .update_settings(&account.account_id, &users[2].user_id, on, &[])
        .await
        .expect_err("no number");
    assert_eq!(settings[2].status, Some(rpc_status(&single)));

    let unassign = |confirm: bool| BatchUnassignPhoneNumbersRequest {
        account_id: account.account_id.clone(),
        user_ids: users.iter().map(|u| u.user_id.clone()).collect(),
        confirm,
        ..Default::default()
    };
    let refused = app
        .telephony()
        .batch_unassign_phone_numbers(unassign(false))
        .await
        .expect("answered")
        .into_inner()
        .results;
    let single = app
        .unassign(&account.account_id, &users[0].user_id, false)
        .await
        .expect_err("unconfirmed");
    assert_eq!(refused[0].status, Some(rpc_status(&single)));
    let results = app
        .telephony()
        .batch_unassign_phone_numbers(unassign(true))
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(
        results
            .iter()
            .map(|r| code_of(&r.status))
            .collect::<Vec<_>>(),
        [Code::Ok, Code::Ok, Code::FailedPrecondition]
    );
    assert_eq!(results[0].user.as_ref().unwrap().primary_phone_number, "");
    let kinds: Vec<i32> = app
        .all_changes(&account.account_id, "")
        .await
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::PhoneNumberAssigned as i32,
            ChangeKind::PhoneNumberAssigned as i32,
            ChangeKind::TelephonySettingsUpdated as i32,
            ChangeKind::PhoneNumberUnassigned as i32,
            ChangeKind::PhoneNumberUnassigned as i32,
        ]
    );
}

async fn an_account_key_is_refused_per_item_outside_its_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let own_users = bulk_users(&app, &own.account_id, "own", 2).await;
    let other_users = bulk_users(&app, &other.account_id, "other", 1).await;
    let numbers = block(5000, 3);
    app.order_business_numbers(&numbers).await;
    app.assign(&other.account_id, &other_users[0].user_id, &numbers[2])
        .await
        .expect("assigned in the other account");
    let key = app
        .create_key(Role::Admin, account_scope(&own.account_id))
        .await;
    let mut client = app.telephony_as(Some(&key));

    // Its own account: the number another account holds is refused, the rest goes through.
    let results = client
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: own.account_id.clone(),
            items: vec![
                assignment(&own_users[0].user_id, &numbers[0]),
                assignment(&own_users[1].user_id, &numbers[2]),
            ],
            ..Default::default()
        })
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(code_of(&results[0].status), Code::Ok);
    let single = crate::common::fixtures::assign_via(
        &mut client,
        &own.account_id,
        &own_users[1].user_id,
        &numbers[2],
        "",
    )
    .await
    .expect_err("another account's number");
    assert_eq!(single.code(), Code::PermissionDenied);
    assert_eq!(results[1].status, Some(rpc_status(&single)));

    // Another account: every item is refused as the single RPC refuses it.
    let results = client
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: other.account_id.clone(),
            items: vec![assignment(&other_users[0].user_id, &numbers[1])],
            ..Default::default()
        })
        .await
        .expect("answered")
        .into_inner()
        .results;
    let single = crate::common::fixtures::assign_via(
        &mut client,
        &other.account_id,
        &other_users[0].user_id,
        &numbers[1],
        "",
    )
    .await
    .expect_err("outside the key's account");
    assert_eq!(single.code(), Code::PermissionDenied);
    assert_eq!(results[0].status, Some(rpc_status(&single)));
    assert!(app.get_number(&numbers[1]).await.association.is_none());
}

async fn oversized_and_empty_batches_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_batch_items = 3).await;
    let account = app.create_account("Limits").await;
    let items = |n: usize| {
        (0..n)
            .map(|_| assignment(UNKNOWN_ID, "+12065550100"))
            .collect()
    };
    for (count, expected) in [(4, "at most 3"), (0, "at least one")] {
        let refused = app
            .telephony()
            .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
                account_id: account.account_id.clone(),
                items: items(count),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(expected), "{refused:?}");
    }
    let answered = assign_batch(&app, &account.account_id, items(3), false, false).await;
    assert_eq!(answered.len(), 3);

    // The default is 1,000.
    let app = spawn_app(backend).await;
    let refused = app
        .telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account.account_id.clone(),
            items: items(1001),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("at most 1000"), "{refused:?}");
}

async fn a_retried_batch_with_its_request_id_changes_nothing_more(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Retry").await;
    let users = bulk_users(&app, &account.account_id, "retry", 2).await;
    let numbers = block(6000, 2);
    app.order_business_numbers(&numbers).await;
    let request = BatchAssignPhoneNumbersRequest {
        account_id: account.account_id.clone(),
        items: vec![
            assignment(&users[0].user_id, &numbers[0]),
            assignment(&users[1].user_id, "+12065559996"),
        ],
        request_id: REQUEST_ID.into(),
        ..Default::default()
    };
    let first = app
        .telephony()
        .batch_assign_phone_numbers(request.clone())
        .await
        .expect("first")
        .into_inner();
    let events = app.all_changes(&account.account_id, "").await;
    assert_eq!(events.len(), 1);
    // The number is free again; a retry still answers what the first run answered.
    app.unassign(&account.account_id, &users[0].user_id, true)
        .await
        .expect("unassigned");
    let retry = app
        .telephony()
        .batch_assign_phone_numbers(request.clone())
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry, first);
    assert!(app.get_number(&numbers[0]).await.association.is_none());
    assert_eq!(app.all_changes(&account.account_id, "").await.len(), 2);

    // A viewer's retry is refused per item, as AssignPhoneNumber refuses it, not answered.
    let viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
    let refused = app
        .telephony_as(Some(&viewer))
        .batch_assign_phone_numbers(request.clone())
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert!(
        refused
            .iter()
            .all(|r| code_of(&r.status) == Code::PermissionDenied),
        "{refused:?}"
    );

    // The same id for other content is refused.
    let mut other = request;
    other.items.pop();
    let refused = app
        .telephony()
        .batch_assign_phone_numbers(other)
        .await
        .expect_err("reused id");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
}

/// A settings batch whose users end with different permissions (and a user named twice, whose
/// last item wins) stores each user's own, as read back afterwards.
async fn a_settings_batch_stores_each_users_own_permissions(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Mixed").await.account_id;
    let users = bulk_users(&app, &account, "mixed", 4).await;
    let numbers = block(4100, 4);
    app.order_business_numbers(&numbers).await;
    let items = (users.iter().zip(&numbers))
        .map(|(user, number)| assignment(&user.user_id, number))
        .collect();
    assign_batch(&app, &account, items, false, false).await;
    let all_on = TelephonySettings {
        inbound_calling: true,
        outbound_calling: true,
        sms: true,
    };
    let change = |user: usize, paths: &[&str]| SettingsChange {
        user_id: users[user].user_id.clone(),
        telephony_settings: Some(all_on),
        update_mask: Some(mask(paths)),
    };
    let results = app
        .telephony()
        .batch_update_telephony_settings(BatchUpdateTelephonySettingsRequest {
            account_id: account.clone(),
            items: vec![
                change(0, &["sms"]),
                change(1, &["inbound_calling", "outbound_calling"]),
                change(2, &["inbound_calling", "outbound_calling", "sms"]),
                change(3, &["sms"]),
                change(3, &["inbound_calling"]),
            ],
            ..Default::default()
        })
        .await
        .expect("settings batch")
        .into_inner()
        .results;
    assert!(
        results.iter().all(|r| code_of(&r.status) == Code::Ok),
        "{results:?}"
    );
    let stored = |inbound_calling, outbound_calling, sms| TelephonySettings {
        inbound_calling,
        outbound_calling,
        sms,
    };
    let expected = [
        stored(false, false, true),
        stored(true, true, false),
        stored(true, true, true),
        stored(true, false, true),
    ];
    for (user, expected) in users.iter().zip(expected) {
        let read = app
            .telephony()
            .get_telephony_settings(GetTelephonySettingsRequest {
                account_id: account.clone(),
                user_id: user.user_id.clone(),
            })
            .await
            .expect("the user's permissions")
            .into_inner();
        assert_eq!(read, expected, "{}", user.email);
    }
}

on_both_databases!(
    a_settings_batch_stores_each_users_own_permissions,
    a_thousand_assignments_with_bad_items_mixed_in,
    a_dry_run_answers_what_the_real_run_answers,
    an_atomic_batch_that_fails_applies_nothing,
    unassign_and_settings_batches_answer_per_item,
    an_account_key_is_refused_per_item_outside_its_account,
    oversized_and_empty_batches_are_refused,
    a_retried_batch_with_its_request_id_changes_nothing_more,
);
