//! Tenants kept apart by the store: assignment answers outside a key's account, keys of a
//! deleted account, and idempotency records scoped by tenant and by the whole request.

use super::holder;
use crate::common::account_scope;
use crate::common::fixtures::{assign_via, number, unassign_via};
use crate::common::{Backend, TestApp, spawn_app};
use telephony_admin::keys::Role;
use telephony_admin::proto::{
    DeleteAccountRequest, DeletePhoneNumberRequest, GetPhoneNumberRequest, ListAccountsRequest,
};
use tonic::Code;

async fn delete_number(app: &TestApp, e164: &str) {
    app.numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: e164.into(),
        })
        .await
        .expect("queue the number for deletion");
}

async fn assignment_answers_like_get_phone_number_outside_the_key_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await.account_id;
    let other = app.create_account("Other").await.account_id;
    let user = app.create_user(&own, "probe@example.com").await.user_id;
    let colleague = app.create_user(&own, "colleague@example.com").await.user_id;
    let stranger = app
        .create_user(&other, "stranger@example.com")
        .await
        .user_id;
    let (elsewhere, queued, absent, colleagues) = (number(1), number(2), number(3), number(4));
    app.order_business_numbers(&[&elsewhere, &queued, &colleagues])
        .await;
    app.assign(&other, &stranger, &elsewhere).await.unwrap();
    app.assign(&own, &colleague, &colleagues).await.unwrap();
    delete_number(&app, &queued).await;

    let key = app.create_key(Role::Admin, account_scope(&own)).await;
    let mut as_account = app.telephony_as(Some(&key));
    for probe in [&elsewhere, &queued, &absent] {
        let read = app
            .numbers_as(Some(&key))
            .get_phone_number(GetPhoneNumberRequest {
                phone_number_id: probe.clone(),
            })
            .await
            .expect_err("GetPhoneNumber hides the number from the account key");
        let assigned = assign_via(&mut as_account, &own, &user, probe, "")
            .await
            .expect_err("the number cannot be assigned");
        assert_eq!(read.code(), Code::PermissionDenied, "{probe}: {read:?}");
        assert_eq!(
            (assigned.code(), assigned.message()),
            (read.code(), read.message()),
            "{probe}: assignment answers exactly as GetPhoneNumber does"
        );
    }
    // A number the key may see keeps its precise refusal.
    let taken = assign_via(&mut as_account, &own, &user, &colleagues, "")
        .await
        .expect_err("the colleague's number is taken");
    assert_eq!(taken.code(), Code::FailedPrecondition, "{taken:?}");

    // An organisation key still learns what is wrong.
    let mut as_org = app.telephony();
    let codes = [
        (&elsewhere, Code::FailedPrecondition),
        (&queued, Code::FailedPrecondition),
        (&absent, Code::NotFound),
    ];
    for (probe, code) in codes {
        let refused = assign_via(&mut as_org, &own, &user, probe, "")
            .await
            .expect_err("the number cannot be assigned");
        assert_eq!(refused.code(), code, "{probe}: {refused:?}");
    }
}

/// Calls ListAccounts with `key` until it is refused as unauthenticated.
async fn key_works(app: &TestApp, key: &str) -> bool {
    app.accounts_as(Some(key))
        .list_accounts(ListAccountsRequest::default())
        .await
        .is_ok()
}

async fn deleting_an_account_revokes_its_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    // On PostgreSQL, a second replica must drop the keys from its cache too.
    let replica = match backend {
        Backend::Postgres => Some(app.spawn_replica().await),
        Backend::Sqlite => None,
    };
    let gone = app.create_account("Gone").await.account_id;
    let stays = app.create_account("Stays").await.account_id;
    let admin = app.create_key(Role::Admin, account_scope(&gone)).await;
    let viewer = app.create_key(Role::Viewer, account_scope(&gone)).await;
    let neighbour = app.create_key(Role::Admin, account_scope(&stays)).await;
    let servers: Vec<&TestApp> = std::iter::once(&app).chain(replica.as_ref()).collect();
    for server in &servers {
        for key in [&admin, &viewer, &neighbour] {
            assert!(
                key_works(server, key).await,
                "each key works (and is cached)"
            );
        }
    }

    app.accounts()
        .delete_account(DeleteAccountRequest {
            account_id: gone.clone(),
        })
        .await
        .expect("delete the account");

    for server in &servers {
        server.wait_until_refused(&admin).await;
        server.wait_until_refused(&viewer).await;
        assert!(
            key_works(server, &neighbour).await,
            "another account's key is untouched"
        );
    }
    let keys = app.store.keys().list().await.expect("list keys");
    let revoked = keys
        .iter()
        .filter(|k| k.account_id.as_ref().map(|a| a.as_str()) == Some(gone.as_str()))
        .collect::<Vec<_>>();
    assert_eq!(revoked.len(), 2);
    assert!(
        revoked.iter().all(|k| k.revoke_time.is_some()),
        "the keys are revoked, not deleted: {revoked:?}"
    );
}

