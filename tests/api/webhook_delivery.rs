//! Webhook delivery end to end: a real HTTP receiver on a loopback port verifies every signature
//! and records what it accepted. Every matching event arrives exactly once and in sequence order
//! across a receiver that fails half of its requests, a receiver that is down for a while, and a
//! server restart in the middle; a webhook failing for too long is paused with its last error and
//! resumes from its cursor. (Two replicas: `webhook_replicas`.)

use std::time::{Duration, SystemTime};

use telephony_admin::proto::{ChangeKind, UpdateWebhookRequest, WebhookFilter, WebhookState};

use crate::common::fixtures::mask;
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::{Backend, spawn_app_on, spawn_app_with};
use crate::webhooks::{
    account_and_user, create_for, fast_delivery, get, sign_outs, wait_until, webhooks,
};

const WAIT: Duration = Duration::from_secs(60);

async fn a_receiver_failing_half_its_requests_gets_everything_in_order(backend: Backend) {
    let app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let receiver = Receiver::start(Mode::FailEveryOther).await;
    let webhook = create_for(&app, &receiver, None).await;
    let sent = sign_outs(&app, &account, &user, 20).await;

    receiver.wait_for(sent.len(), WAIT).await;
    assert_eq!(receiver.sequences(), sent, "each event once, in order");
    assert!(
        receiver.refused() >= sent.len(),
        "every event was refused once first"
    );
    assert!(
        receiver.bad_signatures().is_empty(),
        "{:?}",
        receiver.bad_signatures()
    );
    for delivery in receiver.accepted() {
        assert_eq!(delivery.kind, "CHANGE_KIND_USER_SIGN_OUT_REQUESTED");
        assert_eq!(delivery.body["data"]["account_id"], account.as_str());
        assert_eq!(delivery.body["data"]["user_id"], user.as_str());
        assert_eq!(delivery.body["data"]["sign_out_required"], true);
        assert!(
            delivery.body["data"]["notice"]
                .as_str()
                .unwrap()
                .contains("sign out")
        );
    }
    let shown = wait_until(&app, &webhook.webhook_id, "caught up", |w| {
        w.last_delivered_sequence == *sent.last().unwrap()
    })
    .await;
    assert_eq!(shown.pending_events, 0);
    assert_eq!(shown.state, WebhookState::Active as i32);
    assert!(
        shown.last_error.contains("500"),
        "the last failure is kept: {shown:?}"
    );
    assert!(
        shown.failing_since.is_none(),
        "no failure streak after a success"
    );
}

async fn a_receiver_down_for_a_while_misses_nothing(backend: Backend) {
    let app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let mut receiver = Receiver::start(Mode::Accept).await;
    let webhook = create_for(&app, &receiver, None).await;
    let mut sent = sign_outs(&app, &account, &user, 5).await;
    receiver.wait_for(5, WAIT).await;

    receiver.down().await;
    sent.extend(sign_outs(&app, &account, &user, 10).await);
    let failing = wait_until(&app, &webhook.webhook_id, "failing", |w| {
        w.failing_since.is_some() && !w.last_error.is_empty()
    })
    .await;
    assert_eq!(failing.pending_events, 10);
    assert_eq!(failing.state, WebhookState::Active as i32);
    receiver.up().await;
    sent.extend(sign_outs(&app, &account, &user, 5).await);

    receiver.wait_for(sent.len(), WAIT).await;
    assert_eq!(receiver.sequences(), sent);
    let shown = wait_until(&app, &webhook.webhook_id, "caught up", |w| {
        w.pending_events == 0 && w.failing_since.is_none()
    })
    .await;
    assert!(shown.last_error_time.is_some());
}

async fn a_restart_resumes_where_delivery_stopped(backend: Backend) {
    let mut first = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&first, "Acme").await;
    // Slow answers, so that the restart happens with events still pending.
    let receiver = Receiver::start_holding(Mode::Accept, Duration::from_millis(30)).await;
    let webhook = create_for(&first, &receiver, None).await;
    let mut sent = sign_outs(&first, &account, &user, 30).await;
    receiver.wait_for(3, WAIT).await;
    first.stop().await;
    let delivered_before = receiver.accepted().len();

    let key = first.admin_key.clone();
    let database = first
        .database
        .take()
        .expect("the first app owns its database");
    let second = spawn_app_on(database, |settings| {
        fast_delivery(settings);
        settings.bootstrap_key = Some(key);
    })
    .await;
    sent.extend(sign_outs(&second, &account, &user, 10).await);

    receiver.wait_for_distinct(sent.len(), WAIT).await;
    // At least once: an attempt cut off by the stop may be repeated, right after itself.
    let mut sequences = receiver.sequences();
    sequences.dedup();
    assert_eq!(sequences, sent, "nothing skipped, nothing out of order");
    assert!(
        delivered_before < sent.len(),
        "the restart happened mid-stream"
    );
    assert!(receiver.bad_signatures().is_empty());
    wait_until(&second, &webhook.webhook_id, "caught up", |w| {
        w.pending_events == 0
    })
    .await;
}

