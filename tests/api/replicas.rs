//! Two server processes of the real binary on one PostgreSQL database: a change committed through
//! one replica reaches the other's watchers through LISTEN/NOTIFY, and writers on both replicas
//! produce one gap-free sequence that every watcher on either replica sees in the same order.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::fixtures::new_user;
use crate::common::{Authed, Backend, Bearer, TestDatabase};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, CreateAccountRequest,
    CreatePhoneNumberOrderRequest, ListChangesRequest, PhoneNumberOrderStatus,
    PhoneNumberProductType, TelephonySettings, UnassignPhoneNumberRequest,
    UpdateTelephonySettingsRequest, WatchChangesRequest, WatchChangesResponse,
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
    watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::Streaming;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(10);

/// One `telephony-admin serve` process; killed when dropped, so a failing test leaves none behind.
struct Replica {
    child: Child,
    address: SocketAddr,
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
    /// Starts the binary on `database_url` and waits for its `listening` log line.
    async fn start(database_url: &str, key: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_telephony-admin"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                // Only LISTEN/NOTIFY (or this process's own commits) can wake the change hub.
                "--change-poll-interval",
                "1h",
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
            // Keep draining after the address is found: a full pipe would block the server's
            // logging.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = lines_tx.send(line);
                }
            });
        }
        drop(lines_tx);
        let mut seen = Vec::new();
        let address = timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.recv().await {
                if let Some(address) = listening_address(&line) {
                    return Some(address);
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "the replica did not log `listening`; its output:\n{}",
                seen.join("\n")
            )
        });
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the replica");
        Self {
            child,
            address,
            channel,
            key: key.to_owned(),
        }
    }

    fn bearer(&self) -> Bearer {
        Bearer(Some(
            format!("Bearer {}", self.key).parse().expect("ASCII key"),
        ))
    }

    fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn telephony(&self) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
}

/// The address of a JSON `listening` log line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    if record.get("message")?.as_str()? != "listening" {
        return None;
    }
    record.get("address")?.as_str()?.parse().ok()
}

/// Two replicas on a fresh database. The second starts once the first is listening, i.e. once
/// the schema exists and the bootstrap key has been created.
async fn two_replicas(database: &TestDatabase) -> (Replica, Replica) {
    let key = telephony_admin::keys::generate_secret();
    let a = Replica::start(&database.url, &key).await;
    let b = Replica::start(&database.url, &key).await;
    assert_ne!(a.address, b.address);
    (a, b)
}

/// An account with `count` users, each with a BUSINESS_CALLING number in stock for them.
async fn users_with_numbers(replica: &Replica, count: usize) -> (String, Vec<(String, String)>) {
    let account = replica
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account_id;
    let numbers: Vec<String> = (0..count)
        .map(|i| format!("+120655501{:02}", 40 + i))
        .collect();
    let order = replica
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: numbers.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.status, PhoneNumberOrderStatus::Successful as i32);
    let mut users = Vec::new();
    for (i, number) in numbers.into_iter().enumerate() {
        let user = replica
            .users()
            .create_user(new_user(&account, &format!("user{i}@example.com")))
            .await
            .unwrap()
            .into_inner()
            .user_id;
        users.push((user, number));
    }
    (account, users)
}

async fn open_watch(
    replica: &Replica,
    after_sequence: Option<u64>,
) -> Streaming<WatchChangesResponse> {
    let mut stream = replica
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    // The stream is live once it says it has caught up.
    match next_kind(&mut stream, WAIT).await {
        Kind::Checkpoint(_) => {}
        other => panic!("expected the caught-up checkpoint, got {other:?}"),
    }
    stream
}

async fn next_kind(stream: &mut Streaming<WatchChangesResponse>, within: Duration) -> Kind {
    timeout(within, stream.message())
        .await
        .expect("a message arrives in time")
        .expect("the stream does not fail")
        .expect("the stream stays open")
        .kind
        .expect("every message has a kind")
}