async fn request_ids_are_scoped_by_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.create_account("First").await.account_id;
    let second = app.create_account("Second").await.account_id;
    let first_user = app.create_user(&first, "a@example.com").await.user_id;
    let second_user = app.create_user(&second, "b@example.com").await.user_id;
    app.order_business_numbers(&[number(1), number(2)]).await;
    let first_key = app.create_key(Role::Admin, account_scope(&first)).await;
    let second_key = app.create_key(Role::Admin, account_scope(&second)).await;
    let request_id = uuid::Uuid::new_v4().to_string();

    let mut first_client = app.telephony_as(Some(&first_key));
    let mut second_client = app.telephony_as(Some(&second_key));
    let a = assign_via(
        &mut first_client,
        &first,
        &first_user,
        &number(1),
        &request_id,
    )
    .await
    .expect("the first account's assignment");
    let b = assign_via(
        &mut second_client,
        &second,
        &second_user,
        &number(2),
        &request_id,
    )
    .await
    .expect("the same request_id in another account is another request");
    assert_eq!(a.primary_phone_number, number(1));
    assert_eq!(b.primary_phone_number, number(2));
    assert_eq!(
        holder(&app.get_number(&number(2)).await),
        Some(second_user.as_str())
    );

    // Each tenant's retry gets its own first result back.
    let a_again = assign_via(
        &mut first_client,
        &first,
        &first_user,
        &number(1),
        &request_id,
    )
    .await
    .expect("retry");
    let b_again = assign_via(
        &mut second_client,
        &second,
        &second_user,
        &number(2),
        &request_id,
    )
    .await
    .expect("retry");
    assert_eq!((a_again, b_again), (a, b));
}

async fn a_refused_unassignment_is_not_remembered_and_confirm_is_part_of_the_request(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Confirm").await.account_id;
    let user = app.create_user(&account, "c@example.com").await.user_id;
    app.order_business_numbers(&[number(1)]).await;
    app.assign(&account, &user, &number(1)).await.unwrap();
    let mut client = app.telephony();

    // A refusal is not kept: the corrected request with the same id is decided afresh.
    let request_id = uuid::Uuid::new_v4().to_string();
    let refused = unassign_via(&mut client, &account, &user, false, &request_id)
        .await
        .expect_err("unconfirmed");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let done = unassign_via(&mut client, &account, &user, true, &request_id)
        .await
        .expect("the confirmed request with the same id");
    assert_eq!(done.primary_phone_number, "");
    assert_eq!(holder(&app.get_number(&number(1)).await), None);

    // The success is kept, for the same request only: the same id without confirm is another
    // request, refused as such rather than answered with the stored success.
    app.assign(&account, &user, &number(1)).await.unwrap();
    let reused = unassign_via(&mut client, &account, &user, false, &request_id)
        .await
        .expect_err("a different request under a used id");
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert!(
        reused.message().contains("request_id"),
        "the refusal names the reused id: {reused:?}"
    );
    assert_eq!(
        holder(&app.get_number(&number(1)).await),
        Some(user.as_str()),
        "nothing was unassigned"
    );
}

on_both_databases!(
    assignment_answers_like_get_phone_number_outside_the_key_scope,
    deleting_an_account_revokes_its_keys,
    request_ids_are_scoped_by_tenant,
    a_refused_unassignment_is_not_remembered_and_confirm_is_part_of_the_request,
);
