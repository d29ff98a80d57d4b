//! What consumers and operators rely on when things go wrong: a resume point the log does not
//! hold (beyond its end, or from another log) is refused, replay does not query the key per event,
//! a consumer far behind the in-memory ring or not reading at all loses nothing and does not hold
//! up shutdown, health turns NOT_SERVING before the server drains, replicas starting together
//! create one bootstrap key, out-of-range durations are refused at start, and database failures
//! that a retry cannot fix are INTERNAL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use sea_orm::ConnectionTrait;
use telephony_admin::events::{self, ChangeHub, WatchItem, WatchOptions};
use telephony_admin::proto::{
    GetUserRequest, ListAccountsRequest, ListChangesRequest, LogoutUserRequest,
    WatchChangesRequest, WatchChangesResponse, watch_changes_response::Kind,
};
use telephony_admin::startup::Application;
use telephony_admin::tasks::BackgroundTasks;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

use crate::common::{
    Authed, Backend, Bearer, TestApp, TestDatabase, spawn_app, spawn_app_on, spawn_app_with,
    storage_for, test_settings,
};

const WAIT: Duration = Duration::from_secs(10);

/// An account with one user.
async fn one_user(app: &TestApp) -> (String, String) {
    let account = app.create_account("acme").await.account_id;
    let user = app
        .create_user(&account, "someone@acme.example.com")
        .await
        .user_id;
    (account, user)
}

/// `count` sign-out requests for the user, four at a time; returns the last sequence.
async fn logouts(app: &TestApp, account: &str, user: &str, count: usize) -> u64 {
    let per_task = count.div_ceil(4);
    let tasks = (0..4).map(|t| {
        let mut client = app.users();
        let (account, user) = (account.to_owned(), user.to_owned());
        let n = per_task.min(count.saturating_sub(t * per_task));
        async move {
            let mut last = 0;
            for _ in 0..n {
                last = client
                    .logout_user(LogoutUserRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                    })
                    .await
                    .unwrap_or_else(|s| panic!("logout: {s:?}"))
                    .into_inner()
                    .sequence;
            }
            last
        }
    });
    join_all(tasks).await.into_iter().max().unwrap_or(0)
}

fn after(sequence: u64) -> WatchChangesRequest {
    WatchChangesRequest {
        after_sequence: Some(sequence),
        ..Default::default()
    }
}

async fn next_kind(stream: &mut Streaming<WatchChangesResponse>) -> Kind {
    timeout(WAIT, stream.message())
        .await
        .expect("a message arrives in time")
        .unwrap_or_else(|s| panic!("the stream failed: {s:?}"))
        .expect("the stream is still open")
        .kind
        .expect("every message has a kind")
}

/// The ErrorInfo reason of a refusal.
fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Resume points the log does not hold
// ---------------------------------------------------------------------------------------------

async fn resume_point_beyond_the_log_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, user) = one_user(&app).await;
    let last = logouts(&app, &account, &user, 3).await;
    assert_eq!(last, 3);
    let refused = app
        .changes()
        .watch_changes(after(100))
        .await
        .expect_err("a resume point beyond the newest event is refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "RESUME_POINT_AHEAD_OF_LOG", "{refused:?}");
    assert!(
        refused.message().contains("re-read"),
        "the message says what to do: {refused:?}"
    );
    // The newest sequence itself is a valid resume point, and the next event arrives.
    let mut stream = app
        .changes()
        .watch_changes(after(3))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next_kind(&mut stream).await, Kind::Checkpoint(c) if c.sequence == 3));
    logouts(&app, &account, &user, 1).await;
    assert!(matches!(next_kind(&mut stream).await, Kind::Event(e) if e.sequence == 4));
}

