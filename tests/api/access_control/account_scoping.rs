//! Account-scoped keys: they see only their account, learn nothing about what lies outside it,
//! and (as viewers) watch only its changes.

use super::next_event;
use super::roles::Target;
use super::table::Rpc;
use crate::common::account_scope;
use crate::common::fixtures::{UNKNOWN_ID, assign_via};
use crate::common::{Backend, spawn_app};
use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    ChangeKind, GetPhoneNumberRequest, ListAccountsRequest, ListChangesRequest,
    ListPhoneNumbersRequest, PhoneNumberStatus, WatchChangesRequest,
};
use tonic::Code;

/// An account key sees its own account in lists, the unassigned inventory, and nothing else.
async fn account_keys_see_only_their_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let own_user = app.create_user(&own.account_id, "own@example.com").await;
    let other_user = app
        .create_user(&other.account_id, "other@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101", "+12065550102"])
        .await;
    app.assign(&other.account_id, &other_user.user_id, "+12065550101")
        .await
        .expect("assign number");
    let key = app
        .create_key(Role::Admin, account_scope(&own.account_id))
        .await;

    let accounts = app
        .accounts_as(Some(&key))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("list accounts")
        .into_inner()
        .accounts;
    assert_eq!(accounts, vec![own.clone()]);

    // The inventory: unassigned numbers only.
    let inventory = app
        .numbers_as(Some(&key))
        .list_phone_numbers(ListPhoneNumbersRequest {
            status: PhoneNumberStatus::Unassigned as i32,
            ..Default::default()
        })
        .await
        .expect("list the inventory")
        .into_inner()
        .phone_numbers;
    let listed: Vec<&str> = inventory
        .iter()
        .map(|n| n.e164_phone_number.as_str())
        .collect();
    assert_eq!(listed, ["+12065550100", "+12065550102"]);

    // Every number, or the assigned ones across accounts: refused.
    for status in [PhoneNumberStatus::Unspecified, PhoneNumberStatus::Assigned] {
        let refused = app
            .numbers_as(Some(&key))
            .list_phone_numbers(ListPhoneNumbersRequest {
                status: status as i32,
                ..Default::default()
            })
            .await
            .expect_err("listing beyond the inventory and the own account is refused");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }

    // An unassigned number can be read and assigned from the inventory.
    let unassigned = app
        .numbers_as(Some(&key))
        .get_phone_number(GetPhoneNumberRequest {
            phone_number_id: "+1 206 555 0100".into(),
        })
        .await
        .expect("an unassigned number is visible")
        .into_inner();
    assert_eq!(unassigned.status, PhoneNumberStatus::Unassigned as i32);
    let user = assign_via(
        &mut app.telephony_as(Some(&key)),
        &own.account_id,
        &own_user.user_id,
        "+12065550100",
        "",
    )
    .await
    .expect("assign from the inventory");
    assert_eq!(user.primary_phone_number, "+12065550100");

    // Its own numbers, by account.
    let own_numbers = app
        .numbers_as(Some(&key))
        .list_phone_numbers(ListPhoneNumbersRequest {
            account_id: own.account_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list own numbers")
        .into_inner()
        .phone_numbers;
    assert_eq!(own_numbers.len(), 1);
    assert_eq!(own_numbers[0].e164_phone_number, "+12065550100");

    // Another account's number: refused, as is one that does not exist.
    for number in ["+12065550101", "+12065559999"] {
        let refused = app
            .numbers_as(Some(&key))
            .get_phone_number(GetPhoneNumberRequest {
                phone_number_id: number.into(),
            })
            .await
            .expect_err("another account's number is not visible");
        assert_eq!(
            refused.code(),
            Code::PermissionDenied,
            "{number}: {refused:?}"
        );
    }

    // The change history without a filter means the key's own account (the other account
    // has an event too: its assignment above).
    let events = app
        .all_changes_as(&key, ListChangesRequest::default())
        .await;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.account_id == own.account_id),
        "{events:#?}"
    );
    let all = app.all_changes("", "").await;
    assert!(all.iter().any(|e| e.account_id == other.account_id));
}

