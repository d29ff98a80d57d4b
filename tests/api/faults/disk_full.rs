//! Disk full under SQLite: writes are refused clearly, reads keep working, and writes work again
//! once space returns.

use super::{assert_gap_free, eventually, is_root, skip_unless};
use crate::common::clients::Clients;
use crate::common::spawn_app_on_url;
use sea_orm::ConnectionTrait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use telephony_admin::proto::{ChangeKind, GetUserRequest};
use tonic::Code;

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
