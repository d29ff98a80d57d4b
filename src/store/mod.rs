//! Persistence: SeaORM entities, migrations and the repository. Rows stay here: the store
//! answers with the read models of [`views`] (and the domain's types), never with an entity.
//!
//! Reads run on a pool of reader connections; on a SQLite file, GetUser's query runs on the
//! calling thread instead (see `sqlite_reads`). Every write is a [`writer::Mutation`]: a use case
//! (a function over a transaction) with its already validated input, run by the one writer task
//! of the process inside a savepoint of a shared transaction (group commit). Every change that a
//! user must hear of writes its change event (the outbox row) in that same savepoint, so the
//! change and its event commit or vanish together. The use cases of bulk work (assigning and
//! taking back numbers, permissions, new users) are set use cases ([`batch::SetUseCase`]): they
//! read the state of all their items in a query or two, decide each item in order, and write
//! the successes with a few set statements; their single RPCs run them with one item.
//!
//! SQLite (the default, one file) and PostgreSQL (for several replicas) are both supported. On
//! SQLite the writer has a connection of its own, so reads never wait behind writes, and begins
//! IMMEDIATE; on PostgreSQL, the rows a decision rests on are locked `FOR UPDATE`, and change
//! events are staged in the writing transaction and numbered after it commits (`sequencer`), so
//! that the commits of several replicas do not queue behind one counter.

pub mod entities;
pub mod migration;
pub mod page;

mod accounts;
mod answers;
mod assignment;
mod batch;
mod changes;
mod deliveries;
mod history;
mod idempotency;
#[cfg(test)]
mod inventory_plans;
mod keys;
mod new_users;
mod orders;
mod outbox;
mod permissions;
pub mod pg_nodelay;
mod phone_numbers;
mod sequencer;
mod sign_out;
mod sqlite_planner;
mod sqlite_reads;
mod telephony;
mod users;
mod views;
mod webhooks;
mod writer;

use std::{sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::Notify;

pub use batch::{
    AssignItem, BatchItem, BatchOptions, EncodeError, ItemResult, NewUserItem, NumberUpdateItem,
    SettingsItem, UnassignItem, UserUpdateItem,
};
pub use changes::{ChangeFilter, ChangeLogState};
pub use deliveries::{MAIL_SINK, webhook_sink};
pub use keys::{ApiKeyRecord, KEYS_CHANNEL, NewApiKey, Revocation, RevocationSignal};
pub use outbox::NOTIFY_CHANNEL;
pub use phone_numbers::{NumberFilter, NumberUpdate, OrderItem, visible_to};
pub use telephony::Requester;
pub use users::{UserUpdate, UserView};
pub use views::{
    AccountView, AssignmentPeriod, DeliveryState, NumberView, OrderRecord, WebhookConfig,
    WebhookView,
};
pub use webhooks::{NewWebhook, WebhookUpdate};
pub use writer::{WriteStats, WriterOptions};

use writer::{Mutation, Writer};

/// The PostgreSQL advisory lock key that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x7465_6c61_646d_0001;

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Store settings that change behaviour rather than connection. Their defaults are the
/// configuration's (`config::defaults`).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a deleted number stays restorable.
    pub deletion_queue_period: Duration,
    /// Connection pool size.
    pub max_connections: u32,
    /// How long a query waits for a connection (e.g. while the database is down) before failing.
    pub acquire_timeout: Duration,
    /// How the writer gathers mutations into one transaction.
    pub writer: WriterOptions,
}