/// Reads events 1..=total, checking that each is the previous + 1 and each checkpoint names the
/// last event sent.
async fn read_all(mut stream: Streaming<WatchChangesResponse>, total: u64) -> Vec<ChangeEvent> {
    let mut events: Vec<ChangeEvent> = Vec::new();
    let mut previous = 0;
    while previous < total {
        match next_kind(&mut stream, WAIT).await {
            Kind::Event(event) => {
                assert_eq!(event.sequence, previous + 1, "gap-free, in order");
                previous = event.sequence;
                events.push(event);
            }
            Kind::Checkpoint(checkpoint) => assert_eq!(checkpoint.sequence, previous),
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn a_change_on_one_replica_reaches_watchers_on_the_other() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let (a, b) = two_replicas(&database).await;
    let (account, users) = users_with_numbers(&a, 1).await;
    let (user, number) = &users[0];
    let mut on_b = open_watch(&b, None).await;

    a.telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            account_id: account.clone(),
            user_id: user.clone(),
            e164_phone_number: number.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // Both replicas poll the log only once an hour, and B made no commit itself: only A's
    // NOTIFY, delivered to B's LISTEN connection, can wake B's hub in time.
    match next_kind(&mut on_b, Duration::from_secs(1)).await {
        Kind::Event(event) => {
            assert_eq!(event.sequence, 1);
            assert_eq!(event.kind, ChangeKind::PhoneNumberAssigned as i32);
            assert_eq!(&event.user_id, user);
            assert_eq!(&event.e164_phone_number, number);
        }
        other => panic!("expected the assignment, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn writers_on_both_replicas_make_one_gap_free_sequence() {
    const WRITERS: usize = 4;
    const OPERATIONS: usize = 15;
    let database = TestDatabase::create(Backend::Postgres).await;
    let (a, b) = two_replicas(&database).await;
    let (account, users) = users_with_numbers(&a, WRITERS).await;
    let total = (WRITERS * OPERATIONS) as u64;

    let watchers = [
        tokio::spawn(read_all(open_watch(&a, Some(0)).await, total)),
        tokio::spawn(read_all(open_watch(&b, Some(0)).await, total)),
    ];
    let mut writers = Vec::new();
    for (i, (user, number)) in users.into_iter().enumerate() {
        let mut client = if i % 2 == 0 {
            a.telephony()
        } else {
            b.telephony()
        };
        let account = account.clone();
        writers.push(tokio::spawn(async move {
            for op in 0..OPERATIONS {
                match op % 3 {
                    0 => {
                        client
                            .assign_phone_number(AssignPhoneNumberRequest {
                                account_id: account.clone(),
                                user_id: user.clone(),
                                e164_phone_number: number.clone(),
                                request_id: String::new(),
                            })
                            .await
                            .unwrap();
                    }
                    1 => {
                        client
                            .update_telephony_settings(UpdateTelephonySettingsRequest {
                                account_id: account.clone(),
                                user_id: user.clone(),
                                telephony_settings: Some(TelephonySettings {
                                    inbound_calling: true,
                                    outbound_calling: true,
                                    sms: op % 2 == 0,
                                }),
                                update_mask: None,
                                request_id: String::new(),
                            })
                            .await
                            .unwrap();
                    }
                    _ => {
                        client
                            .unassign_phone_number(UnassignPhoneNumberRequest {
                                account_id: account.clone(),
                                user_id: user.clone(),
                                confirm: true,
                                request_id: String::new(),
                            })
                            .await
                            .unwrap();
                    }
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let history = b
        .changes()
        .list_changes(ListChangesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(history.len() as u64, total, "one event per change");
    let [on_a, on_b] = watchers;
    let on_a = timeout(Duration::from_secs(30), on_a)
        .await
        .expect("A's watcher sees all")
        .unwrap();
    let on_b = timeout(Duration::from_secs(30), on_b)
        .await
        .expect("B's watcher sees all")
        .unwrap();
    assert_eq!(on_a, history, "A's watcher saw the history, in order");
    assert_eq!(on_b, history, "B's watcher saw the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn replicas_started_together_on_a_fresh_database_both_serve() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let key = telephony_admin::keys::generate_secret();
    // As a deployment with two replicas does on its first rollout: both migrate at once.
    let (a, b) = tokio::join!(
        Replica::start(&database.url, &key),
        Replica::start(&database.url, &key)
    );
    for replica in [&a, &b] {
        let account = replica
            .accounts()
            .create_account(CreateAccountRequest {
                name: "Acme".into(),
            })
            .await
            .expect("each replica serves");
        assert!(!account.into_inner().account_id.is_empty());
    }
}
