//! Direct SQLite reads: the hottest reads (GetUser's one indexed query, a page of numbers) run on
//! the calling thread.
//!
//! sqlx gives each SQLite connection a thread of its own and hands it every statement over a
//! channel: under load, waking that thread and being woken by it (futex, context switches) cost
//! several times what SQLite spends on the query itself. Here a query runs on a connection of
//! its own (rusqlite, on the same SQLite library as sqlx; opened `query_only`, statements
//! prepared once and cached), straight from the task that asks: an indexed lookup of one row, in
//! microseconds, in its own implicit read transaction, so it sees exactly what a query through
//! the pool would. It never waits: a busy database is not waited for.
//!
//! Anything unexpected (the connection cannot be opened, the database is busy, a value is not
//! in the form the store writes) is not an error here: the caller runs the query through the
//! pool instead, which reports errors as every other read does.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row};

/// Connections of one SQLite file for [`DirectReads::read_one`], kept while idle up to
/// `max_idle` (a connection is held only while a query runs, without awaiting, so no more are
/// in use at once than threads run tasks).
pub(crate) struct DirectReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    /// Set when a connection could not be opened or the query not prepared (that would not
    /// change from one call to the next), or when the store closes: every read goes to the
    /// pool from then on.
    disabled: AtomicBool,
}

impl DirectReads {
    /// Reads of the database file at `path`; no connection is opened until the first read.
    pub(crate) fn new(path: &Path) -> Option<Self> {
        let max_idle = std::thread::available_parallelism().map_or(2, |n| n.get());
        Some(Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            max_idle,
            disabled: AtomicBool::new(false),
        })
    }

    /// The one row `sql` finds with `params`, mapped by `map`: `Some(None)` when there is no
    /// such row, `None` when this path cannot answer (the caller then asks the pool), including
    /// a row `map` does not take (`None` from it).
    pub(crate) fn read_one<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> Option<T>,
    ) -> Option<Option<T>> {
        self.with_connection(|connection| {
            let answer = connection.prepare_cached(sql).and_then(|mut statement| {
                statement.query_row(params, |row| Ok(map(row))).optional()
            });
            match answer {
                Ok(Some(Some(found))) => Some(Some(found)),
                Ok(None) => Some(None),
                // A row not in the form the store writes, or an error: the pool answers.
                Ok(Some(None)) | Err(_) => None,
            }
        })
    }

    /// Every row `sql` finds with `params`, each mapped by `map`; `None` when this path cannot
    /// answer (the caller then asks the pool), including when `map` does not take a row.
    pub(crate) fn read_many<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut map: impl FnMut(&Row<'_>) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.with_connection(|connection| {
            let mut statement = connection.prepare_cached(sql).ok()?;
            let mut rows = statement.query(params).ok()?;
            let mut found = Vec::new();
            while let Some(row) = rows.next().ok()? {
                found.push(map(row)?);
            }
            Some(found)
        })
    }

    /// Runs `read` on an idle connection (or a new one); `None` when none can be opened.
    fn with_connection<T>(&self, read: impl FnOnce(&Connection) -> Option<T>) -> Option<T> {
        if self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let connection = match self.take() {
            Some(connection) => connection,
            None => match open(&self.path) {
                Ok(connection) => connection,
                Err(error) => {
                    if !self.disabled.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%error, "cannot read directly from the SQLite file; reading through the pool");
                    }
                    return None;
                }
            },
        };
        let answer = read(&connection);
        // A connection whose query failed (busy, say) is fine for the next one.
        self.put_back(connection);
        answer
    }

    /// Closes the idle connections; every later read goes to the pool.
    pub(crate) fn close(&self) {
        self.disabled.store(true, Ordering::Relaxed);
        self.idle_list().clear();
    }

    fn take(&self) -> Option<Connection> {
        self.idle_list().pop()
    }

    fn put_back(&self, connection: Connection) {
        if self.disabled.load(Ordering::Relaxed) {
            return;
        }
        let mut idle = self.idle_list();
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection that only reads and never waits for a lock.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::ZERO)?;
    // Listings build one statement per combination of filters: keep them all prepared, each
    // with the plan it was prepared with (see `sqlite_planner`: without QPSG a newly bound LIMIT
    // would have every execution parse and plan its statement again).
    connection.set_prepared_statement_cache_capacity(64);
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    connection.pragma_update(None, "query_only", true)?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct connection keeps its statements' plans whatever is bound (QPSG), as the pool's
    /// connections do.
    #[test]
    fn direct_connections_keep_their_plans() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("db.sqlite");
        rusqlite::Connection::open(&path).expect("create the file");
        let connection = open(&path).expect("open");
        let qpsg = connection.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG);
        assert_eq!(qpsg.ok(), Some(true));
    }

    #[test]
    fn a_file_that_cannot_be_opened_leaves_every_read_to_the_pool() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let reads =
            DirectReads::new(&dir.path().join("missing").join("db.sqlite")).expect("a path");
        let one =
            |reads: &DirectReads| reads.read_one("SELECT 1", (), |row| row.get::<_, i64>(0).ok());
        assert_eq!(one(&reads), None);
        assert!(reads.disabled.load(Ordering::Relaxed));
        assert_eq!(one(&reads), None);
    }
}