/// The repository: the reader pool, the writer, and the wake-up for change watchers in this
/// process.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    writer: Writer,
    options: StoreOptions,
    /// Signalled after every commit that wrote a change event.
    committed: Arc<Notify>,
    /// Signalled when a key may have been revoked (here, or on PostgreSQL by another process).
    revoked: Arc<RevocationSignal>,
    /// Admits as many change-log state reads at a time as there are reader connections (see
    /// `Store::change_log_state`).
    state_reads: Arc<tokio::sync::Semaphore>,
    /// GetUser's query without the pool's thread hop, on a SQLite file.
    direct: Option<Arc<sqlite_reads::DirectReads>>,
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. A SQLite file is created if missing and put
    /// in WAL mode.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, DbErr> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let readers = if in_memory {
            1
        } else {
            options.max_connections.max(1)
        };
        let db = Database::connect(connect_options(url, readers, options.acquire_timeout)).await?;
        // SQLite lets one writer in at a time: the writer gets a connection of its own so that
        // readers never wait for it. An in-memory database is one connection, shared.
        let write_db = if db.get_database_backend() == DbBackend::Sqlite && !in_memory {
            Database::connect(connect_options(url, 1, options.acquire_timeout)).await?
        } else {
            db.clone()
        };
        let committed = Arc::new(Notify::new());
        let writer = Writer::start(write_db, options.writer, committed.clone());
        let direct = (db.get_database_backend() == DbBackend::Sqlite && !in_memory)
            .then(|| {
                let options = db.get_sqlite_connection_pool().connect_options();
                sqlite_reads::DirectReads::new(options.get_filename())
            })
            .flatten()
            .map(Arc::new);
        Ok(Self {
            db,
            writer,
            options,
            committed,
            revoked: Arc::default(),
            state_reads: Arc::new(tokio::sync::Semaphore::new(readers as usize)),
            direct,
        })
    }

    /// Brings the schema up to date. On PostgreSQL, replicas starting together on a fresh
    /// database would race to create the same tables: an advisory lock, held by a transaction
    /// on a connection of its own, lets one migrate while the others wait (and then find
    /// nothing to do). A pool of one connection cannot spare it, so it migrates unguarded.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        if !self.is_postgres() || self.options.max_connections < 2 {
            return migration::Migrator::up(&self.db, None).await;
        }
        let guard = self.db.begin().await?;
        guard
            .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        let migrated = migration::Migrator::up(&self.db, None).await;
        guard.commit().await?;
        migrated
    }

    /// Runs `setup` under the migration lock, so that replicas starting together on a fresh
    /// PostgreSQL database do one-time set-up (such as creating the first key) once. The lock is
    /// held by a connection of its own, outside the pool, so any pool size works; it is released
    /// when that connection closes, even if this process dies. SQLite runs `setup` as is.
    pub async fn with_setup_lock<T>(
        &self,
        setup: impl std::future::Future<Output = T>,
    ) -> Result<T, DbErr> {
        if !self.is_postgres() {
            return Ok(setup.await);
        }
        use sqlx::Connection;
        let to_db_err = |e: sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)));
        let options = self.db.get_postgres_connection_pool().connect_options();
        let mut lock = sqlx::postgres::PgConnection::connect_with(&options)
            .await
            .map_err(to_db_err)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await
            .map_err(to_db_err)?;
        let done = setup.await;
        // Closing the connection releases the lock too.
        let _ = lock.close().await;
        Ok(done)
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == DbBackend::Postgres
    }

    /// Woken after each commit that wrote change events (this process only).
    pub fn commit_signal(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// Woken when a key may have been revoked: by this store's revocations, and on PostgreSQL
    /// by another process's (through the listener).
    pub fn revocation_signal(&self) -> &Arc<RevocationSignal> {
        &self.revoked
    }

    /// Runs `mutation` through the writer; answers once its batch has committed.
    async fn write<M: Mutation>(&self, mutation: M) -> crate::error::Result<M::Output> {
        self.writer.submit(mutation).await
    }

    /// The writer's counters (batches, their sizes).
    pub fn write_stats(&self) -> Arc<WriteStats> {
        self.writer.stats()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    /// Lets the writer finish what is queued, then closes the connections.
    pub async fn close(self) -> Result<(), DbErr> {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        self.writer.close().await;
        self.db.close().await
    }

    /// GetUser's row read on the calling thread (SQLite files): `None` when that cannot answer
    /// and the pool must.
    fn direct_user_view(
        &self,
        account_id: &crate::domain::ids::AccountId,
        user_id: &crate::domain::ids::UserId,
    ) -> Option<Option<UserView>> {
        self.direct.as_ref()?.user_view(account_id, user_id)
    }

    fn deletion_queue_period(&self) -> chrono::Duration {
        // The configuration bounds it; beyond chrono's range it saturates.
        chrono::Duration::from_std(self.options.deletion_queue_period)
            .unwrap_or(chrono::Duration::MAX)
    }
}

/// The current time at the precision both databases store (microseconds), so that a value
/// answered from memory equals the one read back later.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

fn connect_options(url: &str, max_connections: u32, acquire_timeout: Duration) -> ConnectOptions {
    let mut connect = ConnectOptions::new(url.to_owned());
    connect
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(acquire_timeout)
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
        })
        .map_sqlx_postgres_pool_opts(|pool| {
            pool.after_connect(|connection, _| Box::pin(pg_nodelay::disable_nagle(connection)))
        });
    connect
}
