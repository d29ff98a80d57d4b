//! Faults the service must survive without losing what it acknowledged:
//!
//! - the real binary killed with SIGKILL under concurrent load and restarted, again and again;
//! - its PostgreSQL server stopped and started again under load (a private instance);
//! - the disk under its SQLite database running full (a small tmpfs).
//!
//! The last two need root (a mount; `initdb` as the `postgres` user). CI runs as root, and there
//! they must run; elsewhere they are skipped with a printed reason.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, CreateAccountRequest,
    CreatePhoneNumberOrderRequest, GetUserRequest, ListChangesRequest, ListPhoneNumbersRequest,
    LogoutUserRequest, PhoneNumberOrderStatus, PhoneNumberProductType, PhoneNumberStatus,
    TelephonySettings, UnassignPhoneNumberRequest, UpdateTelephonySettingsRequest,
    WatchChangesRequest, account_service_client::AccountServiceClient,
    change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
    watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::common::fixtures::new_user;
use crate::common::process::{ServerCommand, TestProcess};
use crate::common::{Authed, Backend, Bearer, TestDatabase, spawn_app_on_url};

const CALL: Duration = Duration::from_secs(10);

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `None` when the fault can be staged here; else why not. Under CI, a missing prerequisite fails.
fn skip_unless(prerequisite: bool, why: &str) -> bool {
    if prerequisite {
        return false;
    }
    assert!(!is_ci(), "CI must run this fault test, but {why}");
    eprintln!("SKIPPED: {why}");
    true
}

// ---------------------------------------------------------------------------------------------
// Clients on any channel
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Clients {
    channel: Channel,
    key: String,
}

