//! A re-numbering through the batch RPCs: hundreds of numbers taken back in one
//! BatchUnassignPhoneNumbers (one user named twice, one unknown), then new numbers given out in
//! one BatchAssignPhoneNumbers. Each item answers as the single RPC would; every release emits
//! its event in item order, closes the number's history period and leaves the user's sign-out
//! pending since their first unacknowledged change. Then the permissions of all of them in one
//! BatchUpdateTelephonySettings, one user twice and one change to the same values.

use telephony_admin::proto::{
    BatchAssignPhoneNumbersRequest, BatchUnassignPhoneNumbersRequest,
    BatchUpdateTelephonySettingsRequest, ChangeKind, ListPhoneNumberAssignmentsRequest,
    TelephonySettings, batch_assign_phone_numbers_request::Item as Assignment,
    batch_update_telephony_settings_request::Item as SettingsChange,
};
use tonic::Code;

use crate::common::batch::{block, bulk_users, code_of, rpc_status};
use crate::common::fixtures::{UNKNOWN_ID, mask};
use crate::common::{Backend, TestApp, spawn_app};

const USERS: usize = 300;

async fn assign_all(app: &TestApp, account_id: &str, user_ids: &[String], numbers: &[String]) {
    let results = app
        .telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account_id.into(),
            items: user_ids
                .iter()
                .zip(numbers)
                .map(|(user_id, number)| Assignment {
                    emergency_location_id: String::new(),
                    user_id: user_id.clone(),
                    e164_phone_number: number.clone(),
                })
                .collect(),
            ..Default::default()
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results;
    let failed = results.iter().find(|r| code_of(&r.status) != Code::Ok);
    assert!(failed.is_none(), "{failed:?}");
}

async fn a_renumbering_takes_back_and_gives_out_hundreds_of_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Renumbered").await;
    let user_ids: Vec<String> = bulk_users(&app, &account.account_id, "moved", USERS)
        .await
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    let (old, new) = (block(5000, USERS), block(6000, USERS));
    app.order_business_numbers(&old).await;
    app.order_business_numbers(&new).await;
    assign_all(&app, &account.account_id, &user_ids, &old).await;
    let assigned = app.all_changes(&account.account_id, "").await;

    let mut items = user_ids.clone();
    items.push(user_ids[5].clone()); // its number was taken back by item 5
    items.push(UNKNOWN_ID.into());
    let results = app
        .telephony()
        .batch_unassign_phone_numbers(BatchUnassignPhoneNumbersRequest {
            account_id: account.account_id.clone(),
            user_ids: items.clone(),
            confirm: true,
            ..Default::default()
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results;
    assert_eq!(results.len(), USERS + 2);
    for (i, result) in results.iter().enumerate().take(USERS) {
        assert_eq!(code_of(&result.status), Code::Ok, "item {i}: {result:?}");
    }
    for (i, code) in [
        (USERS, Code::FailedPrecondition),
        (USERS + 1, Code::NotFound),
    ] {
        let single = app
            .unassign(&account.account_id, &items[i], true)
            .await
            .expect_err("fails alone too");
        assert_eq!(single.code(), code);
        assert_eq!(results[i].status, Some(rpc_status(&single)), "item {i}");
    }

    // One event per release, in item order; each answer's pending sign-out runs from the
    // assignment (never acknowledged) to its release.
    let released: Vec<_> = app.all_changes(&account.account_id, "").await[assigned.len()..]
        .iter()
        .map(|e| {
            assert_eq!(e.kind, ChangeKind::PhoneNumberUnassigned as i32);
            (e.user_id.clone(), e.e164_phone_number.clone(), e.sequence)
        })
        .collect();
    let expected: Vec<_> = results[..USERS]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let user = r.user.as_ref().expect("a released user");
            assert_eq!(user.primary_phone_number, "");
            let pending = user.sign_out_pending.as_ref().expect("still pending");
            assert_eq!(pending.oldest_change_sequence, assigned[i].sequence);
            (
                user.user_id.clone(),
                old[i].clone(),
                pending.latest_change_sequence,
            )
        })
        .collect();
    assert_eq!(released, expected);
    for i in [0, 5, USERS - 1] {
        assert!(app.get_number(&old[i]).await.association.is_none(), "{i}");
        let periods = app
            .numbers()
            .list_phone_number_assignments(ListPhoneNumberAssignmentsRequest {
                phone_number_id: old[i].clone(),
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .phone_number_assignments;
        assert_eq!(periods.len(), 1, "{periods:?}");
        assert!(periods[0].unassign_time.is_some(), "the period is closed");
    }

    // The same users take new numbers, and the old ones can go to others.
    assign_all(&app, &account.account_id, &user_ids, &new).await;
    let others: Vec<String> = bulk_users(&app, &account.account_id, "others", 3)
        .await
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    assign_all(&app, &account.account_id, &others, &old[..3]).await;
}

async fn hundreds_of_permission_changes_apply_in_item_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Permissions").await;
    let user_ids: Vec<String> = bulk_users(&app, &account.account_id, "perm", USERS)
        .await
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    let numbers = block(7000, USERS);
    app.order_business_numbers(&numbers).await;
    assign_all(&app, &account.account_id, &user_ids, &numbers).await;
    let before = app.all_changes(&account.account_id, "").await.len();

    let on = TelephonySettings {
        inbound_calling: true,
        outbound_calling: true,
        sms: true,
    };
    let change = |user_id: &str, fields: &[&str]| SettingsChange {
        user_id: user_id.into(),
        telephony_settings: Some(on),
        update_mask: Some(mask(fields)),
    };
    let mut items: Vec<SettingsChange> = user_ids.iter().map(|u| change(u, &["sms"])).collect();
    items.push(change(&user_ids[0], &["inbound_calling"])); // on top of item 0's change
    items.push(change(&user_ids[1], &["sms"])); // the same values again: no change
    let results = app
        .telephony()
        .batch_update_telephony_settings(BatchUpdateTelephonySettingsRequest {
            account_id: account.account_id.clone(),
            items,
            ..Default::default()
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results;
    assert!(results.iter().all(|r| code_of(&r.status) == Code::Ok));
    let sms_only = TelephonySettings {
        sms: true,
        ..Default::default()
    };
    assert_eq!(results[1].telephony_settings, Some(sms_only));
    assert_eq!(
        results[USERS].telephony_settings,
        Some(TelephonySettings {
            inbound_calling: true,
            ..sms_only
        })
    );
    assert_eq!(results[USERS + 1].telephony_settings, Some(sms_only));
    let user = app.get_user(&account.account_id, &user_ids[0]).await;
    assert_eq!(
        user.telephony_settings, results[USERS].telephony_settings,
        "the last item for a user is what is stored"
    );

    // One event per effective change, in item order: none for the change to the same values.
    let events: Vec<_> = app.all_changes(&account.account_id, "").await[before..]
        .iter()
        .map(|e| {
            let settings = e.telephony_settings.expect("an event has settings");
            (e.user_id.clone(), settings.sms, settings.inbound_calling)
        })
        .collect();
    let mut expected: Vec<_> = user_ids.iter().map(|u| (u.clone(), true, false)).collect();
    expected.push((user_ids[0].clone(), true, true));
    assert_eq!(events, expected);
}

on_both_databases!(
    a_renumbering_takes_back_and_gives_out_hundreds_of_numbers,
    hundreds_of_permission_changes_apply_in_item_order,
);
