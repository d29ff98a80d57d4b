//! Test harness: `spawn_app(backend)` starts the real server on an ephemeral port with a fresh
//! database of its own (a SQLite file in a temporary directory, or a new PostgreSQL database
//! created from `TEST_DATABASE_URL`), and hands out typed gRPC clients that carry an API key.
//!
//! PostgreSQL tests run when `TEST_DATABASE_URL` is set. Without it (outside CI) the build
//! script sets `cfg(postgres_tests_skipped)` and they compile as ignored, so `cargo test` counts
//! them as ignored ("TEST_DATABASE_URL is not set"), never as passed. Under `CI=true` they always
//! run: a missing URL or an unreachable server fails the test.

#![allow(dead_code)]

pub mod batch;
pub mod clients;
pub mod fixtures;
pub mod http_receiver;
pub mod process;
pub mod smtp_sink;

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use telephony_admin::config::{RateLimitSettings, ServeSettings, StorageSettings};
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::proto::{
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    emergency_location_service_client::EmergencyLocationServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
    webhook_service_client::WebhookServiceClient,
};
use telephony_admin::startup::{Application, connect_store};
use telephony_admin::store::{Store, StoreOptions, WriteStats};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async scenario `fn(Backend)` as two tests, `sqlite` and `postgres`, in a module named
/// after the scenario.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$scenario($crate::common::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
                async fn postgres() {
                    super::$scenario($crate::common::Backend::Postgres).await;
                }
            }
        )+
    };
}

/// The PostgreSQL server's admin URL, from which each test creates a database of its own.
fn postgres_admin_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if is_ci() => {
            panic!("CI=true but TEST_DATABASE_URL is not set: the PostgreSQL tests must run in CI")
        }
        _ => panic!(
            "TEST_DATABASE_URL is not set (the tests were built with it set): set it, or \
             rebuild without it to have the PostgreSQL tests reported as ignored"
        ),
    }
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub url: String,
    /// For PostgreSQL: the admin URL and the database name to drop.
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("telephony_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at TEST_DATABASE_URL is unreachable: {e}")
                    });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let url = replace_database(&admin_url, &name);
                Self {
                    url,
                    postgres: Some((admin_url, name)),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(path) = postgres_secrets_key_path(&self.url) {
            let _ = std::fs::remove_file(path);
        }
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs outside any runtime we may block: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        let _ = admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// `postgres://user@host:port/db?x` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(name);
    url.into()
}

#[test]
fn replace_database_keeps_everything_but_the_database() {
    for (admin, expected) in [
        (
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/t1",
        ),
        (
            "postgres://user:p%40ss@db.internal/postgres?sslmode=disable&options=-c%20x%3D1",
            "postgres://user:p%40ss@db.internal/t1?sslmode=disable&options=-c%20x%3D1",
        ),
        (
            "postgres://postgres@localhost",
            "postgres://postgres@localhost/t1",
        ),
        (
            "postgres://localhost/?sslmode=disable",
            "postgres://localhost/t1?sslmode=disable",
        ),
    ] {
        assert_eq!(replace_database(admin, "t1"), expected, "from {admin}");
    }
}

/// Polls `read` every 20 ms until `counted` finds `count` in what it returns, and returns that.
/// After `within` it fails with `shortfall(counted)`, which says what arrived.
pub async fn wait_for_count<T>(
    count: usize,
    within: Duration,
    read: impl Fn() -> Vec<T>,
    counted: impl Fn(&[T]) -> usize,
    shortfall: impl Fn(usize) -> String,
) -> Vec<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let items = read();
        let got = counted(&items);
        if got >= count {
            return items;
        }
        assert!(std::time::Instant::now() < deadline, "{}", shortfall(got));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub address: std::net::SocketAddr,
    /// The organisation admin key created at start.
    pub admin_key: String,
    pub channel: Channel,
    pub database_url: String,
    /// The database this app owns (dropped with it); `None` for a replica of another app's.
    pub database: Option<TestDatabase>,
    /// A store on the same database, for setting up keys.
    pub store: Store,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The server's database writer counters (how many writes it committed together).
    pub write_stats: std::sync::Arc<WriteStats>,
}

/// Settings for tests: everything default, a random loopback port, a known bootstrap key.
/// The scope of a key of the account `account_id` (as the API answers it).
pub fn account_scope(account_id: &str) -> Scope {
    Scope::Account(
        telephony_admin::domain::ids::AccountId::parse("account_id", account_id)
            .expect("an account id"),
    )
}

pub fn test_settings() -> ServeSettings {
    let mut settings = ServeSettings::defaults();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.bootstrap_key = Some(keys::generate_secret());
    settings.shutdown_grace = Duration::from_secs(2);
    // Tests stop servers often; a drain window would only slow them down.
    settings.shutdown_drain_delay = Duration::ZERO;
    // Tests make thousands of calls, and batches of a thousand items, with one key.
    settings.rate_limits = RateLimitSettings::unlimited();
    // Tests assign US numbers freely; the emergency location rule has tests of its own.
    settings.emergency_location_countries = String::new();
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut ServeSettings),
) -> TestApp {
    let database = TestDatabase::create(backend).await;
    spawn_app_on(database, configure).await
}

