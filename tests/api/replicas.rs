//! Two server processes of the real binary on one PostgreSQL database: a change committed through
//! one replica reaches the other's watchers through LISTEN/NOTIFY, and writers on both replicas
//! produce one gap-free sequence that every watcher on either replica sees in the same order.

use std::time::Duration;

use crate::common::clients::Clients;
use crate::common::process::{ServerCommand, TestProcess};
use crate::common::{Backend, TestDatabase};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, CreateAccountRequest, ListChangesRequest,
    TelephonySettings, UnassignPhoneNumberRequest, UpdateTelephonySettingsRequest,
    WatchChangesRequest, WatchChangesResponse, watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(10);

/// A replica of the binary on `database_url`, with the bootstrap key `key`.
async fn start_replica(database_url: &str, key: &str) -> TestProcess {
    ServerCommand::new()
        .key(key)
        // Only LISTEN/NOTIFY (or this process's own commits) can wake the change hub.
        .args(&["--change-poll-interval", "1h"])
        .start_on(database_url)
        .await
}

/// Two replicas on a fresh database. The second starts once the first is listening, i.e. once
/// the schema exists and the bootstrap key has been created.
async fn two_replicas(database: &TestDatabase) -> (TestProcess, TestProcess) {
    let key = telephony_admin::keys::generate_secret();
    let a = start_replica(&database.url, &key).await;
    let b = start_replica(&database.url, &key).await;
    assert_ne!(a.address, b.address);
    (a, b)
}

/// An account with `count` users, each with a BUSINESS_CALLING number in stock for them.
async fn users_with_numbers(
    replica: &TestProcess,
    count: usize,
) -> (String, Vec<(String, String)>) {
    let (account, users, numbers) = Clients::of(replica).set_up(count, count).await;
    (account, users.into_iter().zip(numbers).collect())
}

async fn open_watch(
    replica: &TestProcess,
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
        start_replica(&database.url, &key),
        start_replica(&database.url, &key)
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