impl Clients {
    fn of(process: &TestProcess) -> Self {
        Self {
            channel: process.channel.clone(),
            key: process.admin_key.clone(),
        }
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
    fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn telephony(&self) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    async fn health(&self) -> Option<ServingStatus> {
        let answer = timeout(
            CALL,
            HealthClient::new(self.channel.clone()).check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .ok()?
        .ok()?;
        ServingStatus::try_from(answer.into_inner().status).ok()
    }

    /// An account, `users` users and `numbers` BUSINESS_CALLING numbers in stock.
    async fn set_up(&self, users: usize, numbers: usize) -> (String, Vec<String>, Vec<String>) {
        let account = self
            .accounts()
            .create_account(CreateAccountRequest {
                name: "Acme".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .account_id;
        let numbers: Vec<String> = (0..numbers)
            .map(|i| format!("+120655501{:02}", 60 + i))
            .collect();
        if !numbers.is_empty() {
            let order = self
                .numbers()
                .create_phone_number_order(CreatePhoneNumberOrderRequest {
                    product_type: PhoneNumberProductType::BusinessCalling as i32,
                    e164_phone_numbers: numbers.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(order.status, PhoneNumberOrderStatus::Successful as i32);
        }
        let mut ids = Vec::new();
        for i in 0..users {
            ids.push(
                self.users()
                    .create_user(new_user(&account, &format!("user{i}@example.com")))
                    .await
                    .unwrap()
                    .into_inner()
                    .user_id,
            );
        }
        (account, ids, numbers)
    }

    async fn logout(&self, account: &str, user: &str) -> Result<u64, Status> {
        let mut users = self.users();
        let call = users.logout_user(LogoutUserRequest {
            account_id: account.into(),
            user_id: user.into(),
        });
        match timeout(CALL, call).await {
            Ok(answer) => answer.map(|r| r.into_inner().sequence),
            Err(_) => Err(Status::deadline_exceeded("no answer in time")),
        }
    }

    /// The whole change log, in order.
    async fn all_changes(&self) -> Vec<ChangeEvent> {
        let mut events = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .changes()
                .list_changes(ListChangesRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await
                .expect("list changes")
                .into_inner();
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }
}

fn assert_gap_free(events: &[ChangeEvent]) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.sequence,
            i as u64 + 1,
            "the change log has no gap (event {i} of {})",
            events.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Crash: SIGKILL under load, restart, check
// ---------------------------------------------------------------------------------------------

const CRASHES: usize = 20;
const CRASH_USERS: usize = 6;
const CRASH_NUMBERS: usize = 4;

/// What one user's worker knows: the changes acknowledged in order (as event kinds), the one
/// in flight when the server died (it may or may not have committed), and the sequences of the
/// acknowledged sign-outs.
#[derive(Debug, Default)]
struct UserLog {
    applied: Vec<i32>,
    pending: Option<i32>,
    sign_outs: Vec<u64>,
}

enum Outcome {
    Applied(i32),
    Refused,
    Unknown(i32),
}

fn outcome<T>(
    kind: ChangeKind,
    answer: Result<Result<T, Status>, tokio::time::error::Elapsed>,
) -> (Outcome, Option<T>) {
    match answer {
        Ok(Ok(value)) => (Outcome::Applied(kind as i32), Some(value)),
        // Refused by a rule or a lost race: rolled back, nothing written.
        Ok(Err(status))
            if matches!(
                status.code(),
                Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted | Code::NotFound
            ) =>
        {
            (Outcome::Refused, None)
        }
        _ => (Outcome::Unknown(kind as i32), None),
    }
}

/// Changes one user until the server stops answering.
async fn crash_worker(
    clients: Clients,
    account: String,
    user: String,
    numbers: Arc<Vec<String>>,
    log: &mut UserLog,
    mut step: usize,
    acknowledged: Arc<AtomicUsize>,
) {
    let Ok(Ok(current)) = timeout(
        CALL,
        clients.users().get_user(GetUserRequest {
            account_id: account.clone(),
            user_id: user.clone(),
        }),
    )
    .await
    else {
        return;
    };
    let current = current.into_inner();
    let mut holds = !current.primary_phone_number.is_empty();
    let mut sms = current.telephony_settings.is_some_and(|s| s.sms);
    let mut telephony = clients.telephony();
    loop {
        step += 1;
        let result = match step % 3 {
            0 if !holds => {
                let number = numbers[rand::random_range(0..numbers.len())].clone();
                let answer = timeout(
                    CALL,
                    telephony.assign_phone_number(AssignPhoneNumberRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                        e164_phone_number: number,
                        request_id: String::new(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::PhoneNumberAssigned, answer);
                if let Some(user) = done {
                    // Assignment resets the settings.
                    let user = user.into_inner();
                    holds = true;
                    sms = user.telephony_settings.is_some_and(|s| s.sms);
                }
                result
            }
            0 => {
                let answer = timeout(
                    CALL,
                    telephony.unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                        confirm: true,
                        request_id: String::new(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::PhoneNumberUnassigned, answer);
                if let Some(user) = done {
                    let user = user.into_inner();
                    holds = false;
                    sms = user.telephony_settings.is_some_and(|s| s.sms);
                }
                result
            }
            1 => {
                let answer = timeout(
                    CALL,
                    telephony.update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                        telephony_settings: Some(TelephonySettings {
                            inbound_calling: true,
                            outbound_calling: true,
                            sms: !sms,
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["sms".into()],
                        }),
                        request_id: String::new(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::TelephonySettingsUpdated, answer);
                if let Some(settings) = done {
                    sms = settings.into_inner().sms;
                }
                result
            }
            _ => {
                let answer = timeout(
                    CALL,
                    clients.users().logout_user(LogoutUserRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::UserSignOutRequested, answer);
                if let Some(done) = done {
                    log.sign_outs.push(done.into_inner().sequence);
                }
                result
            }
        };
        match result {
            Outcome::Applied(kind) => {
                log.applied.push(kind);
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Outcome::Refused => {}
            Outcome::Unknown(kind) => {
                log.pending = Some(kind);
                return;
            }
        }
    }
}

/// After a restart: every acknowledged change is there with its event, the log has no gap, and
/// no number or user is assigned twice (and the state agrees with the log).
async fn check_after_crash(
    clients: &Clients,
    account: &str,
    users: &[String],
    logs: &mut [UserLog],
) {
    let events = clients.all_changes().await;
    assert_gap_free(&events);
    for (user, log) in users.iter().zip(logs.iter_mut()) {
        let kinds: Vec<i32> = events
            .iter()
            .filter(|e| &e.user_id == user)
            .map(|e| e.kind)
            .collect();
        // The change in flight at the kill either committed (with its event) or left nothing.
        if let Some(pending) = log.pending.take()
            && kinds.len() == log.applied.len() + 1
            && kinds.last() == Some(&pending)
        {
            log.applied.push(pending);
        }
        assert_eq!(
            kinds, log.applied,
            "user {user}: the events are exactly the acknowledged changes (and perhaps the one in flight)"
        );
        for sequence in &log.sign_outs {
            let event = &events[*sequence as usize - 1];
            assert_eq!(&event.user_id, user);
            assert_eq!(event.kind, ChangeKind::UserSignOutRequested as i32);
        }
    }
    // The holder of each number, from the log and from the state.
    let mut from_log: HashMap<&str, &str> = HashMap::new();
    for event in &events {
        if event.kind == ChangeKind::PhoneNumberAssigned as i32 {
            assert!(
                from_log
                    .insert(&event.user_id, &event.e164_phone_number)
                    .is_none(),
                "a user was assigned a second number: {event:?}"
            );
        } else if event.kind == ChangeKind::PhoneNumberUnassigned as i32 {
            from_log.remove(event.user_id.as_str());
        }
    }
    let numbers = clients
        .numbers()
        .list_phone_numbers(ListPhoneNumbersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .phone_numbers;
    let mut holders: HashMap<String, String> = HashMap::new();
    for number in numbers {
        if number.status == PhoneNumberStatus::Assigned as i32 {
            let holder = number
                .association
                .expect("an assigned number names its user")
                .user_id;
            assert!(
                holders
                    .insert(holder.clone(), number.e164_phone_number.clone())
                    .is_none(),
                "user {holder} holds two numbers"
            );
        }
    }
    let mut held: Vec<&String> = holders.values().collect();
    held.sort();
    held.dedup();
    assert_eq!(held.len(), holders.len(), "no number has two users");
    for user in users {
        let state = clients
            .users()
            .get_user(GetUserRequest {
                account_id: account.into(),
                user_id: user.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let expected = holders.get(user).map(String::as_str).unwrap_or("");
        assert_eq!(state.primary_phone_number, expected, "user {user}");
        assert_eq!(
            from_log.get(user.as_str()).copied().unwrap_or(""),
            expected,
            "user {user}: the log and the state agree"
        );
    }
}

async fn sigkill_under_load_loses_nothing_acknowledged(backend: Backend) {
    let started = Instant::now();
    let database = TestDatabase::create(backend).await;
    let key = telephony_admin::keys::generate_secret();
    let server = ServerCommand::new().key(&key);
    let mut process = server.clone().start_on(&database.url).await;
    let mut clients = Clients::of(&process);
    let (account, users, numbers) = clients.set_up(CRASH_USERS, CRASH_NUMBERS).await;
    let numbers = Arc::new(numbers);
    let mut logs: Vec<UserLog> = (0..CRASH_USERS).map(|_| UserLog::default()).collect();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    for crash in 0..CRASHES {
        // The workers borrow the logs until they have all stopped.
        {
            let workers = users
                .iter()
                .zip(logs.iter_mut())
                .enumerate()
                .map(|(i, (user, log))| {
                    crash_worker(
                        clients.clone(),
                        account.clone(),
                        user.clone(),
                        numbers.clone(),
                        log,
                        i + crash,
                        acknowledged.clone(),
                    )
                });
            let load = futures::future::join_all(workers);
            tokio::pin!(load);
            // Kill at a random moment once the load is under way (a loaded machine may take a
            // while to get there).
            let before = acknowledged.load(Ordering::SeqCst);
            let under_way = async {
                while acknowledged.load(Ordering::SeqCst) < before + CRASH_USERS {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
            };
            tokio::select! {
                _ = &mut load => panic!("the workers stopped while the server was up"),
                _ = timeout(Duration::from_secs(60), under_way) => {}
            }
            process.kill();
            timeout(Duration::from_secs(60), load)
                .await
                .expect("every worker notices the crash");
        }
        process = server.clone().start_on(&database.url).await;
        clients = Clients::of(&process);
        check_after_crash(&clients, &account, &users, &mut logs).await;
    }
    let acknowledged: usize = logs.iter().map(|l| l.applied.len()).sum();
    assert!(
        acknowledged >= CRASHES * CRASH_USERS,
        "the load made changes: {acknowledged}"
    );
    eprintln!(
        "{backend:?}: {CRASHES} SIGKILLs and restarts, {acknowledged} changes checked, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Database restart: a private PostgreSQL stopped and started under load
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL server of the test's own, in a temporary directory, run as the `postgres` user.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/local/bin";

fn as_postgres(program: &str, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{PG_BIN}/{program}")])
        .args(args)
        .output()
        .expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PrivatePostgres {
    fn available() -> bool {
        is_root()
            && Path::new(PG_BIN).join("initdb").exists()
            && Path::new(PG_BIN).join("pg_ctl").exists()
    }

    fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .args(["postgres:", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.path().join("data");
        as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let pg = Self { dir, port };
        pg.start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                self.dir.path().join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops it as a crash would: no checkpoint, connections cut.
    fn crash(&self) {
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_restart_under_load_recovers_by_itself() {
    if skip_unless(
        PrivatePostgres::available(),
        "a private PostgreSQL needs root and initdb/pg_ctl in /usr/local/bin",
    ) {
        return;
    }
    let started = Instant::now();
    let pg = PrivatePostgres::create();
    let key = telephony_admin::keys::generate_secret();
    let configure = |s: &mut telephony_admin::config::ServeSettings| {
        s.bootstrap_key = Some(key.clone());
        s.database_check_interval = Duration::from_millis(200);
        s.database_acquire_timeout = Duration::from_secs(2);
        // Only this process's commits and NOTIFY from the other replica wake a hub.
        s.change_poll_interval = Duration::from_secs(3600);
    };
    let a = spawn_app_on_url(&pg.url(), configure).await;
    let b = spawn_app_on_url(&pg.url(), configure).await;
    let a_clients = Clients {
        channel: a.channel.clone(),
        key: key.clone(),
    };
    let b_clients = Clients {
        channel: b.channel.clone(),
        key: key.clone(),
    };
    let (account, users, _) = a_clients.set_up(2, 0).await;

    // Load: sign-outs through replica A, remembering what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (clients, account, user, stop) = (
            a_clients.clone(),
            account.clone(),
            users[0].clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match clients.logout(&account, &user).await {
                    Ok(sequence) => acknowledged.push(sequence),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            acknowledged
        })
    };
    let mut watch = b_clients
        .changes()
        .watch_changes(WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(500)).await;

    pg.crash();
    // While it is down: a write answers UNAVAILABLE, promptly; health says NOT_SERVING.
    let asked = Instant::now();
    let refused = a_clients
        .logout(&account, &users[1])
        .await
        .expect_err("no write succeeds without the database");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    eprintln!(
        "while PostgreSQL was down, a write answered UNAVAILABLE in {:?}",
        asked.elapsed()
    );
    for clients in [&a_clients, &b_clients] {
        eventually(
            "health turns NOT_SERVING",
            Duration::from_secs(15),
            || async { (clients.health().await == Some(ServingStatus::NotServing)).then_some(()) },
        )
        .await;
    }
    // The watch stream either stays open or ends with UNAVAILABLE.
    let mut watch_open = true;
    if let Ok(answer) = timeout(Duration::from_millis(500), watch.message()).await {
        match answer {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a watch stream ended without a status"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                watch_open = false;
            }
        }
    }

    pg.start();
    // Recovery with no operator action.
    for clients in [&a_clients, &b_clients] {
        eventually(
            "health turns SERVING again",
            Duration::from_secs(30),
            || async { (clients.health().await == Some(ServingStatus::Serving)).then_some(()) },
        )
        .await;
    }
    eventually("writes succeed again", Duration::from_secs(30), || async {
        a_clients.logout(&account, &users[1]).await.ok()
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let acknowledged = load.await.unwrap();

    // LISTEN/NOTIFY is back: a change through A reaches a watcher on B (whose hub never polls).
    if !watch_open {
        watch = b_clients
            .changes()
            .watch_changes(WatchChangesRequest::default())
            .await
            .unwrap()
            .into_inner();
    }
    let all = b_clients.all_changes().await;
    let newest = all.last().map_or(0, |e| e.sequence);
    // Drain the stream up to the newest event (an open stream resumes where it was).
    let mut seen = 0;
    while seen < newest {
        match timeout(Duration::from_secs(30), watch.message()).await {
            Ok(Ok(Some(message))) => match message.kind {
                Some(Kind::Event(event)) => seen = event.sequence,
                Some(Kind::Checkpoint(c)) => seen = seen.max(c.sequence),
                None => {}
            },
            other => panic!("the watch on B stalled or failed after the restart: {other:?}"),
        }
    }
    let sent_at = Instant::now();
    let sequence = a_clients
        .logout(&account, &users[1])
        .await
        .expect("a write");
    loop {
        match timeout(Duration::from_secs(10), watch.message()).await {
            Ok(Ok(Some(message))) => {
                if let Some(Kind::Event(event)) = message.kind
                    && event.sequence == sequence
                {
                    break;
                }
            }
            other => panic!("a change through A did not reach B: {other:?}"),
        }
    }
    eprintln!(
        "after the restart, a change on A reached a watcher on B in {:?}",
        sent_at.elapsed()
    );

    // Nothing acknowledged was lost, and the log has no gap.
    let all = a_clients.all_changes().await;
    assert_gap_free(&all);
    for sequence in &acknowledged {
        let event = &all[*sequence as usize - 1];
        assert_eq!(event.user_id, users[0]);
        assert_eq!(event.kind, ChangeKind::UserSignOutRequested as i32);
    }
    eprintln!(
        "database restart: {} acknowledged writes kept, in {:.1} s",
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    drop((a, b));
}

// ---------------------------------------------------------------------------------------------
// Disk full under SQLite
// ---------------------------------------------------------------------------------------------

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        mounted.status.success().then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_full_under_sqlite_refuses_writes_keeps_reads_and_recovers() {
    let disk = if is_root() {
        SmallDisk::mount("16m")
    } else {
        None
    };
    if skip_unless(disk.is_some(), "mounting a small tmpfs needs root") {
        return;
    }
    let disk = disk.unwrap();
    let started = Instant::now();
    let url = format!("sqlite://{}?mode=rwc", disk.path().join("db").display());
    let app = spawn_app_on_url(&url, |_| {}).await;
    let clients = Clients {
        channel: app.channel.clone(),
        key: app.admin_key.clone(),
    };
    let (account, users, _) = clients.set_up(1, 0).await;
    let mut acknowledged = Vec::new();
    for _ in 0..5 {
        acknowledged.push(clients.logout(&account, &users[0]).await.unwrap());
    }

    let filler = disk.fill();
    // Writes fail with a clear error (a few may still fit in pages the files already have).
    let mut refusal = None;
    for _ in 0..2000 {
        match clients.logout(&account, &users[0]).await {
            Ok(sequence) => acknowledged.push(sequence),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("writes fail once the disk is full");
    assert_eq!(refusal.code(), Code::ResourceExhausted, "{refusal:?}");
    assert!(refusal.message().contains("disk space"), "{refusal:?}");
    // Reads keep working.
    let listed = clients.all_changes().await;
    assert_eq!(
        listed.len(),
        acknowledged.len(),
        "every acknowledged write is readable"
    );
    clients
        .users()
        .get_user(GetUserRequest {
            account_id: account.clone(),
            user_id: users[0].clone(),
        })
        .await
        .expect("a read while the disk is full");

    // Space returns: writes work again, with no operator action.
    std::fs::remove_file(filler).unwrap();
    let sequence = eventually("writes succeed again", Duration::from_secs(20), || async {
        clients.logout(&account, &users[0]).await.ok()
    })
    .await;
    acknowledged.push(sequence);
    let all = clients.all_changes().await;
    assert_gap_free(&all);
    for sequence in &acknowledged {
        assert_eq!(
            all[*sequence as usize - 1].kind,
            ChangeKind::UserSignOutRequested as i32
        );
    }
    let check = app
        .store
        .connection()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap()
        .unwrap();
    let verdict: String = check.try_get_by_index(0).unwrap();
    assert_eq!(verdict, "ok", "the database is not corrupted");
    eprintln!(
        "disk full: {} acknowledged writes kept, in {:.1} s",
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    drop(app);
}

on_both_databases!(sigkill_under_load_loses_nothing_acknowledged);