async fn only_matching_events_are_delivered(backend: Backend) {
    let app = spawn_app_with(backend, fast_delivery).await;
    let (acme, acme_user) = account_and_user(&app, "Acme").await;
    let (other, other_user) = account_and_user(&app, "Other").await;
    let receiver = Receiver::start(Mode::Accept).await;
    create_for(
        &app,
        &receiver,
        Some(WebhookFilter {
            account_id: acme.clone(),
            kinds: vec![ChangeKind::UserSignOutRequested as i32],
        }),
    )
    .await;
    let mut wanted = Vec::new();
    for _ in 0..3 {
        sign_outs(&app, &other, &other_user, 1).await;
        wanted.extend(sign_outs(&app, &acme, &acme_user, 1).await);
    }
    // A USER_DELETED event of the account does not match the kinds.
    let doomed = app.create_user(&acme, "doomed@example.com").await.user_id;
    app.users()
        .delete_user(telephony_admin::proto::DeleteUserRequest {
            account_id: acme.clone(),
            user_id: doomed,
        })
        .await
        .unwrap();
    wanted.extend(sign_outs(&app, &acme, &acme_user, 1).await);

    receiver.wait_for(wanted.len(), WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.sequences(), wanted);
}

async fn continuous_failure_pauses_and_resuming_continues_from_the_cursor(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        fast_delivery(settings);
        settings.webhook_pause_after = Duration::from_secs(1);
    })
    .await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let mut receiver = Receiver::start(Mode::Accept).await;
    let webhook = create_for(&app, &receiver, None).await;
    let mut sent = sign_outs(&app, &account, &user, 2).await;
    receiver.wait_for(2, WAIT).await;
    receiver.down().await;
    sent.extend(sign_outs(&app, &account, &user, 3).await);

    let paused = wait_until(&app, &webhook.webhook_id, "paused", |w| {
        w.state == WebhookState::Paused as i32
    })
    .await;
    assert!(
        !paused.last_error.is_empty(),
        "the last error is kept: {paused:?}"
    );
    assert!(paused.last_error_time.is_some());
    assert_eq!(paused.pending_events, 3);
    receiver.up().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.accepted().len(),
        2,
        "a paused webhook is not delivered"
    );

    webhooks(&app)
        .update_webhook(UpdateWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
            paused: false,
            update_mask: Some(mask(&["paused"])),
            ..Default::default()
        })
        .await
        .unwrap();
    receiver.wait_for(sent.len(), WAIT).await;
    assert_eq!(receiver.sequences(), sent);
    let resumed = get(&app, &webhook.webhook_id).await;
    assert_eq!(resumed.state, WebhookState::Active as i32);
}

on_both_databases!(
    a_receiver_failing_half_its_requests_gets_everything_in_order,
    a_receiver_down_for_a_while_misses_nothing,
    a_restart_resumes_where_delivery_stopped,
    only_matching_events_are_delivered,
    continuous_failure_pauses_and_resuming_continues_from_the_cursor,
);

/// Latency from commit to receipt for 1,000 events to one webhook; prints p50 and p99.
/// A measurement, not a test: `cargo test --test api measure_webhook_latency -- --ignored --nocapture`
/// (with TEST_DATABASE_URL for the PostgreSQL figure).
async fn measure_latency(backend: Backend) {
    const EVENTS: usize = 1000;
    let app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let receiver = Receiver::start(Mode::Accept).await;
    create_for(&app, &receiver, None).await;
    // Let the delivery start before measuring.
    sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(1, WAIT).await;

    let started = std::time::Instant::now();
    sign_outs(&app, &account, &user, EVENTS).await;
    let received = receiver
        .wait_for(EVENTS + 1, Duration::from_secs(600))
        .await;
    let elapsed = started.elapsed();
    let events = app.all_changes(&account, &user).await;
    let mut latencies: Vec<Duration> = received[1..]
        .iter()
        .map(|r| {
            let event = events
                .iter()
                .find(|e| e.sequence == r.sequence)
                .expect("the event exists");
            let t = event.occur_time.unwrap();
            let committed =
                SystemTime::UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32);
            r.at_system.duration_since(committed).unwrap_or_default()
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "webhook latency on {backend:?}: {EVENTS} events in {elapsed:?}; commit→receipt p50 {:?}, p99 {:?}, max {:?}",
        pick(0.50),
        pick(0.99),
        latencies.last().unwrap()
    );
}

mod measure_webhook_latency {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a measurement; run explicitly"]
    async fn sqlite() {
        super::measure_latency(crate::common::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a measurement; run explicitly"]
    async fn postgres() {
        super::measure_latency(crate::common::Backend::Postgres).await;
    }
}