async fn events_and_checkpoints_carry_the_log_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, user) = one_user(&app).await;
    logouts(&app, &account, &user, 2).await;
    let mut stream = app
        .changes()
        .watch_changes(after(0))
        .await
        .unwrap()
        .into_inner();
    let Kind::Event(first) = next_kind(&mut stream).await else {
        panic!("the replay starts with an event")
    };
    let log_id = first.log_id.clone();
    assert!(!log_id.is_empty(), "every event names its log: {first:?}");
    let Kind::Event(second) = next_kind(&mut stream).await else {
        panic!("then the second event")
    };
    assert_eq!(second.log_id, log_id);
    let Kind::Checkpoint(checkpoint) = next_kind(&mut stream).await else {
        panic!("then the caught-up checkpoint")
    };
    assert_eq!(checkpoint.log_id, log_id, "checkpoints name the log too");
    let listed = app
        .changes()
        .list_changes(ListChangesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(listed.iter().all(|e| e.log_id == log_id), "{listed:?}");

    // Resuming with the log id works, and it survives a restart on the same database.
    let mut app = app;
    app.stop().await;
    let database = app.database.take().expect("the app owns its database");
    let key = app.admin_key.clone();
    drop(app);
    let app = spawn_app_on(database, |s| s.bootstrap_key = Some(key)).await;
    let mut resumed = app
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(1),
            log_id: log_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the same log accepts its own resume point")
        .into_inner();
    assert!(
        matches!(next_kind(&mut resumed).await, Kind::Event(e) if e.sequence == 2 && e.log_id == log_id)
    );
}

async fn resume_point_from_another_log_is_refused(backend: Backend) {
    let first = spawn_app(backend).await;
    let (account, user) = one_user(&first).await;
    logouts(&first, &account, &user, 1).await;
    let mut stream = first
        .changes()
        .watch_changes(after(0))
        .await
        .unwrap()
        .into_inner();
    let Kind::Event(event) = next_kind(&mut stream).await else {
        panic!("an event")
    };
    // Another database (as after a restore or a replacement) with as many events.
    let second = spawn_app(backend).await;
    let (account, user) = one_user(&second).await;
    logouts(&second, &account, &user, 1).await;
    let refused = second
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(event.sequence),
            log_id: event.log_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("a resume point from another log is refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "CHANGE_LOG_REPLACED", "{refused:?}");
    assert!(refused.message().contains("re-read"), "{refused:?}");
}

// ---------------------------------------------------------------------------------------------
// Replay and the key check
// ---------------------------------------------------------------------------------------------

async fn replay_checks_the_key_once_per_batch(backend: Backend) {
    const EVENTS: u64 = 300;
    let app = spawn_app(backend).await;
    let (account, user) = one_user(&app).await;
    assert_eq!(
        logouts(&app, &account, &user, EVENTS as usize).await,
        EVENTS
    );

    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let tasks = BackgroundTasks::new(shutdown.clone());
    let hub = ChangeHub::start(app.store.clone(), 64, Duration::from_secs(1), &tasks)
        .await
        .expect("hub");
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let revalidate: events::watcher::Revalidate = Arc::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let mut watch = events::watch(
        app.store.clone(),
        hub,
        WatchOptions {
            filter: Default::default(),
            after_sequence: Some(0),
            log_id: None,
            checkpoint_interval: Duration::from_secs(60),
            revalidate: Some(revalidate),
        },
        &tasks,
    )
    .await
    .expect("watch");
    let mut previous = 0;
    loop {
        let item = timeout(WAIT, watch.items.recv())
            .await
            .expect("the replay goes on")
            .expect("the stream is open")
            .expect("no error");
        match item {
            WatchItem::Event(event) => {
                assert_eq!(event.sequence, previous + 1);
                previous += 1;
            }
            WatchItem::Checkpoint(sequence) => {
                assert_eq!(sequence, EVENTS);
                break;
            }
        }
    }
    assert_eq!(previous, EVENTS);
    let checks = checks.load(Ordering::SeqCst);
    // Events come in batches of at most 256: two batches (a third if the replay is split
    // differently), and perhaps a check before an idle checkpoint.
    assert!(
        checks <= 6,
        "{checks} key checks for a replay of {EVENTS} events"
    );
}

// ---------------------------------------------------------------------------------------------
// Slow consumers: the ring overflow and shutdown
// ---------------------------------------------------------------------------------------------

/// A channel whose HTTP/2 stream window is tiny: a consumer that does not read stops the server
/// from sending after a few messages.
async fn narrow_channel(app: &TestApp) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .initial_stream_window_size(Some(2048))
        .initial_connection_window_size(Some(65_535))
        .connect()
        .await
        .expect("connect")
}