/// Starts a server that owns `database` (e.g. after a restart of another app on it).
pub async fn spawn_app_on(
    database: TestDatabase,
    configure: impl FnOnce(&mut ServeSettings),
) -> TestApp {
    let mut app = spawn_app_on_url(&database.url, configure).await;
    app.database = Some(database);
    app
}

/// Starts a server on the database at `url` without owning it (a second replica).
pub async fn spawn_app_on_url(url: &str, configure: impl FnOnce(&mut ServeSettings)) -> TestApp {
    let mut settings = test_settings();
    configure(&mut settings);
    let admin_key = settings.bootstrap_key.clone().expect("bootstrap key");
    let storage = storage_for(url);
    let app = Application::build(&storage, settings)
        .await
        .expect("the application starts");
    let address = app.local_addr();
    let shutdown = app.shutdown_token();
    let write_stats = app.write_stats();
    let server = tokio::spawn(app.run_until_stopped());
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the test server");
    // With the server's secrets keys, as another process on the database would have them.
    let options = StoreOptions {
        secrets: telephony_admin::startup::secrets_keyring(&storage).expect("the secrets keys"),
        ..StoreOptions::default()
    };
    let store = connect_store(&storage, options).await.expect("store");
    TestApp {
        address,
        admin_key,
        channel,
        database_url: url.to_owned(),
        database: None,
        store,
        shutdown,
        server: Some(server),
        write_stats,
    }
}

/// The storage settings of a server on `url`: on PostgreSQL, with the secrets key file that
/// every server on that database shares (as replicas do), created by the first.
pub fn storage_for(url: &str) -> StorageSettings {
    StorageSettings {
        database_url: Some(url.to_owned()),
        data_dir: std::env::temp_dir(),
        secrets_key_file: shared_secrets_key_file(url),
    }
}

/// On PostgreSQL, the key file of the database at `url`, created if missing (SQLite keeps its
/// own beside the database file).
pub fn shared_secrets_key_file(url: &str) -> Option<std::path::PathBuf> {
    let path = postgres_secrets_key_path(url)?;
    telephony_admin::secrets_key::SecretsKeyring::load_or_create(&path)
        .expect("the test database's secrets key file");
    Some(path)
}

fn postgres_secrets_key_path(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("postgres") {
        return None;
    }
    let parsed = url::Url::parse(url).expect("a database URL");
    let name = parsed.path().trim_matches('/');
    Some(std::env::temp_dir().join(format!("telephony-admin-{name}.secrets-key")))
}

fn bearer(key: Option<&str>) -> Bearer {
    Bearer(key.map(|k| format!("Bearer {k}").parse().expect("ASCII key")))
}

impl TestApp {
    pub fn accounts(&self) -> AccountServiceClient<Authed> {
        self.accounts_as(Some(&self.admin_key))
    }
    pub fn users(&self) -> UserServiceClient<Authed> {
        self.users_as(Some(&self.admin_key))
    }
    pub fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        self.numbers_as(Some(&self.admin_key))
    }
    pub fn telephony(&self) -> TelephonyServiceClient<Authed> {
        self.telephony_as(Some(&self.admin_key))
    }
    pub fn changes(&self) -> ChangeServiceClient<Authed> {
        self.changes_as(Some(&self.admin_key))
    }

    pub fn accounts_as(&self, key: Option<&str>) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn users_as(&self, key: Option<&str>) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn numbers_as(&self, key: Option<&str>) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn telephony_as(&self, key: Option<&str>) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn changes_as(&self, key: Option<&str>) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn webhooks(&self) -> WebhookServiceClient<Authed> {
        self.webhooks_as(Some(&self.admin_key))
    }
    pub fn webhooks_as(&self, key: Option<&str>) -> WebhookServiceClient<Authed> {
        WebhookServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }

    pub fn emergency_locations(&self) -> EmergencyLocationServiceClient<Authed> {
        self.emergency_locations_as(Some(&self.admin_key))
    }

    pub fn emergency_locations_as(
        &self,
        key: Option<&str>,
    ) -> EmergencyLocationServiceClient<Authed> {
        EmergencyLocationServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }

    /// Creates an API key directly in the database (as the `keys create` command does).
    pub async fn create_key(&self, role: Role, scope: Scope) -> String {
        keys::create_key(&self.store, "test", role, &scope, None)
            .await
            .expect("create key")
            .1
    }

    /// Another server on the same database, with the same admin key.
    pub async fn spawn_replica(&self) -> TestApp {
        let key = self.admin_key.clone();
        let mut replica =
            spawn_app_on_url(&self.database_url, |s| s.bootstrap_key = Some(key)).await;
        replica.admin_key = self.admin_key.clone();
        replica
    }

    /// Stops the server gracefully and waits for it; the database stays.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the server stops within 10 s")
                .expect("server task")
                .expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
