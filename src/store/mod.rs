//! Persistence, in three layers whose arrows point one way, `use_cases → engine → db`:
//!
//! - [`use_cases`]: one file per aggregate (accounts, users, telephony, permissions, sign-out,
//!   inventory, orders, emergency locations, changes, retention, webhooks, deliveries, keys),
//!   each a small handle
//!   over the engine. A write loads the state it rests on, decides with `domain`, and writes
//!   with a few set statements; its single and batch forms sit side by side.
//! - [`engine`]: the group-commit writer (every write is a mutation in a savepoint of a shared
//!   transaction), set use cases run as one item or many, idempotency and stored answers, the
//!   change-event outbox and the PostgreSQL sequencer, and the driver adjustments. It knows
//!   nothing of accounts or numbers.
//! - [`db`]: SeaORM entities, migrations, the read models built from rows, keyset pages, and
//!   the row functions several use cases share.
//!
//! Rows stay inside: the store answers with the read models of [`db::views`] (and the domain's
//! types), never with an entity. Every change that a user must hear of writes its change event
//! (the outbox row) in the same savepoint as the change, so the two commit or vanish together.
//!
//! SQLite (the default, one file) and PostgreSQL (for several replicas) are both supported. On
//! SQLite the writer has a connection of its own, so reads never wait behind writes, and begins
//! IMMEDIATE; on PostgreSQL, the rows a decision rests on are locked `FOR UPDATE`, and change
//! events are staged in the writing transaction and numbered as its last step
//! (`engine::sequencer`), so that the writes of several replicas queue behind one counter only
//! for their numbering and commit.

pub mod db;
mod engine;
pub mod use_cases;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Notify, Semaphore};

use crate::secrets_key::SecretsKeyring;

pub use db::deliveries::{DELIVERIES_CHANNEL, MAIL_SINK, webhook_sink};
pub use db::emergency::{EmergencyAddressView, EmergencyLocationView};
pub use db::keys::{ApiKeyRecord, KEYS_CHANNEL};
pub use db::numbers::{NumberFilter, visible_to};
pub use db::page;
pub use db::users::UserFilter;
pub use db::views::{
    AccountView, AssignmentPeriod, DeliveryState, NumberView, OrderItem, OrderRecord, UserView,
    WebhookConfig, WebhookSecrets, WebhookView,
};
pub use engine::sequencer::NOTIFY_CHANNEL;
pub use engine::set_run::{BatchItem, BatchOptions, ItemRefusal, ItemResult};
pub use engine::write_stats::WriteStats;
pub use engine::writer::WriterOptions;
pub use use_cases::Requester;
pub use use_cases::changes::{ChangeFilter, ChangeLogState, LogReplaced};
pub use use_cases::emergency_locations::{LocationAddress, LocationHolder, LocationSource};
pub use use_cases::inventory::{NumberUpdate, NumberUpdateItem};
pub use use_cases::keys::{NewApiKey, Revocation, RevocationSignal};
pub use use_cases::permissions::SettingsItem;
pub use use_cases::telephony::{AssignItem, UnassignItem};
pub use use_cases::users::{NewUserItem, UserUpdate, UserUpdateItem};
pub use use_cases::webhooks::{NewWebhook, Resealed, WebhookUpdate};

use engine::Engine;
use use_cases::accounts::Accounts;
use use_cases::changes::Changes;
use use_cases::deliveries::Deliveries;
use use_cases::emergency_locations::EmergencyLocations;
use use_cases::inventory::Inventory;
use use_cases::keys::Keys;
use use_cases::orders::Orders;
use use_cases::permissions::Permissions;
use use_cases::retention::Retention;
use use_cases::sign_out::SignOut;
use use_cases::telephony::Telephony;
use use_cases::users::Users;
use use_cases::webhooks::Webhooks;

/// The PostgreSQL advisory lock key that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x7465_6c61_646d_0001;

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
    /// The keys that seal webhook signing secrets at rest; without them no webhook can be
    /// created (and a sealed secret cannot be read).
    pub secrets: Option<Arc<SecretsKeyring>>,
    /// The countries (ISO 3166-1 alpha-2) whose numbers are assigned only to users with an
    /// emergency location.
    pub emergency_location_countries: Vec<String>,
}

/// What the store wakes when something changes that other tasks wait for.
pub struct Signals {
    /// After each commit that wrote change events (this process only): the change hub.
    pub committed: Arc<Notify>,
    /// When a key may have been revoked, here or (on PostgreSQL, through the listener) by
    /// another process: the key cache.
    pub revoked: Arc<RevocationSignal>,
    /// When a delivery may have become claimable (a new or resumed webhook), here or (on
    /// PostgreSQL, through the listener) on another replica: the delivery supervisor.
    pub deliveries: Arc<Notify>,
}