fn changes_on(
    channel: Channel,
    app: &TestApp,
) -> telephony_admin::proto::change_service_client::ChangeServiceClient<Authed> {
    telephony_admin::proto::change_service_client::ChangeServiceClient::with_interceptor(
        channel,
        Bearer(Some(format!("Bearer {}", app.admin_key).parse().unwrap())),
    )
}

async fn consumer_far_behind_the_ring_receives_everything(backend: Backend) {
    const RING: usize = 32;
    // The stream window, the watcher's buffer and three times the ring.
    const EVENTS: usize = 64 + 3 * RING + 150;
    let app = spawn_app_with(backend, |s| s.change_ring_capacity = RING).await;
    let (account, user) = one_user(&app).await;
    let channel = narrow_channel(&app).await;
    let mut stream = changes_on(channel, &app)
        .watch_changes(WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let Kind::Checkpoint(start) = next_kind(&mut stream).await else {
        panic!("a live watch starts with a checkpoint")
    };
    // The consumer does not read while the log moves far past the ring.
    let last = logouts(&app, &account, &user, EVENTS).await;
    let mut previous = start.sequence;
    while previous < last {
        match next_kind(&mut stream).await {
            Kind::Event(event) => {
                assert_eq!(event.sequence, previous + 1, "in order, without gap");
                previous = event.sequence;
            }
            Kind::Checkpoint(c) => assert_eq!(c.sequence, previous),
        }
    }
    assert_eq!(previous, last);
}

async fn shutdown_does_not_wait_for_a_consumer_that_does_not_read(backend: Backend) {
    let mut app = spawn_app_with(backend, |s| s.shutdown_grace = Duration::from_secs(60)).await;
    let (account, user) = one_user(&app).await;
    let channel = narrow_channel(&app).await;
    let mut stream = changes_on(channel, &app)
        .watch_changes(WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    next_kind(&mut stream).await;
    // Enough to fill the stream window and the watcher's buffer; the consumer reads nothing.
    logouts(&app, &account, &user, 300).await;
    app.shutdown.cancel();
    let server = app.server.take().unwrap();
    timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops long before its 60 s grace period")
        .unwrap()
        .unwrap();
    drop(stream);
}

// ---------------------------------------------------------------------------------------------
// Health and drain
// ---------------------------------------------------------------------------------------------

const SERVICES: [&str; 6] = [
    "",
    "telephony.admin.v1.AccountService",
    "telephony.admin.v1.UserService",
    "telephony.admin.v1.PhoneNumberService",
    "telephony.admin.v1.TelephonyService",
    "telephony.admin.v1.ChangeService",
];

async fn health_of(channel: &Channel, service: &str) -> Result<ServingStatus, Status> {
    let answer = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown))
}