/// Outside its scope a key learns nothing: an existing other account and an id that names
/// nothing get the same code and the same message, for every account-targeted RPC.
async fn refusals_do_not_reveal_existence(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let other_user = app
        .create_user(&other.account_id, "other@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    app.assign(&other.account_id, &other_user.user_id, "+12065550100")
        .await
        .expect("assign number");
    let existing = Target {
        account_id: other.account_id.clone(),
        user_id: other_user.user_id.clone(),
        number: "+12065550101".into(),
        order_id: String::new(),
        webhook_id: String::new(),
        sequence: 0,
        ..Target::default()
    };
    let missing = Target {
        account_id: UNKNOWN_ID.into(),
        user_id: "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f01".into(),
        number: "+12065550101".into(),
        order_id: String::new(),
        webhook_id: String::new(),
        sequence: 0,
        ..Target::default()
    };
    let before = app.snapshot(&[&own.account_id, &other.account_id]).await;
    for role in [Role::Admin, Role::Viewer] {
        let key = app.create_key(role, account_scope(&own.account_id)).await;
        for rpc in [
            Rpc::GetAccount,
            Rpc::UpdateAccount,
            Rpc::CreateUser,
            Rpc::GetUser,
            Rpc::ListUsers,
            Rpc::UpdateUser,
            Rpc::DeleteUser,
            Rpc::LogoutUser,
            Rpc::ListPhoneNumbers,
            Rpc::AssignPhoneNumber,
            Rpc::UnassignPhoneNumber,
            Rpc::GetTelephonySettings,
            Rpc::UpdateTelephonySettings,
            Rpc::WatchChanges,
            Rpc::ListChanges,
        ] {
            let a = rpc
                .call(&app, Some(&key), &existing)
                .await
                .expect_err("outside the scope");
            let b = rpc
                .call(&app, Some(&key), &missing)
                .await
                .expect_err("outside the scope");
            assert_eq!(a.code(), Code::PermissionDenied, "{rpc:?} {role:?}: {a:?}");
            assert_eq!(
                (a.code(), a.message()),
                (b.code(), b.message()),
                "{rpc:?} {role:?}"
            );
        }
        // A number assigned to another account and one that does not exist.
        let assigned_elsewhere = Target {
            number: "+12065550100".into(),
            ..Target::default()
        };
        let nowhere = Target {
            number: "+12065559999".into(),
            ..Target::default()
        };
        let a = Rpc::GetPhoneNumber
            .call(&app, Some(&key), &assigned_elsewhere)
            .await
            .expect_err("another account's number");
        let b = Rpc::GetPhoneNumber
            .call(&app, Some(&key), &nowhere)
            .await
            .expect_err("no such number");
        assert_eq!(a.code(), Code::PermissionDenied, "{a:?}");
        assert_eq!((a.code(), a.message()), (b.code(), b.message()));
    }
    assert_eq!(
        before,
        app.snapshot(&[&own.account_id, &other.account_id]).await
    );
}

/// Viewers may watch: an organisation viewer sees every account's events, an account viewer
/// only its own.
async fn viewers_can_watch_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let own_user = app.create_user(&own.account_id, "own@example.com").await;
    let other_user = app
        .create_user(&other.account_id, "other@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    let org_viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
    let account_viewer = app
        .create_key(Role::Viewer, account_scope(&own.account_id))
        .await;

    let mut org_stream = app
        .changes_as(Some(&org_viewer))
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("an organisation viewer may watch")
        .into_inner();
    let mut account_stream = app
        .changes_as(Some(&account_viewer))
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("an account viewer may watch its account")
        .into_inner();

    // The other account's change first: the account viewer must not see it.
    app.assign(&other.account_id, &other_user.user_id, "+12065550101")
        .await
        .expect("assign number");
    app.assign(&own.account_id, &own_user.user_id, "+12065550100")
        .await
        .expect("assign number");

    let first = next_event(&mut org_stream).await;
    let second = next_event(&mut org_stream).await;
    assert_eq!(
        (first.account_id.as_str(), second.account_id.as_str()),
        (other.account_id.as_str(), own.account_id.as_str())
    );
    let seen = next_event(&mut account_stream).await;
    assert_eq!(seen.account_id, own.account_id);
    assert_eq!(seen.kind, ChangeKind::PhoneNumberAssigned as i32);
    assert_eq!(seen.e164_phone_number, "+12065550100");
}

on_both_databases!(
    account_keys_see_only_their_account,
    refusals_do_not_reveal_existence,
    viewers_can_watch_changes,
);
