//! The server's settings from command-line flags and environment variables, with defaults that
//! run the service on a fresh machine with no set-up (SQLite in `./data`, loopback, plaintext).
//! The command line itself (its subcommands, `import` and `export` among them) is the binary's.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser};

use crate::store::{StoreOptions, WriterOptions};

mod browser;
mod rate_limits;

use crate::telemetry::LogFormat;
pub use browser::BrowserSettings;
pub use rate_limits::{MAX_RATE, RateLimitSettings, UNLIMITED_ENV};

/// The defaults, also where the store's options and the bulk commands find them.
pub use crate::defaults;

/// A duration default in the flags' notation (`7days`, `10s`), for `default_value`.
macro_rules! duration_default {
    ($duration:expr) => {{
        static TEXT: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| humantime::format_duration($duration).to_string());
        TEXT.as_str()
    }};
}

/// The store's options as a server started with no flags has them.
impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            deletion_queue_period: defaults::DELETION_QUEUE_PERIOD,
            max_connections: defaults::DB_POOL_SIZE,
            acquire_timeout: defaults::DATABASE_ACQUIRE_TIMEOUT,
            writer: WriterOptions {
                max_batch: usize::from(defaults::WRITE_BATCH_MAX),
                gather: defaults::WRITE_BATCH_WAIT,
            },
            secrets: None,
            emergency_location_countries: country_list(defaults::EMERGENCY_LOCATION_COUNTRIES),
        }
    }
}

/// `US, ca` → `["US", "CA"]`; empty entries are dropped.
fn country_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
        .collect()
}

#[derive(Debug, Clone, Args)]
pub struct StorageSettings {
    /// `sqlite://PATH` or `postgres://…`; default: a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Where the default SQLite database lives (created on first start).
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_DATA_DIR",
        default_value = "data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// The key file that seals webhook signing secrets at rest (AES-256-GCM; the first key
    /// seals, every key opens). Default for a SQLite database: `<database>.secrets-key` beside
    /// it, created on first start. PostgreSQL replicas share one file, created once with
    /// `rotate-secrets-key`; it is required once a webhook exists.
    #[arg(long, env = "TELEPHONY_ADMIN_SECRETS_KEY_FILE", global = true)]
    pub secrets_key_file: Option<PathBuf>,
}

impl StorageSettings {
    /// The database URL, and for the default, the data directory to create first.
    pub fn resolve(&self) -> (String, Option<PathBuf>) {
        match &self.database_url {
            Some(url) => (url.clone(), None),
            None => (
                format!(
                    "sqlite://{}?mode=rwc",
                    self.data_dir.join("telephony-admin.db").display()
                ),
                Some(self.data_dir.clone()),
            ),
        }
    }

    /// The SQLite database's file; `None` on PostgreSQL and for an in-memory database.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let (url, _) = self.resolve();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    /// Whether the database is SQLite (a file or in memory).
    pub fn is_sqlite(&self) -> bool {
        self.resolve().0.starts_with("sqlite:")
    }