async fn shutdown_turns_every_service_not_serving_then_drains(backend: Backend) {
    let mut app =
        spawn_app_with(backend, |s| s.shutdown_drain_delay = Duration::from_secs(3)).await;
    for service in SERVICES {
        assert_eq!(
            health_of(&app.channel, service).await.unwrap(),
            ServingStatus::Serving,
            "{service:?} before shutdown"
        );
    }
    app.shutdown.cancel();
    // Every service turns NOT_SERVING at once (within 200 ms), long before the 3 s drain ends.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    for service in SERVICES {
        while health_of(&app.channel, service).await.unwrap() != ServingStatus::NotServing {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service:?} is still serving during the drain"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A new connection is still accepted and served while load balancers drain.
    let fresh = Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .expect("the listener is still open during the drain");
    telephony_admin::proto::account_service_client::AccountServiceClient::with_interceptor(
        fresh,
        Bearer(Some(format!("Bearer {}", app.admin_key).parse().unwrap())),
    )
    .list_accounts(ListAccountsRequest::default())
    .await
    .expect("requests are still served during the drain");
    let server = app.server.take().unwrap();
    timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops after the drain")
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn replicas_starting_together_create_one_bootstrap_key() {
    // Fresh databases, and databases migrated beforehand (as by a `telephony-admin migrate` job);
    // replicas with the default pool, and with a pool of one connection.
    for (migrated, pool_size) in [(false, 16), (true, 16), (true, 1), (true, 1), (true, 1)] {
        let database = TestDatabase::create(Backend::Postgres).await;
        let storage = storage_for(&database.url);
        if migrated {
            let store = telephony_admin::startup::connect_store(&storage, Default::default())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            store.close().await.ok();
        }
        let starts = (0..6).map(|_| {
            let storage = storage.clone();
            async move {
                let mut settings = test_settings();
                // Each replica would generate (and print) its own key.
                settings.bootstrap_key = None;
                settings.db_pool_size = pool_size;
                let app = Application::build(&storage, settings)
                    .await
                    .expect("the replica starts");
                app.shutdown_token().cancel();
                app
            }
        });
        let apps = join_all(starts).await;
        let store = telephony_admin::startup::connect_store(&storage, Default::default())
            .await
            .unwrap();
        let keys = store.keys().list().await.unwrap();
        assert_eq!(
            keys.len(),
            1,
            "one bootstrap key, not one per replica (pool of {pool_size}): {keys:?}"
        );
        store.close().await.ok();
        for app in apps {
            let _ = timeout(WAIT, app.run_until_stopped()).await;
        }
    }
}

/// Runs `telephony-admin serve` with extra flags; it must exit at once with an error naming
/// `flag`.
async fn refused_at_start(extra: &[&str], flag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_telephony-admin"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("db").display()),
        )
        .env(
            "TELEPHONY_ADMIN_BOOTSTRAP_KEY",
            telephony_admin::keys::generate_secret(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the binary");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{extra:?}: the server started instead of refusing");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{extra:?}: {stderr}");
    assert!(
        stderr.contains(flag),
        "{extra:?}: the error names {flag}: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_durations_are_refused_at_start() {
    refused_at_start(&["--checkpoint-interval", "0s"], "--checkpoint-interval").await;
    refused_at_start(&["--change-poll-interval", "0"], "--change-poll-interval").await;
    // Parses, but overflows a point in time.
    refused_at_start(
        &["--checkpoint-interval", "500000000000years"],
        "--checkpoint-interval",
    )
    .await;
    refused_at_start(
        &["--event-retention", "500000000000years"],
        "--event-retention",
    )
    .await;
    refused_at_start(&["--change-ring-capacity", "0"], "--change-ring-capacity").await;
}

// ---------------------------------------------------------------------------------------------
// Database errors
// ---------------------------------------------------------------------------------------------

async fn database_failures_a_retry_cannot_fix_are_internal(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, user) = one_user(&app).await;
    // The schema no longer matches what the service expects.
    app.store
        .connection()
        .execute_unprepared("ALTER TABLE users DROP COLUMN display_name")
        .await
        .expect("drop a column");
    let failed = app
        .users()
        .get_user(GetUserRequest {
            account_id: account,
            user_id: user,
        })
        .await
        .expect_err("the read fails");
    assert_eq!(failed.code(), Code::Internal, "not retryable: {failed:?}");
    assert!(
        !failed.message().contains("display_name"),
        "no database detail reaches the client: {failed:?}"
    );
}

on_both_databases!(
    resume_point_beyond_the_log_is_refused,
    events_and_checkpoints_carry_the_log_id,
    resume_point_from_another_log_is_refused,
    replay_checks_the_key_once_per_batch,
    consumer_far_behind_the_ring_receives_everything,
    shutdown_does_not_wait_for_a_consumer_that_does_not_read,
    shutdown_turns_every_service_not_serving_then_drains,
    database_failures_a_retry_cannot_fix_are_internal,
);
