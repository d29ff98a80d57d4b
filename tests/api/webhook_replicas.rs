//! Webhook delivery with two replicas of the real binary on one PostgreSQL database: one replica
//! at a time delivers a webhook (the receiver never sees two requests at once), and when that
//! replica is killed without any cleanup, the other takes over and the receiver still sees every
//! event once, in order. Prints how long the takeover took.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telephony_admin::proto::{
    CreateAccountRequest, CreateWebhookRequest, ListChangesRequest, LogoutUserRequest,
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    user_service_client::UserServiceClient, webhook_service_client::WebhookServiceClient,
};
use tonic::transport::Channel;

use crate::common::fixtures::new_user;
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::{Authed, Backend, Bearer, TestDatabase};

/// One `telephony-admin serve` process, killed (SIGKILL) when dropped or by [`Replica::kill`].
struct Replica {
    child: Child,
    channel: Channel,
    key: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(database_url: &str, key: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_telephony-admin"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
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
            .env("TELEPHONY_ADMIN_BOOTSTRAP_KEY", key)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the telephony-admin binary");
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for pipe in pipes {
            let lines_tx = lines_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = lines_tx.send(line);
                }
            });
        }
        drop(lines_tx);
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.recv().await {
                if let Some(address) = listening_address(&line) {
                    return Some(address);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the replica logs `listening`");
        // Keep draining the output so that the replica never blocks on a full pipe.
        tokio::spawn(async move { while lines.recv().await.is_some() {} });
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the replica");
        Self {
            child,
            channel,
            key: key.to_owned(),
        }
    }

    /// SIGKILL: no graceful shutdown, no lease released.
    fn kill(&mut self) {
        self.child.kill().expect("kill the replica");
        self.child.wait().expect("reap the replica");
    }

    fn bearer(&self) -> Bearer {
        Bearer(Some(format!("Bearer {}", self.key).parse().unwrap()))
    }
    fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn webhooks(&self) -> WebhookServiceClient<Authed> {
        WebhookServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    if record.get("message")?.as_str()? != "listening" {
        return None;
    }
    record.get("address")?.as_str()?.parse().ok()
}

async fn sign_out(replica: &Replica, account: &str, user: &str) -> u64 {
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
    let mut first = Replica::start(&database.url, &key).await;
    // Requests are held a little, so that two replicas delivering at once would overlap.
    let receiver = Receiver::start_holding(Mode::Accept, Duration::from_millis(10)).await;
    let account = first
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account_id;
    let user = first
        .users()
        .create_user(new_user(&account, "user@example.com"))
        .await
        .unwrap()
        .into_inner()
        .user_id;
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
    let mut sent = vec![sign_out(&first, &account, &user).await];
    receiver.wait_for(1, Duration::from_secs(60)).await;
    let second = Replica::start(&database.url, &key).await;
    for i in 0..40 {
        let through = if i % 2 == 0 { &first } else { &second };
        sent.push(sign_out(through, &account, &user).await);
    }
    receiver.wait_for(sent.len(), Duration::from_secs(60)).await;

    // Kill the holder while events keep coming through the survivor.
    let before_kill = receiver.accepted().len();
    first.kill();
    let killed_at = Instant::now();
    for _ in 0..20 {
        sent.push(sign_out(&second, &account, &user).await);
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