/// The store: the engine (reader pool, writer), the signals, and the handles of its use cases.
/// Cheap to clone: every clone is the same store.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
    options: StoreOptions,
    signals: Arc<Signals>,
    /// Admits as many change-log state reads at a time as there are reader connections (see
    /// `Changes::state`).
    state_reads: Arc<Semaphore>,
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. A SQLite file is created if missing and put
    /// in WAL mode.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, DbErr> {
        let engine = Engine::connect(
            url,
            options.max_connections,
            options.acquire_timeout,
            options.writer,
        )
        .await?;
        let readers = engine.readers() as usize;
        let signals = Arc::new(Signals {
            committed: engine.commit_signal(),
            revoked: Arc::default(),
            deliveries: Arc::default(),
        });
        Ok(Self {
            engine,
            options,
            signals,
            state_reads: Arc::new(Semaphore::new(readers)),
        })
    }

    /// Brings the schema up to date. On PostgreSQL, replicas starting together on a fresh
    /// database would race to create the same tables: an advisory lock, held by a transaction
    /// on a connection of its own, lets one migrate while the others wait (and then find
    /// nothing to do). A pool of one connection cannot spare it, so it migrates unguarded.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        let db = self.connection();
        if db.get_database_backend() != DbBackend::Postgres || self.options.max_connections < 2 {
            return db::migration::Migrator::up(db, None).await;
        }
        let guard = db.begin().await?;
        guard
            .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        let migrated = db::migration::Migrator::up(db, None).await;
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
        let db = self.connection();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(setup.await);
        }
        use sqlx::Connection;
        let to_db_err = |e: sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)));
        let options = db.get_postgres_connection_pool().connect_options();
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

    /// The reader pool, for health checks, tests and tools.
    pub fn connection(&self) -> &DatabaseConnection {
        self.engine.reader()
    }

    /// What the hub, the key cache and the delivery supervisor wait on.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The writer's counters (batches, their sizes).
    pub fn write_stats(&self) -> Arc<WriteStats> {
        self.engine.write_stats()
    }

    /// Lets the writer finish what is queued, then closes the connections.
    pub async fn close(self) -> Result<(), DbErr> {
        self.engine.close().await
    }

    pub fn accounts(&self) -> Accounts<'_> {
        Accounts::new(&self.engine, &self.signals.revoked)
    }

    pub fn users(&self) -> Users<'_> {
        Users::new(&self.engine, &self.options.emergency_location_countries)
    }

    pub fn telephony(&self) -> Telephony<'_> {
        Telephony::new(&self.engine, &self.options.emergency_location_countries)
    }

    pub fn permissions(&self) -> Permissions<'_> {
        Permissions::new(&self.engine)
    }

    pub fn sign_out(&self) -> SignOut<'_> {
        SignOut::new(&self.engine)
    }

    pub fn inventory(&self) -> Inventory<'_> {
        // The configuration bounds it; beyond chrono's range it saturates.
        let period = chrono::Duration::from_std(self.options.deletion_queue_period)
            .unwrap_or(chrono::Duration::MAX);
        Inventory::new(&self.engine, period)
    }

    pub fn orders(&self) -> Orders<'_> {
        Orders::new(&self.engine)
    }

    pub fn changes(&self) -> Changes<'_> {
        Changes::new(
            &self.engine,
            &self.state_reads,
            self.options.acquire_timeout,
        )
    }

    pub fn retention(&self) -> Retention<'_> {
        Retention::new(&self.engine)
    }

    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks::new(
            &self.engine,
            &self.signals.deliveries,
            self.options.secrets.as_deref(),
        )
    }

    pub fn emergency_locations(&self) -> EmergencyLocations<'_> {
        EmergencyLocations::new(&self.engine)
    }

    pub fn deliveries(&self) -> Deliveries<'_> {
        Deliveries::new(&self.engine)
    }

    pub fn keys(&self) -> Keys<'_> {
        Keys::new(&self.engine, &self.signals.revoked)
    }
}

