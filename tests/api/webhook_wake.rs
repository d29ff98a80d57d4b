//! A webhook that becomes deliverable (created, or resumed) is taken at once, not at the
//! supervisor's next scan: the servers here scan every 150 s (a 600 s lease), so only the
//! store's signal, or on PostgreSQL another process's NOTIFY, can explain a delivery within
//! seconds.

use std::time::{Duration, Instant};

use telephony_admin::delivery::signature::generate_secret;
use telephony_admin::domain::webhook::EventFilter;
use telephony_admin::proto::UpdateWebhookRequest;
use telephony_admin::store::NewWebhook;

use crate::common::fixtures::mask;
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::{Backend, spawn_app_with};
use crate::webhooks::{account_and_user, create_for, fast_delivery, sign_outs, webhooks};
use telephony_admin::config::ServeSettings;

/// The promise is about 1 s (a 100 ms gap between scans, then the first attempt); a loaded
/// machine gets slack. A scan every 150 s is far beyond it.
const WAKE_WAIT: Duration = Duration::from_secs(5);

fn slow_scans(settings: &mut ServeSettings) {
    fast_delivery(settings);
    settings.delivery_lease = Duration::from_secs(600);
}

async fn a_new_webhook_is_delivered_without_waiting_for_a_scan(backend: Backend) {
    let app = spawn_app_with(backend, slow_scans).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let receiver = Receiver::start(Mode::Accept).await;

    let created = Instant::now();
    create_for(&app, &receiver, None).await;
    let sent = sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(1, WAKE_WAIT).await;
    assert_eq!(receiver.sequences(), sent);
    println!("first delivery {:?} after CreateWebhook", created.elapsed());
}

async fn resuming_a_paused_webhook_delivers_without_waiting_for_a_scan(backend: Backend) {
    let app = spawn_app_with(backend, slow_scans).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let receiver = Receiver::start(Mode::Accept).await;
    let webhook = create_for(&app, &receiver, None).await;
    let mut sent = sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(1, WAKE_WAIT).await;

    let set_paused = |paused: bool| UpdateWebhookRequest {
        webhook_id: webhook.webhook_id.clone(),
        paused,
        update_mask: Some(mask(&["paused"])),
        ..Default::default()
    };
    webhooks(&app)
        .update_webhook(set_paused(true))
        .await
        .unwrap();
    sent.extend(sign_outs(&app, &account, &user, 1).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.accepted().len(),
        1,
        "a paused webhook is not delivered"
    );

    webhooks(&app)
        .update_webhook(set_paused(false))
        .await
        .unwrap();
    receiver.wait_for(2, WAKE_WAIT).await;
    assert_eq!(receiver.sequences(), sent);
}

on_both_databases!(
    a_new_webhook_is_delivered_without_waiting_for_a_scan,
    resuming_a_paused_webhook_delivers_without_waiting_for_a_scan,
);

/// A webhook created by another process (here the test's own store, whose signal wakes no
/// server) reaches the server through PostgreSQL's NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn a_webhook_created_by_another_process_is_delivered_without_waiting_for_a_scan() {
    let app = spawn_app_with(Backend::Postgres, slow_scans).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let receiver = Receiver::start(Mode::Accept).await;
    let secret = generate_secret();
    receiver.trust(&secret);

    app.store
        .webhooks()
        .create(NewWebhook {
            url: receiver.url(),
            description: "created elsewhere".into(),
            filter: EventFilter::default(),
            secret,
        })
        .await
        .expect("a webhook created through another store");
    let sent = sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(1, WAKE_WAIT).await;
    assert_eq!(receiver.sequences(), sent);
}
