//! Who may replace a SQLite database: a server holds the database's lock file shared for as
//! long as it serves it, and `restore` and `new-log-epoch` hold it exclusively while they
//! replace the file or its change log's identity. Neither starts under the other: a restore
//! under a running server would leave it writing to a file that is no longer the database.
//!
//! The lock is an advisory `flock` on `<database>.lock`, beside the file. The kernel drops it
//! with its holder, even one that crashed, so a lock file left behind blocks nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Held while its holder uses the database; dropping it releases the lock.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

impl DatabaseLock {
    /// For a server: shared with other servers, refused while a restore holds the database.
    pub fn serving(database: &Path) -> anyhow::Result<Self> {
        Self::take(database, File::try_lock_shared, |lock| {
            format!(
                "{} is being restored or given a new change log identity (its lock {lock} is held): start the server when that has finished",
                database.display()
            )
        })
    }

    /// For what replaces the database or its identity: refused while any server serves it.
    pub fn replacing(database: &Path, command: &str) -> anyhow::Result<Self> {
        Self::take(database, File::try_lock, |lock| {
            format!(
                "a server is serving {} (it holds {lock}), or another command is replacing it: stop the server before `{command}`",
                database.display()
            )
        })
    }

    /// Takes the lock file's lock with `try_lock`, or refuses with `refusal(the lock file)`.
    fn take(
        database: &Path,
        try_lock: fn(&File) -> Result<(), TryLockError>,
        refusal: impl FnOnce(&str) -> String,
    ) -> anyhow::Result<Self> {
        let (file, path) = open(database)?;
        match try_lock(&file) {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(refusal(&path.display().to_string())),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// The lock file of `database`, created if missing (with its directory: a first start, or a
/// restore on a new machine).
fn open(database: &Path) -> anyhow::Result<(File, PathBuf)> {
    let path = database.with_extension("lock");
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the database's lock file {}", path.display()))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_share_the_lock_and_a_replacement_waits_for_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("telephony.db");
        let first = DatabaseLock::serving(&database).unwrap();
        let second = DatabaseLock::serving(&database).unwrap();
        let refused = DatabaseLock::replacing(&database, "restore").unwrap_err();
        assert!(
            refused.to_string().contains("a server is serving"),
            "{refused:#}"
        );
        drop((first, second));
        let replacing = DatabaseLock::replacing(&database, "restore").unwrap();
        let refused = DatabaseLock::serving(&database).unwrap_err();
        assert!(
            refused.to_string().contains("being restored"),
            "{refused:#}"
        );
        drop(replacing);
        DatabaseLock::serving(&database).unwrap();
    }
}
