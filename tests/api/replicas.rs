//! Two server processes of the real binary on one PostgreSQL database: a change committed through
//! one replica reaches the other's watchers through LISTEN/NOTIFY, and writers on both replicas
//! produce one gap-free sequence that every watcher on either replica sees in the same order.
//! Their writes queue behind the change-log counter only to number their events and commit, and
//! events a replica of an earlier version committed but never numbered are numbered by another.

use std::time::Duration;

use crate::common::clients::Clients;
use crate::common::process::{ServerCommand, TestProcess};
use crate::common::{Backend, TestDatabase};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, CreateAccountRequest, GetUserRequest,
    ListChangesRequest, TelephonySettings, UnassignPhoneNumberRequest,
    UpdateTelephonySettingsRequest, WatchChangesRequest, WatchChangesResponse,
    watch_changes_response::Kind,
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
            emergency_location_id: String::new(),
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
                                emergency_location_id: String::new(),
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

/// A USER_SIGN_OUT_REQUESTED event for `user`, committed staged and not numbered: what a replica
/// of an earlier version, which numbered events after its commit, leaves if it dies in between.
async fn stage_left_behind(db: &DatabaseConnection, account: &str, user: &str, number: &str) {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO change_events_staged (event_id, account_id, user_id, kind, e164, \
            inbound_calling, outbound_calling, sms, notice, actor, occur_time) \
         VALUES ($1, $2, $3, 'USER_SIGN_OUT_REQUESTED', $4, false, false, false, 'Sign out', 'key', now())",
        [
            uuid::Uuid::new_v4().to_string().into(),
            account.into(),
            user.into(),
            number.into(),
        ],
    ))
    .await
    .expect("an event staged");
}

