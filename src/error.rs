//! The crate's error type. Every failure a request can meet is one of these; `api::status`
//! turns it into a `tonic::Status` in one place.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::domain::{DomainError, Refusal, RefusalKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A broken rule or bad input.
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),

    /// Valid credentials, but not for this.
    #[error("{0}")]
    PermissionDenied(String),

    /// A configured limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),

    /// The caller's rate limit: retry after a while.
    #[error("{}", .0.message)]
    RateLimited(Throttle),

    /// The server is stopping; the client should reconnect (to another replica) and resume.
    #[error("the server is shutting down")]
    ShuttingDown,

    /// The database failed; [`classify_db_error`] says how, and the message for the client
    /// stays generic.
    #[error("database error: {0}")]
    Database(DbErr),

    /// The failure of a whole write batch, given to each of its mutations: `DbErr` is not
    /// `Clone`, so each gets the original's classification and text.
    #[error("database error: {message}")]
    DatabaseBatch { failure: DbFailure, message: String },

    /// Anything else that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A call refused by a rate limit: when it can succeed, and which limit refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    pub message: String,
    pub retry_after: std::time::Duration,
    /// What the limit applies to, e.g. `api_key:<id>`.
    pub subject: String,
    /// The limit, in words.
    pub description: String,
    /// The limit's name (`requests`, `watch_opens`).
    pub limit: &'static str,
}

impl From<DbErr> for Error {
    /// Races lost to a concurrent transaction become ABORTED (retryable); the rest stay
    /// database errors. Nothing is recorded here: whoever handles the error observes it (the
    /// database error metric is counted where errors become statuses, in `api::status`).
    fn from(err: DbErr) -> Self {
        if is_conflict(&err) {
            return Error::conflict();
        }
        Error::Database(err)
    }
}

impl Error {
    /// What a key is told about anything outside its account: no more than that.
    pub fn outside_scope() -> Self {
        Error::PermissionDenied("the target is outside this API key's account".into())
    }

    /// A race lost to a concurrent transaction: ABORTED, the client may retry.
    pub fn conflict() -> Self {
        Error::Domain(DomainError::Aborted(CONFLICT.into()))
    }

    /// Whether this is a race lost to a concurrent transaction ([`Error::conflict`]), as opposed
    /// to another ABORTED answer (an atomic batch's items not applied).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Domain(DomainError::Aborted(message)) if message == CONFLICT)
    }
}

/// The message of [`Error::conflict`].
const CONFLICT: &str = "the request conflicted with a concurrent change; retry it";

/// Whether the error is a unique/foreign-key violation, a serialization failure, a deadlock
/// or a busy SQLite database: outcomes of concurrent writers, not of bad requests.
pub fn is_conflict(err: &DbErr) -> bool {
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return true;
    }
    matches!(
        database_code(err).as_deref(),
        // PostgreSQL: serialization_failure, deadlock_detected. SQLite: BUSY, LOCKED, BUSY_SNAPSHOT.
        Some("40001" | "40P01" | "5" | "6" | "517")
    )
}

/// Whether the error is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// What a database failure means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The database cannot be reached or is overloaded (connection, pool, a server shutting
    /// down): retrying later may succeed.
    Unavailable,
    /// The database has no space left: writes fail until an operator frees some.
    OutOfSpace,
    /// Deterministic: a violated constraint, a value that does not decode, a schema that does
    /// not match. Retrying cannot help.
    Internal,
}

/// Classifies a database failure that is not a lost race (see [`is_conflict`]).
pub fn classify_db_error(err: &DbErr) -> DbFailure {
    match err {
        DbErr::ConnectionAcquire(_) => DbFailure::Unavailable,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => classify_sqlx_error(e),
        // A connection-level failure sea-orm reports without a driver error.
        DbErr::Conn(_) => DbFailure::Unavailable,
        _ => DbFailure::Internal,
    }
}

fn classify_sqlx_error(err: &sqlx::Error) -> DbFailure {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbFailure::Unavailable,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes: the primary code is the low byte.
                match code.parse::<i32>().map(|c| c & 0xff) {
                    // FULL.
                    Ok(13) => DbFailure::OutOfSpace,
                    // BUSY, LOCKED, IOERR, CANTOPEN.
                    Ok(5 | 6 | 10 | 14) => DbFailure::Unavailable,
                    _ => DbFailure::Internal,
                }
            } else {
                match code.as_ref() {
                    "53100" => DbFailure::OutOfSpace,
                    // Connection exceptions (class 08), insufficient resources (53), operator
                    // intervention (57: shutdown, cannot connect now), serialization failure
                    // and deadlock.
                    c if c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57")
                        || c == "40001"
                        || c == "40P01" =>
                    {
                        DbFailure::Unavailable
                    }
                    _ => DbFailure::Internal,
                }
            }
        }
        _ => DbFailure::Internal,
    }
}

fn database_code(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// An error as the record of what a client is told: the kind (its gRPC code), the message and
/// the details. A database failure says what the client can do about it, never the detail.
impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        match err {
            Error::Domain(domain) => domain.into(),
            Error::Unauthenticated(message) => {
                Refusal::plain(RefusalKind::Unauthenticated, message)
            }
            Error::PermissionDenied(message) => {
                Refusal::plain(RefusalKind::PermissionDenied, message)
            }
            Error::ResourceExhausted(message) => {
                Refusal::plain(RefusalKind::ResourceExhausted, message)
            }
            // A whole request's refusal, never an item's: its details are added by the API.
            Error::RateLimited(throttle) => {
                Refusal::plain(RefusalKind::ResourceExhausted, throttle.message)
            }
            Error::ShuttingDown => Refusal::plain(
                RefusalKind::Unavailable,
                "the server is shutting down; reconnect and resume with after_sequence set to the last sequence you received",
            ),
            Error::Database(e) => database_refusal(classify_db_error(&e)),
            Error::DatabaseBatch { failure, .. } => database_refusal(failure),
            Error::Internal(_) => Refusal::plain(RefusalKind::Internal, "internal error"),
        }
    }
}

fn database_refusal(failure: DbFailure) -> Refusal {
    match failure {
        DbFailure::Unavailable => Refusal::plain(
            RefusalKind::Unavailable,
            "the database is unavailable; retry later",
        ),
        DbFailure::OutOfSpace => Refusal::plain(
            RefusalKind::ResourceExhausted,
            "the database is out of disk space; reads still work, writes fail until space is freed",
        ),
        DbFailure::Internal => Refusal::plain(RefusalKind::Internal, "internal error"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::ConnAcquireErr;

    use super::*;

    fn query(err: sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
    }

    #[test]
    fn connection_and_pool_failures_are_unavailable() {
        assert_eq!(
            classify_db_error(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
            DbFailure::Unavailable
        );
        assert_eq!(
            classify_db_error(&query(sqlx::Error::PoolTimedOut)),
            DbFailure::Unavailable
        );
        assert_eq!(
            classify_db_error(&query(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            )))),
            DbFailure::Unavailable
        );
    }

    #[test]
    fn decode_and_logic_failures_are_internal() {
        assert_eq!(
            classify_db_error(&DbErr::Type("not a timestamp".into())),
            DbFailure::Internal
        );
        assert_eq!(
            classify_db_error(&query(sqlx::Error::ColumnNotFound("display_name".into()))),
            DbFailure::Internal
        );
        assert_eq!(
            classify_db_error(&DbErr::RecordNotFound("x".into())),
            DbFailure::Internal
        );
    }
}
