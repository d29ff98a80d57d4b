//! Faults the service must survive without losing what it acknowledged:
//!
//! - the real binary killed with SIGKILL under concurrent load and restarted, again and again;
//! - its PostgreSQL server stopped and started again under load (a private instance);
//! - the disk under its SQLite database running full (a small tmpfs).
//!
//! The last two need root (a mount; `initdb` as the `postgres` user). CI runs as root, and there
//! they must run; elsewhere they are skipped with a printed reason. This module holds what they
//! share: the checks of the change log, waiting for recovery, and the skip rule.

use std::process::Command;
use std::time::{Duration, Instant};
use telephony_admin::proto::ChangeEvent;

mod crash;
mod database_restart;
mod disk_full;

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
