//! The crate's error type. Every failure a request can meet is one of these; `api::status`
//! turns it into a `tonic::Status` in one place.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

use crate::domain::DomainError;

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

    /// The server is stopping; the client should reconnect (to another replica) and resume.
    #[error("the server is shutting down")]
    ShuttingDown,

    /// The database failed; the message for the client stays generic.
    #[error("database error: {0}")]
    Database(DbErr),

    /// Anything else that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<DbErr> for Error {
    /// Races lost to a concurrent transaction become ABORTED (retryable); the rest stay
    /// database errors.
    fn from(err: DbErr) -> Self {
        if is_conflict(&err) {
            return Error::conflict();
        }
        Error::Database(err)
    }
}

impl Error {
    /// A race lost to a concurrent transaction: ABORTED, the client may retry.
    pub fn conflict() -> Self {
        Error::Domain(DomainError::Aborted(
            "the request conflicted with a concurrent change; retry it".into(),
        ))
    }
}

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
