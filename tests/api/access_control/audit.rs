//! Every change event names the key that made it.

use crate::common::account_scope;
use crate::common::fixtures::assign_via;
use crate::common::{Backend, spawn_app};
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::proto::{
    ChangeKind, DeleteUserRequest, LogoutUserRequest, TelephonySettings,
    UpdateTelephonySettingsRequest, User,
};

/// Every change event names the id of the key that made it.
async fn change_events_name_their_actor(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await;
    let ann = app
        .create_user(&account.account_id, "ann@example.com")
        .await;
    let bob = app
        .create_user(&account.account_id, "bob@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    let (org_key, org_secret) = keys::create_key(
        &app.store,
        "org ops",
        Role::Admin,
        &Scope::Organisation,
        None,
    )
    .await
    .expect("create key");
    let (account_key, account_secret) = keys::create_key(
        &app.store,
        "account ops",
        Role::Admin,
        &account_scope(&account.account_id),
        None,
    )
    .await
    .expect("create key");
    assert_ne!(org_key.id, account_key.id);

    let assign_as = async |secret: &str, user: &User, number: &str| {
        let mut client = app.telephony_as(Some(secret));
        assign_via(&mut client, &account.account_id, &user.user_id, number, "").await
    };
    assign_as(&account_secret, &ann, "+12065550100")
        .await
        .expect("assign as the account key");
    assign_as(&org_secret, &bob, "+12065550101")
        .await
        .expect("assign as the organisation key");
    app.telephony_as(Some(&account_secret))
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: account.account_id.clone(),
            user_id: ann.user_id.clone(),
            telephony_settings: Some(TelephonySettings {
                inbound_calling: true,
                outbound_calling: false,
                sms: false,
            }),
            update_mask: None,
            request_id: String::new(),
        })
        .await
        .expect("update settings");
    app.users_as(Some(&org_secret))
        .logout_user(LogoutUserRequest {
            account_id: account.account_id.clone(),
            user_id: bob.user_id.clone(),
        })
        .await
        .expect("logout");
    app.users_as(Some(&account_secret))
        .delete_user(DeleteUserRequest {
            account_id: account.account_id.clone(),
            user_id: bob.user_id.clone(),
        })
        .await
        .expect("delete user");

    let events = app.all_changes("", "").await;
    let summary: Vec<(i32, &str, &str)> = events
        .iter()
        .map(|e| (e.kind, e.user_id.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                ChangeKind::PhoneNumberAssigned as i32,
                ann.user_id.as_str(),
                account_key.id.as_str()
            ),
            (
                ChangeKind::PhoneNumberAssigned as i32,
                bob.user_id.as_str(),
                org_key.id.as_str()
            ),
            (
                ChangeKind::TelephonySettingsUpdated as i32,
                ann.user_id.as_str(),
                account_key.id.as_str()
            ),
            (
                ChangeKind::UserSignOutRequested as i32,
                bob.user_id.as_str(),
                org_key.id.as_str()
            ),
            (
                ChangeKind::UserDeleted as i32,
                bob.user_id.as_str(),
                account_key.id.as_str()
            ),
        ]
    );
}

on_both_databases!(change_events_name_their_actor,);
