//! Persistence: SeaORM entities, migrations and the repository. Every use case runs in one
//! transaction, and every change that a user must hear of writes its change event (the outbox
//! row) in that same transaction.
//!
//! SQLite (the default, one file) and PostgreSQL (for several replicas) are both supported. On
//! SQLite, write transactions begin IMMEDIATE so that writers queue on the busy timeout instead of
//! failing; on PostgreSQL, the rows a decision rests on are locked `FOR UPDATE`.

pub mod entities;
pub mod migration;
pub mod page;

mod accounts;
mod changes;
mod deliveries;
mod idempotency;
mod keys;
mod phone_numbers;
mod telephony;
mod users;
mod webhooks;

use std::{sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::Notify;

pub use changes::{ChangeFilter, ChangeLogState, NOTIFY_CHANNEL};
pub use deliveries::{DeliveryState, MAIL_SINK, webhook_sink};
pub use keys::{ApiKeyRecord, KEYS_CHANNEL, NewApiKey, Revocation, RevocationSignal};
pub use phone_numbers::{NumberFilter, NumberUpdate, OrderItem, OrderRecord};
pub use users::{UserUpdate, UserView};
pub use webhooks::{NewWebhook, WebhookUpdate, WebhookView};

/// The PostgreSQL advisory lock key that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x7465_6c61_646d_0001;

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Store settings that change behaviour rather than connection.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a deleted number stays restorable.
    pub deletion_queue_period: Duration,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            deletion_queue_period: Duration::from_secs(7 * 24 * 3600),
            max_connections: 16,
        }
    }
}

/// The repository: a connection pool and the wake-up for change watchers in this process.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    options: StoreOptions,
    /// Signalled after every commit that wrote a change event.
    committed: Arc<Notify>,
    /// Signalled when a key may have been revoked (here, or on PostgreSQL by another process).
    revoked: Arc<RevocationSignal>,
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. A SQLite file is created if missing and put
    /// in WAL mode.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, DbErr> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut connect = ConnectOptions::new(url.to_owned());
        connect
            .max_connections(if in_memory {
                1
            } else {
                options.max_connections
            })
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(30))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    // FULL: a committed transaction survives a power loss, not just a crash.
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
            });
        let db = Database::connect(connect).await?;
        Ok(Self {
            db,
            options,
            committed: Arc::new(Notify::new()),
            revoked: Arc::default(),
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

    /// A write transaction: IMMEDIATE on SQLite, READ COMMITTED with row locks on PostgreSQL.
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// Commits and, when the transaction recorded changes, wakes this process's watchers.
    async fn commit(&self, txn: DatabaseTransaction, wrote_changes: bool) -> Result<(), DbErr> {
        txn.commit().await?;
        if wrote_changes {
            self.committed.notify_one();
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    pub async fn close(self) -> Result<(), DbErr> {
        self.db.close().await
    }

    fn deletion_queue_period(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.options.deletion_queue_period)
            .unwrap_or_else(|_| chrono::Duration::days(7))
    }
}
