//! Values at the edge of their range that are still valid are answered normally.

use super::fixture;
use crate::common::{Backend, spawn_app};
use telephony_admin::proto::{
    ListAccountsRequest, ListChangesRequest, TelephonySettings, UpdateAccountRequest,
    UpdateTelephonySettingsRequest, WatchChangesRequest,
};

/// Values at the edge of their range that are still valid are answered normally.
async fn extreme_but_valid_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let f = fixture(&app).await;
    // A resume point beyond the last event: nothing to list, and a watch that is refused.
    let events = app
        .changes()
        .list_changes(ListChangesRequest {
            after_sequence: u64::MAX,
            ..Default::default()
        })
        .await
        .expect("after_sequence u64::MAX")
        .into_inner()
        .events;
    assert!(events.is_empty(), "{events:?}");
    let refused = app
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(u64::MAX),
            ..Default::default()
        })
        .await
        .expect_err("a watch from u64::MAX, beyond the log, is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    // The largest page and a maximal, valid name.
    app.accounts()
        .list_accounts(ListAccountsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("page_size 1000");
    let renamed = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: f.account_id.clone(),
            name: "é".repeat(100),
        })
        .await
        .expect("a 100-character name")
        .into_inner();
    assert_eq!(renamed.name.chars().count(), 100);
    // Repeating a known mask path is harmless.
    let settings = app
        .telephony()
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: f.account_id.clone(),
            user_id: f.user_id.clone(),
            telephony_settings: Some(TelephonySettings {
                inbound_calling: false,
                outbound_calling: false,
                sms: true,
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["sms".into(); 1000],
            }),
            request_id: String::new(),
        })
        .await
        .expect("1000 copies of a known path")
        .into_inner();
    assert!(settings.sms && !settings.inbound_calling);
}

on_both_databases!(extreme_but_valid_values,);
