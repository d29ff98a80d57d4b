//! Database restart: a private PostgreSQL stopped (as a crash would) and started again under
//! load, with two replicas on it.

use super::{assert_gap_free, eventually, is_root, skip_unless};
use crate::common::clients::Clients;
use crate::common::spawn_app_on_url;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use telephony_admin::proto::{ChangeKind, WatchChangesRequest, watch_changes_response::Kind};
use tokio::time::timeout;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

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
