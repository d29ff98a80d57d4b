//! The bounded label values of the service's metrics: each enum is one label's whole set, so
//! that a series exists (at 0) for every value from the start.

/// What went wrong with the database, in a bounded set: the `kind` label of
/// `telephony_admin_db_errors_total`. The layer that handles an error says which it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// A race lost to a concurrent transaction (answered ABORTED).
    Conflict,
    /// No connection could be had from the pool in time.
    PoolTimeout,
    /// The connection failed or could not be made.
    Connection,
    /// A statement failed.
    Query,
    Other,
}

impl DbErrorKind {
    pub(crate) const ALL: [DbErrorKind; 5] = [
        DbErrorKind::Conflict,
        DbErrorKind::PoolTimeout,
        DbErrorKind::Connection,
        DbErrorKind::Query,
        DbErrorKind::Other,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            DbErrorKind::Conflict => "conflict",
            DbErrorKind::PoolTimeout => "pool_timeout",
            DbErrorKind::Connection => "connection",
            DbErrorKind::Query => "query",
            DbErrorKind::Other => "other",
        }
    }
}

/// Why credentials or permissions were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No usable `authorization: Bearer` metadata.
    MissingCredentials,
    /// The secret matches no active key.
    UnknownKey,
    /// An open watch stream's key was revoked.
    Revoked,
    /// A valid key without the role or scope for the request.
    PermissionDenied,
}

impl AuthFailure {
    pub(crate) fn label(self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing_credentials",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::Revoked => "revoked",
            AuthFailure::PermissionDenied => "permission_denied",
        }
    }
}

/// What housekeeping removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeKind {
    ChangeEvents,
    IdempotencyRecords,
    DeletedNumbers,
}

impl PurgeKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            PurgeKind::ChangeEvents => "change_events",
            PurgeKind::IdempotencyRecords => "idempotency_records",
            PurgeKind::DeletedNumbers => "deleted_numbers",
        }
    }
}

/// Which rate limit refused a call: the `limit` label of `telephony_admin_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Calls (a batch: its items) per key.
    Requests,
    /// WatchChanges opens per key.
    WatchOpens,
}

impl RateLimit {
    pub(crate) const ALL: [RateLimit; 2] = [RateLimit::Requests, RateLimit::WatchOpens];

    pub fn label(self) -> &'static str {
        match self {
            RateLimit::Requests => "requests",
            RateLimit::WatchOpens => "watch_opens",
        }
    }
}

/// Why a client connection closed (or was refused): the `reason` label of
/// `telephony_admin_client_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionClosed {
    /// Refused at once: `--max-connections` were open.
    OverLimit,
    /// No complete handshake within `--handshake-timeout`.
    HandshakeTimeout,
    /// The TLS handshake failed.
    TlsError,
    /// The client's first bytes were not an HTTP/2 client preface with its SETTINGS.
    BadPreface,
    /// The client closed the connection during the handshake.
    PeerClosed,
    /// Closed after its handshake by the client, or by an error: served.
    Served,
    /// Asked to go at `--max-connection-age`, and closed once its calls ended.
    MaxAge,
    /// Asked to go at `--max-connection-age`, and closed at the end of the grace with calls
    /// still open.
    MaxAgeGrace,
    /// Asked to go after `--max-connection-idle` without an open call.
    Idle,
    /// Closed because the server stopped (in its handshake, or asked to go).
    Shutdown,
}

impl ConnectionClosed {
    pub(crate) const ALL: [ConnectionClosed; 10] = [
        ConnectionClosed::OverLimit,
        ConnectionClosed::HandshakeTimeout,
        ConnectionClosed::TlsError,
        ConnectionClosed::BadPreface,
        ConnectionClosed::PeerClosed,
        ConnectionClosed::Served,
        ConnectionClosed::MaxAge,
        ConnectionClosed::MaxAgeGrace,
        ConnectionClosed::Idle,
        ConnectionClosed::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConnectionClosed::OverLimit => "over_limit",
            ConnectionClosed::HandshakeTimeout => "handshake_timeout",
            ConnectionClosed::TlsError => "tls_error",
            ConnectionClosed::BadPreface => "bad_preface",
            ConnectionClosed::PeerClosed => "peer_closed",
            ConnectionClosed::Served => "served",
            ConnectionClosed::MaxAge => "max_age",
            ConnectionClosed::MaxAgeGrace => "max_age_grace",
            ConnectionClosed::Idle => "idle",
            ConnectionClosed::Shutdown => "shutdown",
        }
    }
}