    /// Where the secrets key file is: the flag's, else beside a SQLite database's file.
    pub fn secrets_key_path(&self) -> Option<PathBuf> {
        self.secrets_key_file.clone().or_else(|| {
            self.sqlite_path()
                .map(|db| db.with_extension("secrets-key"))
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address to listen on.
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    #[arg(
        long,
        env = "TELEPHONY_ADMIN_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// PEM certificate chain; with --tls-key, serve TLS.
    #[arg(long, env = "TELEPHONY_ADMIN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key.
    #[arg(long, env = "TELEPHONY_ADMIN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Allow plaintext on a non-loopback address (e.g. behind a TLS-terminating proxy or mesh).
    #[arg(long, env = "TELEPHONY_ADMIN_ALLOW_PLAINTEXT_NON_LOOPBACK")]
    pub allow_plaintext_non_loopback: bool,

    /// Secret of the first organisation admin key, created when no key exists. Without it, one
    /// is generated and printed once.
    #[arg(long, env = "TELEPHONY_ADMIN_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,

    /// How long change events are kept.
    #[arg(long, env = "TELEPHONY_ADMIN_EVENT_RETENTION", value_parser = humantime::parse_duration, default_value = "7d")]
    pub event_retention: Duration,

    /// How long a request_id keeps returning its first result; a retry after that is new.
    #[arg(long, env = "TELEPHONY_ADMIN_IDEMPOTENCY_WINDOW", value_parser = humantime::parse_duration, default_value = "24h")]
    pub idempotency_window: Duration,

    /// How long a deleted number stays restorable.
    #[arg(long, env = "TELEPHONY_ADMIN_DELETION_QUEUE_PERIOD", value_parser = humantime::parse_duration, default_value = duration_default!(defaults::DELETION_QUEUE_PERIOD))]
    pub deletion_queue_period: Duration,

    /// Countries (ISO 3166-1 alpha-2, comma-separated; empty for none) whose numbers are
    /// assigned only to users with an emergency location.
    #[arg(long, env = "TELEPHONY_ADMIN_EMERGENCY_LOCATION_COUNTRIES", default_value = defaults::EMERGENCY_LOCATION_COUNTRIES)]
    pub emergency_location_countries: String,

    /// How often an idle watch stream receives a checkpoint.
    #[arg(long, env = "TELEPHONY_ADMIN_CHECKPOINT_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    pub checkpoint_interval: Duration,

    /// How often the change log is polled as a safety net for lost wake-ups (commits in this
    /// process and PostgreSQL notifications from other replicas wake watchers at once).
    #[arg(long, env = "TELEPHONY_ADMIN_CHANGE_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "2s")]
    pub change_poll_interval: Duration,

    /// How often retention and the deletion queue are enforced.
    #[arg(long, env = "TELEPHONY_ADMIN_MAINTENANCE_INTERVAL", value_parser = humantime::parse_duration, default_value = "1m")]
    pub maintenance_interval: Duration,

    /// Deadline of a unary RPC.
    #[arg(long, env = "TELEPHONY_ADMIN_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub request_timeout: Duration,

    /// Largest request message, in bytes.
    #[arg(long, env = "TELEPHONY_ADMIN_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Largest page_size accepted.
    #[arg(long, env = "TELEPHONY_ADMIN_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: u64,

    /// Most items in one batch request (BatchAssignPhoneNumbers, BatchCreateUsers, …).
    #[arg(long, env = "TELEPHONY_ADMIN_MAX_BATCH_ITEMS", default_value_t = defaults::MAX_BATCH_ITEMS)]
    pub max_batch_items: usize,

    /// HTTP/2 streams a connection may have open at once.
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_MAX_CONCURRENT_STREAMS",
        default_value_t = 200
    )]
    pub max_concurrent_streams: u32,

    /// How long a new connection may take to complete its handshake (TLS, then the HTTP/2
    /// client preface and SETTINGS, or an HTTP/1.1 request's head) before it is closed.
    #[arg(long, env = "TELEPHONY_ADMIN_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub handshake_timeout: Duration,

    /// Client connections open at once, those in their handshake included; one more is closed
    /// as soon as it is accepted. Keep it below the process's file-descriptor limit.
    #[arg(
        long = "max-connections",
        env = "TELEPHONY_ADMIN_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub max_client_connections: usize,

    /// Age at which a client connection is asked to go (HTTP/2 GOAWAY), so that long-lived
    /// clients rebalance across replicas; its open calls get `--max-connection-age-grace`.
    #[arg(long, env = "TELEPHONY_ADMIN_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration, default_value = "30m")]
    pub max_connection_age: Duration,

    /// How long calls still open on a connection asked to go may run (watch streams then end
    /// with UNAVAILABLE, and their consumers resume on another connection).
    #[arg(long, env = "TELEPHONY_ADMIN_MAX_CONNECTION_AGE_GRACE", value_parser = humantime::parse_duration, default_value = "5m")]
    pub max_connection_age_grace: Duration,

    /// How long a client connection may go without an open call before it is asked to go
    /// (HTTP/2 GOAWAY), so that idle clients reconnect to whichever replica is there then.
    #[arg(long, env = "TELEPHONY_ADMIN_MAX_CONNECTION_IDLE", value_parser = humantime::parse_duration, default_value = "15m")]
    pub max_connection_idle: Duration,

    #[command(flatten)]
    pub rate_limits: RateLimitSettings,

    #[command(flatten)]
    pub browser: BrowserSettings,

    /// Open WatchChanges streams per API key.
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_MAX_WATCHERS_PER_KEY",
        default_value_t = 2000
    )]
    pub max_watchers_per_key: usize,

    /// Database connections per replica.
    #[arg(long, env = "TELEPHONY_ADMIN_DB_POOL_SIZE", default_value_t = defaults::DB_POOL_SIZE)]
    pub db_pool_size: u32,

    /// Let webhooks use plain http:// and reach loopback, link-local and private addresses
    /// (tests and internal deployments only).
    #[arg(long, env = "TELEPHONY_ADMIN_WEBHOOK_ALLOW_INSECURE")]
    pub webhook_allow_insecure: bool,

    /// The longest one delivery attempt may take (a webhook's HTTP exchange, an SMTP session).
    #[arg(long, env = "TELEPHONY_ADMIN_DELIVERY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub delivery_timeout: Duration,

    /// The first wait before retrying a failed delivery; it doubles (with jitter) up to
    /// --delivery-retry-max.
    #[arg(long, env = "TELEPHONY_ADMIN_DELIVERY_RETRY_MIN", value_parser = humantime::parse_duration, default_value = "1s")]
    pub delivery_retry_min: Duration,

    /// The longest wait between retries of a failed delivery.
    #[arg(long, env = "TELEPHONY_ADMIN_DELIVERY_RETRY_MAX", value_parser = humantime::parse_duration, default_value = "5m")]
    pub delivery_retry_max: Duration,

    /// A webhook whose deliveries fail continuously for this long is paused.
    #[arg(long, env = "TELEPHONY_ADMIN_WEBHOOK_PAUSE_AFTER", value_parser = humantime::parse_duration, default_value = "24h")]
    pub webhook_pause_after: Duration,

    /// How long a replica's hold on a delivery lasts unrenewed: when a replica dies, another
    /// takes its deliveries over after at most this long (plus a quarter of it).
    #[arg(long, env = "TELEPHONY_ADMIN_DELIVERY_LEASE", value_parser = humantime::parse_duration, default_value = "30s")]
    pub delivery_lease: Duration,

    /// Mail relay for the e-mail to users: smtp://host[:port] (STARTTLS, port 587 by default) or
    /// smtps://host[:port] (TLS, port 465), with user:password@ if the relay wants them.
    /// Without it, no mail is sent.
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_SMTP_URL",
        hide_env_values = true,
        requires = "mail_from"
    )]
    pub smtp_url: Option<String>,

    /// The sender of the e-mail to users, e.g. "Telephony <telephony@example.com>".
    #[arg(long, env = "TELEPHONY_ADMIN_MAIL_FROM", requires = "smtp_url")]
    pub mail_from: Option<String>,

    /// Let an smtp:// URL to a loopback relay speak without TLS (a local relay or a test sink).
    #[arg(long, env = "TELEPHONY_ADMIN_SMTP_PLAINTEXT_LOOPBACK")]
    pub smtp_plaintext_loopback: bool,

    /// Serve Prometheus metrics at `http://ADDRESS/metrics` (e.g. 127.0.0.1:9464); off unless
    /// given. The endpoint has no authentication: keep it on loopback or a private network.
    #[arg(long, env = "TELEPHONY_ADMIN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Export traces over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317); off unless
    /// given.
    #[arg(long, env = "TELEPHONY_ADMIN_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The most writes committed together in one transaction.
    #[arg(long, env = "TELEPHONY_ADMIN_WRITE_BATCH_MAX", default_value_t = defaults::WRITE_BATCH_MAX, value_parser = clap::value_parser!(u16).range(1..))]
    pub write_batch_max: u16,

    /// How long the writer waits for more writes to join a batch (0: it takes those waiting).
    #[arg(long, env = "TELEPHONY_ADMIN_WRITE_BATCH_WAIT", value_parser = humantime::parse_duration, default_value = duration_default!(defaults::WRITE_BATCH_WAIT))]
    pub write_batch_wait: Duration,

    /// How long shutdown waits for in-flight requests.
    #[arg(long, env = "TELEPHONY_ADMIN_SHUTDOWN_GRACE", value_parser = humantime::parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,

    /// On SIGTERM, how long health reports NOT_SERVING while the server keeps serving, so that
    /// load balancers stop sending new requests before the listener closes.
    #[arg(long, env = "TELEPHONY_ADMIN_SHUTDOWN_DRAIN_DELAY", value_parser = humantime::parse_duration, default_value = "5s")]
    pub shutdown_drain_delay: Duration,

    /// How often the database is pinged; health reports NOT_SERVING while it does not answer.
    #[arg(long, env = "TELEPHONY_ADMIN_DATABASE_CHECK_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub database_check_interval: Duration,

    /// How long a request waits for a database connection before answering UNAVAILABLE.
    #[arg(long, env = "TELEPHONY_ADMIN_DATABASE_ACQUIRE_TIMEOUT", value_parser = humantime::parse_duration, default_value = duration_default!(defaults::DATABASE_ACQUIRE_TIMEOUT))]
    pub database_acquire_timeout: Duration,

    /// Change events the hub keeps in memory for live watchers; a watcher further behind reads
    /// the database.
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_CHANGE_RING_CAPACITY",
        default_value_t = 8192
    )]
    pub change_ring_capacity: usize,
}

