//! Calling and SMS permissions: UpdateTelephonySettings with field masks, and what it refuses.

use super::{
    ALL_ON, OFF, assert_invalid_field, assert_precondition, get_settings, of_kind, snapshot, world,
};
use crate::common::fixtures::mask;
use crate::common::{Backend, spawn_app};
use telephony_admin::proto::{ChangeKind, TelephonySettings, UpdateTelephonySettingsRequest};

async fn settings_follow_the_update_mask(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    assert_eq!(get_settings(&app, &account_id, uid).await, OFF);

    // Only the masked field is taken from the request, even though all three are true in it.
    let sms_only = TelephonySettings { sms: true, ..OFF };
    let updated = app
        .update_settings(&account_id, uid, ALL_ON, &["sms"])
        .await
        .unwrap();
    assert_eq!(updated, sms_only);
    assert_eq!(get_settings(&app, &account_id, uid).await, sms_only);

    let calling = TelephonySettings {
        inbound_calling: true,
        outbound_calling: true,
        sms: false,
    };
    let updated = app
        .update_settings(
            &account_id,
            uid,
            calling,
            &["inbound_calling", "outbound_calling"],
        )
        .await
        .unwrap();
    assert_eq!(updated, ALL_ON, "sms was not in the mask and stays on");
    assert_eq!(get_settings(&app, &account_id, uid).await, ALL_ON);

    // An empty mask replaces all three.
    let replacement = TelephonySettings {
        inbound_calling: false,
        outbound_calling: true,
        sms: false,
    };
    let updated = app
        .update_settings(&account_id, uid, replacement, &[])
        .await
        .unwrap();
    assert_eq!(updated, replacement);
    assert_eq!(get_settings(&app, &account_id, uid).await, replacement);
    assert_eq!(
        app.get_user(&account_id, uid).await.telephony_settings,
        Some(replacement)
    );

    let events = app.all_changes(&account_id, "").await;
    let settings_events: Vec<_> = of_kind(&events, ChangeKind::TelephonySettingsUpdated)
        .into_iter()
        .map(|e| (e.e164_phone_number.as_str(), e.telephony_settings))
        .collect();
    assert_eq!(
        settings_events,
        vec![
            ("+12065550100", Some(sms_only)),
            ("+12065550100", Some(ALL_ON)),
            ("+12065550100", Some(replacement)),
        ]
    );
}

async fn settings_update_refuses_an_unknown_path(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    app.update_settings(&account_id, uid, ALL_ON, &["sms"])
        .await
        .unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    // A valid path next to the unknown one must not be applied either.
    let status = app
        .update_settings(&account_id, uid, ALL_ON, &["inbound_calling", "voicemail"])
        .await
        .unwrap_err();
    assert_invalid_field(&status, "update_mask");
    assert!(status.message().contains("voicemail"), "{status:?}");

    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );
}

async fn settings_update_requires_the_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let status = app
        .telephony()
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: account_id.clone(),
            user_id: uid.into(),
            telephony_settings: None,
            update_mask: Some(mask(&[])),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "telephony_settings");
    assert!(status.message().contains("is required"), "{status:?}");

    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );
}

async fn settings_update_requires_a_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let status = app
        .update_settings(&account_id, uid, ALL_ON, &[])
        .await
        .unwrap_err();
    assert_precondition(&status, "USER_HAS_NO_PHONE_NUMBER", "has no phone number");
    assert!(status.message().contains("assign one"), "{status:?}");

    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );
    assert_eq!(get_settings(&app, &account_id, uid).await, OFF);
}

async fn settings_update_without_a_change_emits_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let sms_only = TelephonySettings { sms: true, ..OFF };
    app.update_settings(&account_id, uid, sms_only, &[])
        .await
        .unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    // The same values through a partial mask, the full mask, and a mask of untouched fields.
    let same = app
        .update_settings(&account_id, uid, ALL_ON, &["sms"])
        .await
        .unwrap();
    assert_eq!(same, sms_only);
    let same = app
        .update_settings(&account_id, uid, sms_only, &[])
        .await
        .unwrap();
    assert_eq!(same, sms_only);
    let same = app
        .update_settings(&account_id, uid, OFF, &["inbound_calling"])
        .await
        .unwrap();
    assert_eq!(same, sms_only);

    let after = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;
    assert_eq!(
        after.events.len(),
        before.events.len(),
        "{:?}",
        after.events
    );
    assert_eq!(
        after, before,
        "a no-op update writes nothing, not even update_time"
    );
}

on_both_databases!(
    settings_follow_the_update_mask,
    settings_update_refuses_an_unknown_path,
    settings_update_requires_the_settings,
    settings_update_requires_a_number,
    settings_update_without_a_change_emits_nothing,
);
