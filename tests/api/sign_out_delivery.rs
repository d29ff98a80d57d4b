//! The SIGN_OUT_ACKNOWLEDGED kind on the push deliveries: a webhook receives it (signed, with
//! `sign_out_required: false`), a webhook filtered on it receives nothing else, and the e-mail to
//! users, which is for sign-out-required changes only, never mails it.

use std::time::Duration;

use telephony_admin::proto::{ChangeKind, WebhookFilter};

use crate::common::http_receiver::{Mode, Receiver};
use crate::common::smtp_sink::SmtpSink;
use crate::common::{Backend, spawn_app_with};
use crate::sign_out::{ack, logout};
use crate::webhooks::{account_and_user, create_for, fast_delivery};

const WAIT: Duration = Duration::from_secs(60);

async fn acknowledgements_are_pushed_to_webhooks_but_never_mailed(backend: Backend) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, move |settings| {
        fast_delivery(settings);
        settings.smtp_url = Some(url);
        settings.mail_from = Some("telephony@example.com".into());
        settings.smtp_plaintext_loopback = true;
    })
    .await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let everything = Receiver::start(Mode::Accept).await;
    let acknowledged_only = Receiver::start(Mode::Accept).await;
    create_for(&app, &everything, None).await;
    create_for(
        &app,
        &acknowledged_only,
        Some(WebhookFilter {
            account_id: String::new(),
            kinds: vec![ChangeKind::SignOutAcknowledged as i32],
        }),
    )
    .await;

    let first = logout(&app, &account, &user).await;
    app.users()
        .acknowledge_sign_out(ack(&account, &user, first))
        .await
        .expect("acknowledge");
    let last = logout(&app, &account, &user).await;
    let acknowledged = first + 1;
    assert_eq!(last, acknowledged + 1);

    let all = everything.wait_for(3, WAIT).await;
    assert_eq!(everything.sequences(), vec![first, acknowledged, last]);
    assert_eq!(all[1].kind, "CHANGE_KIND_SIGN_OUT_ACKNOWLEDGED");
    assert_eq!(all[1].body["data"]["sign_out_required"], false);
    assert_eq!(all[0].body["data"]["sign_out_required"], true);
    let filtered = acknowledged_only.wait_for(1, WAIT).await;
    assert_eq!(filtered[0].sequence, acknowledged);
    assert!(
        everything.bad_signatures().is_empty() && acknowledged_only.bad_signatures().is_empty()
    );

    let mails = sink.wait_for(2, WAIT).await;
    let events = app.all_changes(&account, &user).await;
    let ids: Vec<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec![
            format!("<{}@example.com>", events[0].event_id),
            format!("<{}@example.com>", events[2].event_id),
        ],
        "the two sign-out requests are mailed, the acknowledgement between them is not"
    );
    // The later mail proves the cursor went past the acknowledgement; nothing else follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.mails().len(), 2);
    assert_eq!(acknowledged_only.requests(), 1);
}

on_both_databases!(acknowledgements_are_pushed_to_webhooks_but_never_mailed);
