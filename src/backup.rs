//! Backups and restores, and the change log's new identity after one.
//!
//! - `backup --to FILE` (SQLite): a consistent copy of the live database (`VACUUM INTO`, one
//!   read transaction: the service keeps serving and writing meanwhile), checked before it is
//!   reported.
//! - `restore --from FILE` (SQLite, with the service stopped, which it checks: see
//!   [`crate::startup::database_lock`]): checks the backup, puts it in place of the database
//!   (atomically, by rename), brings its schema up to date and gives the change log a new
//!   identity.
//! - `new-log-epoch` (either database; for PostgreSQL after a restore by its own tools, with
//!   every replica stopped): gives the change log a new identity.
//!
//! A new identity is what consumers notice: one that resumes with the old `log_id` gets
//! CHANGE_LOG_REPLACED and re-reads the state it needs, instead of resuming silently against a
//! log that lost the events after the backup. Webhook and mail deliveries resume after the
//! restored log's last event, and say so in `last_error`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rusqlite::{Connection, OpenFlags};

use crate::config::StorageSettings;
use crate::startup::connect_store;
use crate::startup::database_lock::DatabaseLock;
use crate::store::{LogReplaced, StoreOptions};

/// How long a backup waits for a lock the service holds (a write commit) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What `backup` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub bytes: u64,
    /// The backup's change log: its identity and last event.
    pub log_id: String,
    pub last_sequence: i64,
}

/// Copies the SQLite database of `storage` to `to`, consistently, while it is in use.
pub async fn backup(storage: &StorageSettings, to: &Path) -> anyhow::Result<Backup> {
    let source = sqlite_file(storage, "backup")?;
    ensure!(
        !to.exists(),
        "{} exists already: a backup never overwrites a file",
        to.display()
    );
    let to = to.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let db = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .with_context(|| format!("cannot open the database {}", source.display()))?;
        db.busy_timeout(BUSY_TIMEOUT)?;
        let target = to.to_str().context("the backup's path is not UTF-8")?;
        db.execute("VACUUM INTO ?1", [target])
            .with_context(|| format!("cannot write the backup {}", to.display()))?;
        let (log_id, last_sequence) = check(&to)?;
        Ok(Backup {
            bytes: std::fs::metadata(&to)?.len(),
            log_id,
            last_sequence,
        })
    })
    .await?
}

/// Puts the backup `from` in place of the SQLite database of `storage` (which must not be in
/// use), then gives the change log a new identity.
pub async fn restore(storage: &StorageSettings, from: &Path) -> anyhow::Result<LogReplaced> {
    let target = sqlite_file(storage, "restore")?;
    let _replacing = DatabaseLock::replacing(&target, "restore")?;
    let from = from.to_path_buf();
    let placed = target.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        check(&from)?;
        // Copied beside the database, made durable, then renamed over it: a crash leaves either
        // the old database or the whole backup, never a mix. The old database's WAL and shared
        // memory belong to it, not to the backup.
        let partial = placed.with_extension("restoring");
        std::fs::copy(&from, &partial)
            .with_context(|| format!("cannot copy {} beside the database", from.display()))?;
        std::fs::File::open(&partial)?.sync_all()?;
        for suffix in ["-wal", "-shm"] {
            let mut side = placed.clone().into_os_string();
            side.push(suffix);
            match std::fs::remove_file(&side) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {side:?}"));
                }
                _ => {}
            }
        }
        std::fs::rename(&partial, &placed)?;
        if let Some(dir) = placed.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await??;
    replace_log_identity(storage).await
}

/// Gives the change log of `storage`'s database a new identity (after it was restored). On a
/// SQLite file, refused while a server serves it.
pub async fn new_log_epoch(storage: &StorageSettings) -> anyhow::Result<LogReplaced> {
    let _replacing = (storage.sqlite_path())
        .map(|database| DatabaseLock::replacing(&database, "new-log-epoch"))
        .transpose()?;
    replace_log_identity(storage).await
}

async fn replace_log_identity(storage: &StorageSettings) -> anyhow::Result<LogReplaced> {
    let store = connect_store(storage, StoreOptions::default()).await?;
    store.migrate().await?;
    let replaced = store.changes().replace_log_identity().await;
    store.close().await?;
    Ok(replaced?)
}

/// The SQLite file of `storage`; `command` is for SQLite only.
fn sqlite_file(storage: &StorageSettings, command: &str) -> anyhow::Result<PathBuf> {
    if !storage.is_sqlite() {
        bail!(
            "`{command}` is for SQLite; back up and restore PostgreSQL with its own tools (pg_dump, or a base backup with WAL archiving), then run `telephony-admin new-log-epoch` on the restored database with every replica stopped (docs/operations.md)"
        );
    }
    storage
        .sqlite_path()
        .with_context(|| format!("`{command}` needs a database file"))
}

/// Checks the SQLite file `path` is whole (`PRAGMA integrity_check`) and a database of this
/// service; returns its change log's identity and last event.
fn check(path: &Path) -> anyhow::Result<(String, i64)> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let verdict: String = db.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(
        verdict == "ok",
        "{} fails SQLite's integrity check: {verdict}",
        path.display()
    );
    db.query_row(
        "SELECT log_id, last_sequence FROM change_log WHERE id = 1",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .with_context(|| format!("{} is not a database of this service", path.display()))
}
