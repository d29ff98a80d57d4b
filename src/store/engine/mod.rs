//! The write engine, and the reads that bypass it: what every use case runs on, knowing nothing
//! of accounts, users or numbers.
//!
//! - [`writer`] (with [`group_commit`] and [`submission`]): the one task per process that
//!   writes. Every write is a [`mutation::Mutation`] run inside a savepoint of a shared
//!   transaction; one commit pays for a whole batch of callers.
//! - [`set_run`]: a set use case run as a single request (a set of one) or a batch.
//! - [`idempotency`] and [`answers`]: a request's first answer kept for its retries, in a
//!   versioned form.
//! - [`outbox`], [`batch_events`] and [`sequencer`]: change events written with the change that
//!   causes them, and numbered gap-free (on PostgreSQL, kept by the batch and written by its
//!   numbering, the transaction's last step).
//! - Driver adjustments: [`sqlite_planner`], [`sqlite_reads`] (direct reads on the calling
//!   thread). PostgreSQL sockets need none: sqlx sets TCP_NODELAY on them.
//!
//! A use case reaches all of this through [`Engine`]: run this mutation, run this set use case,
//! read on this connection.

pub(crate) mod answers;
pub(crate) mod batch_events;
pub(crate) mod group_commit;
pub(crate) mod idempotency;
pub(crate) mod mutation;
pub(crate) mod outbox;
pub(crate) mod sequencer;
pub(crate) mod set_run;
mod sqlite_planner;
pub(crate) mod sqlite_reads;
pub(crate) mod submission;
pub(crate) mod write_stats;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use tokio::sync::Notify;

use crate::error::Result;
use answers::Answer;
use idempotency::IdempotencyKey;
use mutation::Mutation;
use set_run::{BatchItem, BatchOptions, ItemResult, SetBatch, SetUseCase, SingleItem, batch_key};
use sqlite_reads::DirectReads;
use write_stats::WriteStats;
use writer::{Writer, WriterOptions};

/// A pooled connection idle this long is pinged before use (one busier is used as it is).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The reader pool, the writer, and the wake-up for change watchers in this process. Cheap to
/// clone: every clone is the same engine.
#[derive(Clone)]
pub(crate) struct Engine {
    db: DatabaseConnection,
    writer: Writer,
    /// Signalled after every commit that wrote change events.
    committed: Arc<Notify>,
    /// Reads without the pool's thread hop, on a SQLite file.
    direct: Option<Arc<DirectReads>>,
    /// Reader connections in the pool.
    readers: u32,
}

impl Engine {
    /// Connects to `sqlite://…` or `postgres://…` and starts the writer. A SQLite file is created
    /// if missing and put in WAL mode.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
        writer: WriterOptions,
    ) -> std::result::Result<Self, DbErr> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let readers = if in_memory { 1 } else { max_connections.max(1) };
        let db = Database::connect(connect_options(url, readers, acquire_timeout)).await?;
        let sqlite_file = db.get_database_backend() == DbBackend::Sqlite && !in_memory;
        // SQLite lets one writer in at a time: the writer gets a connection of its own so that
        // readers never wait for it. An in-memory database is one connection, shared.
        let write_db = if sqlite_file {
            Database::connect(connect_options(url, 1, acquire_timeout)).await?
        } else {
            db.clone()
        };
        let committed = Arc::new(Notify::new());
        let writer = Writer::start(write_db, writer, committed.clone());
        let direct = sqlite_file
            .then(|| {
                let options = db.get_sqlite_connection_pool().connect_options();
                DirectReads::new(options.get_filename())
            })
            .flatten()
            .map(Arc::new);
        Ok(Self {
            db,
            writer,
            committed,
            direct,
            readers,
        })
    }

    /// The reader pool (on PostgreSQL, also the writer's).
    pub fn reader(&self) -> &DatabaseConnection {
        &self.db
    }

    /// How many reader connections the pool holds.
    pub fn readers(&self) -> u32 {
        self.readers
    }

    /// Direct reads on the calling thread, on a SQLite file (see [`sqlite_reads`]).
    pub fn direct(&self) -> Option<&DirectReads> {
        self.direct.as_deref()
    }

    /// Runs `mutation` through the writer; answers once its batch has committed (and, on
    /// PostgreSQL, its events are numbered).
    pub async fn write<M: Mutation>(&self, mutation: M) -> Result<M::Output> {
        self.writer.submit(mutation).await
    }

    /// Runs the set use case `use_case` on one item: a single RPC, idempotent with `key`.
    pub async fn run_one<U>(
        &self,
        use_case: U,
        item: U::Item,
        key: Option<IdempotencyKey>,
    ) -> Result<U::Output>
    where
        U: SetUseCase,
        U::Output: Answer + Sync,
    {
        self.write(SingleItem {
            use_case,
            item,
            idempotency: key,
        })
        .await
    }

    /// Runs `items` as one batch of the set use case `use_case` (see [`set_run`]); one answer
    /// per item, in item order. `operation` names the batch RPC in its idempotency record,
    /// kept under `scope`.
    pub async fn run_set<U>(
        &self,
        operation: &'static str,
        use_case: U,
        items: Vec<BatchItem<U::Item>>,
        options: BatchOptions,
        scope: String,
    ) -> Result<Vec<ItemResult<U::Output>>>
    where
        U: SetUseCase,
        U::Output: Answer + Sync,
    {
        let idempotency = batch_key(operation, &items, &options, scope);
        self.write(SetBatch {
            use_case,
            items,
            atomic: options.atomic,
            validate_only: options.validate_only,
            idempotency,
        })
        .await
    }

    /// Woken after each commit that wrote change events (this process only).
    pub fn commit_signal(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// The writer's counters (batches, their sizes).
    pub fn write_stats(&self) -> Arc<WriteStats> {
        self.writer.stats()
    }

    /// Lets the writer finish what is queued, then closes the connections.
    pub async fn close(self) -> std::result::Result<(), DbErr> {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        self.writer.close().await;
        self.db.close().await
    }
}

fn connect_options(url: &str, max_connections: u32, acquire_timeout: Duration) -> ConnectOptions {
    let mut connect = ConnectOptions::new(url.to_owned());
    connect
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(acquire_timeout)
        // A ping before every use of a pooled connection is one more round trip for each
        // PostgreSQL read and write transaction: only a connection idle this long is checked.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                // FULL: a committed transaction survives a power loss, not just a crash.
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|connection, _| {
                Box::pin(sqlite_planner::keep_plans_stable(connection))
            })
        });
    connect
}