/// GetUser's, GetTelephonySettings' and ListPhoneNumbers' direct SQLite reads against the pool's queries: a test of the store as a whole (the
/// tables' reads, the engine's direct reader, and the use cases to set up).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AccountId, KeyId, UserId};
    use crate::domain::phone_number::{E164, ProductType};
    use crate::domain::phone_number::{NumberStatus, NumberType};
    use crate::domain::user::{DisplayName, Email, LicenseType};
    use crate::store::db::direct_rows::{phone_number_row, sqlite_statement};
    use crate::store::db::emergency::{
        DIRECT_USER_VIEW_WITH_LOCATIONS, direct_user_view_with_locations,
        find_user_view_with_locations,
    };
    use crate::store::db::numbers::numbers_query;
    use crate::store::db::settings::{
        DIRECT_USER_SETTINGS, direct_user_settings, find_user_settings,
    };
    use crate::store::db::users::{DIRECT_USER_VIEW, direct_user_view, find_user_view};
    use sea_orm::QuerySelect;

    /// The direct reads and the pool's queries give the same answers, and the direct reads
    /// does answer (it does not fall back) for a user with and without a number, and for no
    /// user.
    #[tokio::test]
    async fn the_direct_read_answers_as_the_pool_does() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("reads.db").display()
        );
        // A US number is assigned below, without an emergency location.
        let options = StoreOptions {
            emergency_location_countries: Vec::new(),
            ..StoreOptions::default()
        };
        let store = Store::connect(&url, options).await.expect("connect");
        store.migrate().await.expect("migrate");
        let account = store.accounts().create("a".into()).await.expect("account");
        let account_id = account.account_id;
        let user = |email: &str| {
            let store = store.clone();
            let account_id = account_id.clone();
            let email = Email::parse("email", email).expect("email");
            async move {
                let name = DisplayName::parse("display_name", "Ann").expect("name");
                let user = store
                    .users()
                    .create(&account_id, email, name, LicenseType::Pro, None)
                    .await
                    .expect("user");
                user.user_id
            }
        };
        let (with_number, without) = (user("a@example.com").await, user("b@example.com").await);
        let number = E164::parse("number", "+12065550100").expect("number");
        store
            .orders()
            .create(ProductType::BusinessCalling, &[number.to_string()])
            .await
            .expect("order");
        let key = KeyId::generate();
        let caller = Requester {
            key_id: &key,
            account: None,
        };
        let (user_id, emergency_location) = (with_number.clone(), None);
        let item = crate::store::AssignItem {
            account_id: account_id.clone(),
            user_id,
            number: number.clone(),
            emergency_location,
        };
        let assigned = store.telephony().assign(item, None, caller).await;
        assigned.expect("assign");
        let other_account =
            AccountId::parse("account_id", &uuid::Uuid::new_v4().to_string()).expect("id");
        let unknown = UserId::parse("user_id", &uuid::Uuid::new_v4().to_string()).expect("id");

        let engine = Engine::connect(
            &url,
            1,
            std::time::Duration::from_secs(5),
            StoreOptions::default().writer,
        )
        .await
        .expect("an engine on the same file");
        let direct = engine.direct().expect("direct reads on a SQLite file");
        let read = |account_id: &AccountId, user_id: &UserId| {
            let params = (user_id.as_str(), account_id.as_str());
            direct.read_one(&DIRECT_USER_VIEW, params, direct_user_view)
        };
        for (account_id, user_id) in [
            (&account_id, &with_number),
            (&account_id, &without),
            (&account_id, &unknown),
            (&other_account, &with_number),
        ] {
            let pooled = find_user_view(store.connection(), account_id, user_id)
                .await
                .expect("the pool's answer");
            assert_eq!(
                read(account_id, user_id),
                Some(pooled),
                "{account_id}/{user_id}"
            );
            // GetTelephonySettings' read too.
            let pooled = find_user_settings(store.connection(), account_id, user_id)
                .await
                .expect("the pool's answer");
            let params = (user_id.as_str(), account_id.as_str());
            let direct_settings =
                direct.read_one(DIRECT_USER_SETTINGS, params, direct_user_settings);
            assert_eq!(direct_settings, Some(pooled), "{account_id}/{user_id}");
            // GetUser's, with the user's emergency locations.
            let pooled = find_user_view_with_locations(store.connection(), account_id, user_id)
                .await
                .expect("the pool's answer");
            let with_locations = direct.read_one(
                &DIRECT_USER_VIEW_WITH_LOCATIONS,
                (user_id.as_str(), account_id.as_str()),
                direct_user_view_with_locations,
            );
            assert_eq!(with_locations, Some(pooled), "{account_id}/{user_id}");
        }
        let held = read(&account_id, &with_number).flatten().expect("the user");
        assert_eq!(held.phone_number, Some(number));

        // ListPhoneNumbers' pages: an assigned number, unassigned ones, one in the deletion queue.
        let more: Vec<String> = (101..=104).map(|n| format!("+1206555{n:04}")).collect();
        store
            .orders()
            .create(ProductType::BusinessCalling, &more)
            .await
            .expect("order");
        let queued = E164::parse("number", &more[0]).expect("number");
        store.inventory().delete(&queued).await.expect("delete");
        let now = crate::store::db::now();
        let filters = [
            NumberFilter::default(),
            NumberFilter {
                status: Some(NumberStatus::Unassigned),
                ..NumberFilter::default()
            },
            NumberFilter {
                account_id: Some(account_id.clone()),
                user_id: Some(with_number.clone()),
                ..NumberFilter::default()
            },
            NumberFilter {
                e164_prefix: Some("+1206555010".into()),
                country: Some("US".into()),
                number_type: Some(NumberType::Local),
                product_type: Some(ProductType::BusinessCalling),
                ..NumberFilter::default()
            },
        ];
        for filter in filters {
            for after in [None, Some(more[1].as_str())] {
                let query = numbers_query(&filter, filter.status, after, now).limit(Some(3));
                let pooled = query.clone().all(store.connection()).await.expect("rows");
                let (sql, values) = sqlite_statement(&query).expect("a statement");
                let direct_rows = direct
                    .read_many(&sql, rusqlite::params_from_iter(values), phone_number_row)
                    .expect("the direct read answers");
                assert_eq!(direct_rows, pooled, "{filter:?} after {after:?}");
                assert!(
                    after.is_some() || !pooled.is_empty(),
                    "{filter:?} lists nothing"
                );
            }
        }
    }
}
