//! Webhook delivery with two replicas of the real binary on one PostgreSQL database: one replica
//! at a time delivers a webhook (the receiver never sees two requests at once), and when that
//! replica is killed without any cleanup, the other takes over and the receiver still sees every
//! event once, in order. Prints how long the takeover took.

use std::time::{Duration, Instant};

use telephony_admin::proto::{CreateWebhookRequest, ListChangesRequest, LogoutUserRequest};

use crate::common::clients::Clients;
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::process::{ServerCommand, TestProcess};
use crate::common::{Backend, TestDatabase};

/// A replica of the binary on `database_url`, with the bootstrap key `key`, delivering webhooks
/// to a plain-HTTP receiver with short timeouts, retries and leases.
async fn start_replica(database_url: &str, key: &str) -> TestProcess {
    ServerCommand::new()
        .key(key)
        .args(&[
            "--webhook-allow-insecure",
            "--delivery-timeout",
            "1s",
            "--delivery-retry-min",
            "50ms",
            "--delivery-retry-max",
            "400ms",
            "--delivery-lease",
            "4s",
        ])
        .start_on(database_url)
        .await
}

async fn sign_out(replica: &TestProcess, account: &str, user: &str) -> u64 {
    replica
        .users()
        .logout_user(LogoutUserRequest {
            account_id: account.into(),
            user_id: user.into(),
        })
        .await
        .expect("logout user")
        .into_inner()
        .sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn one_replica_at_a_time_and_a_takeover_after_a_kill() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let key = telephony_admin::keys::generate_secret();
    let mut first = start_replica(&database.url, &key).await;
    // Requests are held a little, so that two replicas delivering at once would overlap.
    let receiver = Receiver::start_holding(Mode::Accept, Duration::from_millis(10)).await;
    let (account, users, _) = Clients::of(&first).set_up(1, 0).await;
    let user = &users[0];
    let created = first
        .webhooks()
        .create_webhook(CreateWebhookRequest {
            url: receiver.url(),
            description: "replicas".into(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    receiver.trust(&created.secret);

    // The first replica, alone, takes the webhook.
    let mut sent = vec![sign_out(&first, &account, user).await];
    receiver.wait_for(1, Duration::from_secs(60)).await;
    let second = start_replica(&database.url, &key).await;
    for i in 0..40 {
        let through = if i % 2 == 0 { &first } else { &second };
        sent.push(sign_out(through, &account, user).await);
    }
    receiver.wait_for(sent.len(), Duration::from_secs(60)).await;

    // Kill the holder while events keep coming through the survivor.
    let before_kill = receiver.accepted().len();
    first.kill();
    let killed_at = Instant::now();
    for _ in 0..20 {
        sent.push(sign_out(&second, &account, user).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let received = receiver
        .wait_for_distinct(sent.len(), Duration::from_secs(120))
        .await;
    let resumed_at = received[before_kill..]
        .iter()
        .map(|r| r.at)
        .find(|at| *at > killed_at)
        .expect("a delivery after the kill");
    println!(
        "webhook takeover after a replica was killed: {:?} (lease 4s)",
        resumed_at - killed_at
    );

    let mut sequences = receiver.sequences();
    // At least once: the attempt the kill cut off may be repeated, right after itself.
    sequences.dedup();
    let all: Vec<u64> = second
        .changes()
        .list_changes(ListChangesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .iter()
        .map(|e| e.sequence)
        .filter(|s| *s >= sent[0])
        .collect();
    assert_eq!(all, sent, "the test's own view of what was committed");
    assert_eq!(sequences, sent, "every event, once, in order");
    assert_eq!(receiver.max_in_flight(), 1, "never two deliveries at once");
    assert!(receiver.bad_signatures().is_empty());
}