/// Waits until at least `waiting` numbering statements wait for a lock on `url`; `expected`
/// says why they should.
async fn wait_for_numberings(url: &str, waiting: i64, expected: &str) {
    let numberings = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
        AND query LIKE '%UPDATE change_log SET last_sequence%'";
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(url, numberings).await < waiting {
        assert!(tokio::time::Instant::now() < deadline, "{expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows of `sql` (a count) on `url`.
async fn count(url: &str, sql: &str) -> i64 {
    let db = Database::connect(url).await.expect("connect");
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect("count")
        .expect("a row");
    db.close().await.ok();
    row.try_get_by_index(0).expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn writes_on_both_replicas_wait_for_the_change_log_counter_only_to_number_and_commit() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let (a, b) = two_replicas(&database).await;
    let (account, users) = users_with_numbers(&a, 2).await;
    let watch = open_watch(&b, Some(0)).await;

    // Another session holds the counter row, as a long sequencing transaction would.
    let holder = Database::connect(database.url.as_str()).await.unwrap();
    let held = holder.begin().await.unwrap();
    held.execute_unprepared("SELECT last_sequence FROM change_log WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();

    let assign = |replica: &crate::common::process::TestProcess,
                  (user, number): (String, String)| {
        let mut client = replica.telephony();
        let account = account.clone();
        tokio::spawn(async move {
            client
                .assign_phone_number(AssignPhoneNumberRequest {
                    emergency_location_id: String::new(),
                    account_id: account,
                    user_id: user,
                    e164_phone_number: number,
                    request_id: String::new(),
                })
                .await
                .map(|r| r.into_inner())
        })
    };
    let on_a = assign(&a, users[0].clone());
    let on_b = assign(&b, users[1].clone());
    // Both assignments do their work (the numbers taken, their events staged), then wait for
    // the counter row in the last step before their commits, one on each replica.
    wait_for_numberings(
        &database.url,
        2,
        "both transactions reach the numbering while the counter row is locked",
    )
    .await;
    // Nothing of them is committed, and their callers are not answered.
    let assigned = "SELECT count(*) FROM phone_numbers WHERE user_id IS NOT NULL";
    assert_eq!(count(&database.url, assigned).await, 0);
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM change_events").await,
        0
    );
    assert!(!on_a.is_finished() && !on_b.is_finished());

    held.rollback().await.unwrap();
    holder.close().await.ok();
    let answered = [
        timeout(WAIT, on_a)
            .await
            .unwrap()
            .unwrap()
            .expect("assigned on A"),
        timeout(WAIT, on_b)
            .await
            .unwrap()
            .expect("task")
            .expect("assigned on B"),
    ];
    let events = read_all(watch, 2).await;
    for user in &answered {
        let pending = user.sign_out_pending.as_ref().expect("pending sign-out");
        let event = events
            .iter()
            .find(|event| event.user_id == user.user_id)
            .expect("the user's event");
        assert_eq!(pending.oldest_change_sequence, event.sequence);
        assert_eq!(pending.latest_change_sequence, event.sequence);
        // As stored, on the other replica too.
        let stored = b
            .users()
            .get_user(GetUserRequest {
                account_id: account.clone(),
                user_id: user.user_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stored.sign_out_pending, user.sign_out_pending);
    }
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM change_events_staged").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn events_a_dead_replica_committed_unnumbered_are_numbered_by_another() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let (a, b) = two_replicas(&database).await;
    let (account, users) = users_with_numbers(&a, 1).await;
    let (user, number) = &users[0];
    let head = Clients::of(&b)
        .logout(&account, user)
        .await
        .expect("logout");
    let mut watch = open_watch(&b, Some(head)).await;
    drop(a);

    // What a replica of an earlier version, which numbered events after its commit, leaves
    // behind when it dies in between.
    let db = Database::connect(database.url.as_str()).await.unwrap();
    stage_left_behind(&db, &account, user, number).await;
    db.close().await.ok();

    // B's sweep numbers it (once a second), and its watchers hear of it.
    let event = match next_kind(&mut watch, Duration::from_secs(5)).await {
        Kind::Event(event) => event,
        other => panic!("expected the dead replica's event, got {other:?}"),
    };
    assert_eq!(event.sequence, head + 1);
    assert_eq!(event.kind, ChangeKind::UserSignOutRequested as i32);
    assert_eq!(&event.user_id, user);
    let stored = b
        .users()
        .get_user(GetUserRequest {
            account_id: account.clone(),
            user_id: user.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let pending = stored.sign_out_pending.expect("pending");
    assert_eq!(pending.oldest_change_sequence, head, "still the first one");
    assert_eq!(
        pending.latest_change_sequence,
        head + 1,
        "and now the dead replica's"
    );
}

/// A batch's numbering waits for the change-log counter holding its users' rows. A transaction
/// that holds the counter and then waits for one of those rows (the numbering of events left
/// staged by a replica of an earlier version marks their users) deadlocks with it. PostgreSQL
/// aborts the numbering; the batch runs again instead of answering ABORTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn a_numbering_that_loses_a_deadlock_runs_again() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let key = telephony_admin::keys::generate_secret();
    let replica = start_replica(&database.url, &key).await;
    let (account, users) = users_with_numbers(&replica, 1).await;
    let (signed_out, _) = users[0].clone();

    let db = Database::connect(database.url.as_str()).await.unwrap();
    // Another session holds the counter, and is slow to break deadlocks itself.
    let holder = db.begin().await.unwrap();
    holder
        .execute_unprepared("SET LOCAL deadlock_timeout = '60s'")
        .await
        .unwrap();
    holder
        .execute_unprepared("UPDATE change_log SET last_sequence = last_sequence WHERE id = 1")
        .await
        .unwrap();

    let clients = Clients::of(&replica);
    let logout = {
        let account = account.clone();
        let user = signed_out.clone();
        tokio::spawn(async move { clients.logout(&account, &user).await })
    };
    // The batch's numbering holds the user and waits for the counter.
    wait_for_numberings(&database.url, 1, "the numbering waits for the counter").await;
    // Now the holder waits for the user: a deadlock, which the numbering's session breaks
    // first, as the victim.
    holder
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM users WHERE id = $1 FOR UPDATE",
            [signed_out.clone().into()],
        ))
        .await
        .expect("the holder is not the deadlock's victim");
    holder.commit().await.unwrap();

    let sequence = timeout(WAIT, logout)
        .await
        .expect("LogoutUser answers")
        .expect("task")
        .expect("LogoutUser succeeds after its batch ran again");
    let events = Clients::of(&replica).all_changes().await;
    let event = events
        .iter()
        .find(|event| event.sequence == sequence)
        .expect("the answered sequence is in the log");
    assert_eq!(event.user_id, signed_out);
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM change_events_staged").await,
        0
    );
    db.close().await.ok();
}
