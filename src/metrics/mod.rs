//! Prometheus metrics: the process's registry and the one-line hooks the rest of the service
//! calls (`metrics::record_…`), encoded as OpenMetrics text by the `/metrics` listener.
//!
//! Recording is off until [`enable`] is called (the server does so when `--metrics-listen` is
//! given); until then every hook returns at once. The registry is per process, like the
//! process it describes. Label values come from small fixed sets (gRPC method names known from
//! the service descriptors, status codes, reasons, kinds): never ids, numbers or keys.
//!
//! RPC metrics follow the OpenTelemetry semantic conventions for RPC servers, in Prometheus
//! naming: `rpc_server_duration_seconds{rpc_system, rpc_service, rpc_method,
//! rpc_grpc_status_code}`; its `_count` is the number of requests.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

mod labels;
mod pool;
mod rpc_method;

pub use labels::{AuthFailure, ConnectionClosed, DbErrorKind, PurgeKind, RateLimit};
pub use pool::PoolState;

pub use rpc_method::{OTHER, RpcMethod, rpc_method};

/// Media type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds, in seconds, of the RPC duration buckets: the OpenTelemetry recommendation,
/// with finer steps below 5 ms where this service's reads land.
const RPC_DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// Upper bounds of the write batch size buckets (mutations per commit).
const WRITE_BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RpcLabels {
    rpc_system: &'static str,
    rpc_service: &'static str,
    rpc_method: &'static str,
    rpc_grpc_status_code: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RoleLimitLabels {
    role: &'static str,
    limit: &'static str,
}

/// The API key roles, as label values (`domain::role::Role::as_str`).
pub const ROLES: [&str; 3] = ["admin", "viewer", "session-service"];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    rpc_duration: HistogramFamily<RpcLabels>,
    watch_streams: Gauge,
    hub_sequence: Gauge,
    newest_sequence: Gauge,
    hub_lag: Gauge,
    ring_fallbacks: Counter,
    events_written: Counter,
    write_batch: Histogram,
    db_connections_in_use: Gauge,
    db_connections_idle: Gauge,
    db_errors: Family<KindLabel, Counter>,
    auth_failures: Family<ReasonLabel, Counter>,
    purge_runs: Counter,
    unknown_change_kinds: Counter,
    client_connections: Gauge,
    users_missing_emergency_location: Gauge,
    rate_limited: Family<RoleLimitLabels, Counter>,
    client_connections_closed: Family<ReasonLabel, Counter>,
    purged_rows: Family<KindLabel, Counter>,
    delivery_lag: Family<KindLabel, Gauge>,
    delivery_failing: Family<KindLabel, Gauge>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turns recording on for the rest of the process and returns the registry's owner.
pub fn enable() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            rpc_duration: Family::new_with_constructor(|| Histogram::new(RPC_DURATION_BUCKETS)),
            watch_streams: Gauge::default(),
            hub_sequence: Gauge::default(),
            newest_sequence: Gauge::default(),
            hub_lag: Gauge::default(),
            ring_fallbacks: Counter::default(),
            events_written: Counter::default(),
            write_batch: Histogram::new(WRITE_BATCH_BUCKETS),
            db_connections_in_use: Gauge::default(),
            db_connections_idle: Gauge::default(),
            db_errors: Family::default(),
            auth_failures: Family::default(),
            purge_runs: Counter::default(),
            unknown_change_kinds: Counter::default(),
            client_connections: Gauge::default(),
            users_missing_emergency_location: Gauge::default(),
            rate_limited: Family::default(),
            client_connections_closed: Family::default(),
            purged_rows: Family::default(),
            delivery_lag: Family::default(),
            delivery_failing: Family::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "rpc_server_duration_seconds",
            "Duration of inbound RPCs until the response (for a stream: until it opens); _count is the number of RPCs",
            metrics.rpc_duration.clone(),
        );
        let service = registry.sub_registry_with_prefix("telephony_admin");
        service.register(
            "watch_streams",
            "Open WatchChanges streams",
            metrics.watch_streams.clone(),
        );
        service.register(
            "change_hub_sequence",
            "Highest change sequence loaded into the in-memory hub",
            metrics.hub_sequence.clone(),
        );
        service.register(
            "change_newest_sequence",
            "Highest change sequence this process has written or loaded",
            metrics.newest_sequence.clone(),
        );
        service.register(
            "change_hub_lag_events",
            "Events written but not yet loaded into the hub (newest sequence minus hub sequence)",
            metrics.hub_lag.clone(),
        );
        service.register(
            "watch_ring_fallbacks",
            "Watch reads that fell behind the in-memory ring and went to the database",
            metrics.ring_fallbacks.clone(),
        );
        service.register(
            "change_events_written",
            "Change events appended by this process",
            metrics.events_written.clone(),
        );
        service.register(
            "write_batch_size",
            "Mutations committed together in one database transaction",
            metrics.write_batch.clone(),
        );
        service.register(
            "db_pool_connections_in_use",
            "Database connections checked out of the pool",
            metrics.db_connections_in_use.clone(),
        );
        service.register(
            "db_pool_connections_idle",
            "Open database connections waiting in the pool",
            metrics.db_connections_idle.clone(),
        );
        service.register(
            "db_errors",
            "Database errors by kind (conflict, pool_timeout, connection, query, other)",
            metrics.db_errors.clone(),
        );
        service.register(
            "auth_failures",
            "Rejected credentials and permissions, by reason",
            metrics.auth_failures.clone(),
        );
        service.register(
            "change_events_unknown_kind",
            "Change events of a kind this version does not know (a newer one wrote them), loaded by the change hub and passed on as written",
            metrics.unknown_change_kinds.clone(),
        );
        service.register(
            "purge_runs",
            "Housekeeping runs (retention and deletion-queue purges)",
            metrics.purge_runs.clone(),
        );
        service.register(
            "purged_rows",
            "Rows removed by housekeeping, by kind",
            metrics.purged_rows.clone(),
        );
        service.register(
            "delivery_lag_events",
            "Events in the log past the slowest delivery's cursor on this replica, by kind (webhook, mail)",
            metrics.delivery_lag.clone(),
        );
        service.register(
            "delivery_failing",
            "Deliveries on this replica whose last attempt failed, by kind (webhook, mail)",
            metrics.delivery_failing.clone(),
        );
        service.register(
            "client_connections",
            "Open client connections, those still in their handshake included",
            metrics.client_connections.clone(),
        );
        service.register(
            "users_missing_emergency_location",
            "Users holding a number of a country that requires an emergency location, without one (counted by the housekeeping)",
            metrics.users_missing_emergency_location.clone(),
        );
        service.register(
            "client_connections_closed",
            "Client connections closed, by reason (over_limit: refused at once; handshake_timeout, tls_error, bad_preface, peer_closed: before their HTTP/2 handshake completed; served: by the client; max_age, max_age_grace, idle: asked to go by the server; shutdown)",
            metrics.client_connections_closed.clone(),
        );
        service.register(
            "rate_limited",
            "Calls refused by the per-key rate limits, by the key's role and the limit",
            metrics.rate_limited.clone(),
        );
        for role in ROLES {
            for limit in RateLimit::ALL {
                let _ = metrics.rate_limited.get_or_create(&RoleLimitLabels {
                    role,
                    limit: limit.label(),
                });
            }
        }
        for reason in ConnectionClosed::ALL {
            let _ = metrics
                .client_connections_closed
                .get_or_create(&ReasonLabel {
                    reason: reason.label(),
                });
        }
        // Every series of a bounded label set exists from the start, at 0, so that rate() and
        // alerts see the first increase.
        for kind in DELIVERY_KINDS {
            let _ = metrics.delivery_lag.get_or_create(&KindLabel { kind });
            let _ = metrics.delivery_failing.get_or_create(&KindLabel { kind });
        }
        for kind in DbErrorKind::ALL {
            let _ = metrics
                .db_errors
                .get_or_create(&KindLabel { kind: kind.label() });
        }
        for reason in [
            AuthFailure::MissingCredentials,
            AuthFailure::UnknownKey,
            AuthFailure::Revoked,
            AuthFailure::PermissionDenied,
        ] {
            let _ = metrics.auth_failures.get_or_create(&ReasonLabel {
                reason: reason.label(),
            });
        }
        for kind in [
            PurgeKind::ChangeEvents,
            PurgeKind::IdempotencyRecords,
            PurgeKind::DeletedNumbers,
        ] {
            let _ = metrics
                .purged_rows
                .get_or_create(&KindLabel { kind: kind.label() });
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// The current values, as OpenMetrics text; `pool` refreshes the connection pool gauges.
    pub fn encode(&self, pool: Option<PoolState>) -> String {
        if let Some(pool) = pool {
            self.db_connections_in_use.set(i64::from(pool.in_use));
            self.db_connections_idle.set(i64::from(pool.idle));
        }
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One finished RPC (for a stream: one opened), with its gRPC status code.
pub fn record_rpc(method: RpcMethod, grpc_status_code: i32, elapsed: Duration) {
    if let Some(m) = get() {
        m.rpc_duration
            .get_or_create(&RpcLabels {
                rpc_system: "grpc",
                rpc_service: method.service,
                rpc_method: method.method,
                rpc_grpc_status_code: grpc_status_code,
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// Counts an open watch stream until the returned guard drops.
#[must_use = "the stream counts as open until the guard drops"]
pub fn watch_stream_opened() -> WatchStreamGuard {
    let gauge = get().map(|m| {
        m.watch_streams.inc();
        &m.watch_streams
    });
    WatchStreamGuard { gauge }
}

/// Decrements the open watch streams when dropped.
pub struct WatchStreamGuard {
    gauge: Option<&'static Gauge>,
}

impl Drop for WatchStreamGuard {
    fn drop(&mut self) {
        if let Some(gauge) = self.gauge {
            gauge.dec();
        }
    }
}

/// The hub loaded events up to `sequence`.
pub fn record_hub_sequence(sequence: u64) {
    if let Some(m) = get() {
        let sequence = to_i64(sequence);
        m.hub_sequence.set(sequence);
        raise(&m.newest_sequence, sequence);
        m.update_hub_lag();
    }
}

/// A watcher fell behind the ring and read from the database.
pub fn record_ring_fallback() {
    if let Some(m) = get() {
        m.ring_fallbacks.inc();
    }
}

/// A change event was appended with `sequence`.
pub fn record_event_written(sequence: u64) {
    if let Some(m) = get() {
        m.events_written.inc();
        raise(&m.newest_sequence, to_i64(sequence));
        m.update_hub_lag();
    }
}

/// A call of a key with `role` refused by `limit`.
pub fn record_rate_limited(role: &'static str, limit: RateLimit) {
    if let Some(m) = get() {
        m.rate_limited
            .get_or_create(&RoleLimitLabels {
                role,
                limit: limit.label(),
            })
            .inc();
    }
}

/// The users lacking a required emergency location, as last counted.
pub fn record_users_missing_emergency_location(count: u64) {
    if let Some(m) = get() {
        m.users_missing_emergency_location
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

/// A client connection was accepted and counted in.
pub fn record_connection_opened() {
    if let Some(m) = get() {
        m.client_connections.inc();
    }
}

/// A client connection closed (or, [`ConnectionClosed::OverLimit`], was refused at once).
pub fn record_connection_closed(reason: ConnectionClosed) {
    if let Some(m) = get() {
        if reason != ConnectionClosed::OverLimit {
            m.client_connections.dec();
        }
        m.client_connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }
}

/// One change event of a kind this version does not know, loaded by the change hub.
pub fn record_unknown_change_kind() {
    if let Some(m) = get() {
        m.unknown_change_kinds.inc();
    }
}

/// One database commit carried `size` mutations (group commit).
pub fn record_write_batch(size: usize) {
    if let Some(m) = get() {
        m.write_batch.observe(size as f64);
    }
}

/// A database error, by kind.
pub fn record_db_error(kind: DbErrorKind) {
    if let Some(m) = get() {
        m.db_errors
            .get_or_create(&KindLabel { kind: kind.label() })
            .inc();
    }
}

pub fn record_auth_failure(reason: AuthFailure) {
    if let Some(m) = get() {
        m.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }
}

/// One housekeeping run started.
pub fn record_purge_run() {
    if let Some(m) = get() {
        m.purge_runs.inc();
    }
}

/// The kinds of delivery: the label values of the delivery metrics.
pub const DELIVERY_KINDS: [&str; 2] = ["webhook", "mail"];

/// The deliveries of one kind on this replica: how far the slowest is behind the log, and how
/// many are failing.
pub fn record_delivery_state(kind: &'static str, lag: u64, failing: u64) {
    if let Some(m) = get() {
        m.delivery_lag
            .get_or_create(&KindLabel { kind })
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        m.delivery_failing
            .get_or_create(&KindLabel { kind })
            .set(i64::try_from(failing).unwrap_or(i64::MAX));
    }
}

/// Housekeeping removed `rows` of `kind`.
pub fn record_purged(kind: PurgeKind, rows: u64) {
    if let Some(m) = get() {
        m.purged_rows
            .get_or_create(&KindLabel { kind: kind.label() })
            .inc_by(rows);
    }
}

impl Metrics {
    fn update_hub_lag(&self) {
        let lag = self.newest_sequence.get() - self.hub_sequence.get();
        self.hub_lag.set(lag.max(0));
    }
}

/// Raises `gauge` to `value` if it is lower.
fn raise(gauge: &Gauge, value: i64) {
    let atomic: &AtomicI64 = gauge.inner();
    atomic.fetch_max(value, Ordering::Relaxed);
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
