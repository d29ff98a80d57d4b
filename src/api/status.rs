//! The one place where errors become gRPC statuses: a precise code, a message for a person, and
//! `google.rpc` details where a program can use them (field violations, precondition failures,
//! the resource that was not found). Database failures are counted here, by kind, as they reach
//! a client (`telephony_admin_db_errors_total`).

use std::collections::HashMap;

use sea_orm::{ConnAcquireErr, DbErr};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;
use crate::error::{DbFailure, Error, classify_db_error};
use crate::metrics::{self, DbErrorKind};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
const ERROR_DOMAIN: &str = "telephony.admin.v1";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(err)
    }
}

pub fn to_status(err: Error) -> Status {
    if let Some(kind) = db_error_kind(&err) {
        metrics::record_db_error(kind);
    }
    match err {
        Error::Domain(domain) => domain_status(domain),
        Error::Unauthenticated(message) => Status::unauthenticated(message),
        Error::PermissionDenied(message) => {
            metrics::record_auth_failure(metrics::AuthFailure::PermissionDenied);
            Status::permission_denied(message)
        }
        Error::ResourceExhausted(message) => Status::resource_exhausted(message),
        Error::ShuttingDown => Status::unavailable(
            "the server is shutting down; reconnect and resume with after_sequence set to the last sequence you received",
        ),
        Error::Database(e) => database_status(classify_db_error(&e), &e),
        Error::DatabaseBatch { failure, message } => database_status(failure, &message),
        Error::Internal(message) => {
            tracing::error!(error = %message, "internal error");
            Status::internal("internal error")
        }
    }
}

/// What kind of database failure `err` is, for the metric; `None` when it is not one.
fn db_error_kind(err: &Error) -> Option<DbErrorKind> {
    Some(match err {
        Error::Database(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)) => {
            DbErrorKind::PoolTimeout
        }
        Error::Database(DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) => DbErrorKind::Connection,
        Error::Database(DbErr::Exec(_) | DbErr::Query(_)) => DbErrorKind::Query,
        Error::Database(_) => DbErrorKind::Other,
        // A whole write batch failed; only its classification travelled with it.
        Error::DatabaseBatch {
            failure: DbFailure::Unavailable,
            ..
        } => DbErrorKind::Connection,
        Error::DatabaseBatch { .. } => DbErrorKind::Query,
        lost_race if lost_race.is_conflict() => DbErrorKind::Conflict,
        _ => return None,
    })
}

/// A database failure: the client learns what it can do about it, never the detail, which is
/// logged.
fn database_status(failure: DbFailure, error: &dyn std::fmt::Debug) -> Status {
    match failure {
        DbFailure::Unavailable => {
            tracing::warn!(?error, "database unavailable");
            Status::unavailable("the database is unavailable; retry later")
        }
        DbFailure::OutOfSpace => {
            tracing::error!(?error, "the database is out of disk space");
            Status::resource_exhausted(
                "the database is out of disk space; reads still work, writes fail until space is freed",
            )
        }
        DbFailure::Internal => {
            tracing::error!(?error, "database error");
            Status::internal("internal error")
        }
    }
}

fn domain_status(err: DomainError) -> Status {
    let message = err.to_string();
    match err {
        DomainError::InvalidArgument(violations) => {
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_bad_request_violation(v.field, v.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        DomainError::NotFound { resource, name } => {
            let mut details = ErrorDetails::new();
            details.set_resource_info(resource, name, "", "");
            Status::with_error_details(Code::NotFound, message, details)
        }
        DomainError::AlreadyExists { resource, name } => {
            let mut details = ErrorDetails::new();
            details.set_resource_info(resource, name, "", "");
            Status::with_error_details(Code::AlreadyExists, message, details)
        }
        DomainError::FailedPrecondition {
            reason, subject, ..
        } => {
            let mut details = ErrorDetails::new();
            details.add_precondition_failure_violation(reason, subject, message.clone());
            details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        DomainError::Aborted(_) => Status::aborted(message),
        DomainError::OutOfRange(_) => Status::out_of_range(message),
    }
}

impl From<DomainError> for Status {
    fn from(err: DomainError) -> Self {
        domain_status(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_failures_are_counted_by_kind_and_nothing_else_is() {
        assert_eq!(
            db_error_kind(&Error::conflict()),
            Some(DbErrorKind::Conflict)
        );
        assert_eq!(
            db_error_kind(&Error::Database(DbErr::ConnectionAcquire(
                ConnAcquireErr::Timeout
            ))),
            Some(DbErrorKind::PoolTimeout)
        );
        assert_eq!(
            db_error_kind(&Error::DatabaseBatch {
                failure: DbFailure::Unavailable,
                message: "gone".into(),
            }),
            Some(DbErrorKind::Connection)
        );
        assert_eq!(
            db_error_kind(&Error::Database(DbErr::Type("not a number".into()))),
            Some(DbErrorKind::Other)
        );
        // An atomic batch's items not applied are ABORTED too, but no database failed.
        assert_eq!(
            db_error_kind(&DomainError::Aborted("not applied".into()).into()),
            None
        );
        assert_eq!(db_error_kind(&Error::PermissionDenied("no".into())), None);
    }
}