/// The longest duration any setting accepts: far beyond any sensible value, and far from the
/// overflow of a point in time.
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

impl ServeSettings {
    /// How webhooks and mail are delivered.
    pub fn delivery(&self) -> crate::delivery::DeliverySettings {
        crate::delivery::DeliverySettings {
            policy: crate::domain::webhook::TargetPolicy {
                allow_insecure: self.webhook_allow_insecure,
            },
            attempt_timeout: self.delivery_timeout,
            retry_min: self.delivery_retry_min,
            retry_max: self.delivery_retry_max,
            pause_after: self.webhook_pause_after,
            lease_ttl: self.delivery_lease,
            mail: match (&self.smtp_url, &self.mail_from) {
                (Some(smtp_url), Some(from)) => Some(crate::delivery::MailSettings {
                    smtp_url: smtp_url.clone(),
                    from: from.clone(),
                    allow_plaintext_loopback: self.smtp_plaintext_loopback,
                }),
                _ => None,
            },
        }
    }

    /// Refuses values that would make the server spin, busy-poll or overflow a point in time,
    /// with a message naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(bad) = country_list(&self.emergency_location_countries)
            .into_iter()
            .find(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!(
                "--emergency-location-countries: {bad:?} is not an ISO 3166-1 alpha-2 code"
            ));
        }
        let ms = Duration::from_millis;
        let checks = [
            ("--event-retention", self.event_retention, ms(1000)),
            ("--idempotency-window", self.idempotency_window, ms(1000)),
            (
                "--deletion-queue-period",
                self.deletion_queue_period,
                ms(1000),
            ),
            ("--checkpoint-interval", self.checkpoint_interval, ms(100)),
            ("--change-poll-interval", self.change_poll_interval, ms(10)),
            ("--maintenance-interval", self.maintenance_interval, ms(100)),
            ("--request-timeout", self.request_timeout, ms(1)),
            ("--handshake-timeout", self.handshake_timeout, ms(100)),
            ("--max-connection-age", self.max_connection_age, ms(100)),
            (
                "--max-connection-age-grace",
                self.max_connection_age_grace,
                Duration::ZERO,
            ),
            ("--max-connection-idle", self.max_connection_idle, ms(100)),
            ("--shutdown-grace", self.shutdown_grace, Duration::ZERO),
            (
                "--shutdown-drain-delay",
                self.shutdown_drain_delay,
                Duration::ZERO,
            ),
            (
                "--database-check-interval",
                self.database_check_interval,
                ms(100),
            ),
            (
                "--database-acquire-timeout",
                self.database_acquire_timeout,
                ms(100),
            ),
        ];
        for (flag, value, min) in checks {
            if value < min || value > MAX_DURATION {
                return Err(format!(
                    "{flag} must be between {} and {} (got {})",
                    humantime::format_duration(min),
                    humantime::format_duration(MAX_DURATION),
                    humantime::format_duration(value)
                ));
            }
        }
        self.rate_limits.validate()?;
        if self.max_client_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.change_ring_capacity == 0 {
            return Err("--change-ring-capacity must be at least 1".into());
        }
        Ok(())
    }

    /// The store's options.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            deletion_queue_period: self.deletion_queue_period,
            emergency_location_countries: country_list(&self.emergency_location_countries),
            max_connections: self.db_pool_size,
            acquire_timeout: self.database_acquire_timeout,
            writer: WriterOptions {
                max_batch: usize::from(self.write_batch_max),
                gather: self.write_batch_wait,
            },
            // The keys come from the storage settings, once the database is known.
            secrets: None,
        }
    }

    /// Defaults, as a server started with no flags would have them.
    pub fn defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeSettings,
        }
        Only::parse_from(["serve"]).serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_default_to_the_defaults_the_store_has() {
        let flags = ServeSettings::defaults().store_options();
        let store = StoreOptions::default();
        assert_eq!(flags.deletion_queue_period, store.deletion_queue_period);
        assert_eq!(
            flags.deletion_queue_period,
            Duration::from_secs(7 * 24 * 60 * 60)
        );
        assert_eq!(flags.max_connections, store.max_connections);
        assert_eq!(flags.acquire_timeout, store.acquire_timeout);
        assert_eq!(flags.writer.max_batch, store.writer.max_batch);
        assert_eq!(flags.writer.gather, store.writer.gather);
    }
}
