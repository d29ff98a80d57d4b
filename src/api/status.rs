//! The one place where errors become gRPC statuses: a precise code, a message for a person, and
//! `google.rpc` details where a program can use them (field violations, precondition failures,
//! the resource that was not found). An error becomes its [`Refusal`] record first (the form a
//! batch item's refusal is kept in), and every status is built from such a record. Database
//! failures are counted here, by kind, as they reach a client (`telephony_admin_db_errors_total`).

use std::collections::HashMap;

use sea_orm::{ConnAcquireErr, DbErr};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{DomainError, Refusal, RefusalDetail, RefusalKind};
use crate::error::{DbFailure, Error, Throttle, classify_db_error};
use crate::metrics::{self, DbErrorKind};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
const ERROR_DOMAIN: &str = "telephony.admin.v1";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(err)
    }
}

pub fn to_status(err: Error) -> Status {
    observe(&err);
    if let Error::RateLimited(throttle) = err {
        return throttled_status(throttle);
    }
    refusal_status(&Refusal::from(err))
}

/// RESOURCE_EXHAUSTED with when to retry (`RetryInfo`), which limit (`QuotaFailure`) and the
/// reason (`ErrorInfo`, `RATE_LIMIT_EXCEEDED`).
fn throttled_status(throttle: Throttle) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(throttle.retry_after));
    details.add_quota_failure_violation(throttle.subject, throttle.description);
    details.set_error_info(
        "RATE_LIMIT_EXCEEDED",
        ERROR_DOMAIN,
        HashMap::from([("limit".to_owned(), throttle.limit.to_owned())]),
    );
    Status::with_error_details(Code::ResourceExhausted, throttle.message, details)
}

/// Logs and counts what an operator must hear of; the client hears of it through the status.
fn observe(err: &Error) {
    if let Some(kind) = db_error_kind(err) {
        metrics::record_db_error(kind);
    }
    match err {
        Error::PermissionDenied(_) => {
            metrics::record_auth_failure(metrics::AuthFailure::PermissionDenied)
        }
        Error::Database(e) => log_database_failure(classify_db_error(e), e),
        Error::DatabaseBatch { failure, message } => log_database_failure(*failure, message),
        Error::Internal(message) => tracing::error!(error = %message, "internal error"),
        _ => {}
    }
}

fn log_database_failure(failure: DbFailure, error: &dyn std::fmt::Debug) {
    match failure {
        DbFailure::Unavailable => tracing::warn!(?error, "database unavailable"),
        DbFailure::OutOfSpace => tracing::error!(?error, "the database is out of disk space"),
        DbFailure::Internal => tracing::error!(?error, "database error"),
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

/// The status a refusal stands for.
pub fn refusal_status(refusal: &Refusal) -> Status {
    let code = code_of(refusal.kind);
    let message = refusal.message.clone();
    let mut details = ErrorDetails::new();
    match &refusal.detail {
        RefusalDetail::None => return Status::new(code, message),
        RefusalDetail::Violations(violations) => {
            for v in violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
        }
        RefusalDetail::Resource { resource, name } => {
            details.set_resource_info(resource.clone(), name.clone(), "", "");
        }
        RefusalDetail::Precondition { reason, subject } => {
            details.add_precondition_failure_violation(
                reason.clone(),
                subject.clone(),
                message.clone(),
            );
            details.set_error_info(reason.clone(), ERROR_DOMAIN, HashMap::new());
        }
    }
    Status::with_error_details(code, message, details)
}

fn code_of(kind: RefusalKind) -> Code {
    match kind {
        RefusalKind::InvalidArgument => Code::InvalidArgument,
        RefusalKind::NotFound => Code::NotFound,
        RefusalKind::AlreadyExists => Code::AlreadyExists,
        RefusalKind::FailedPrecondition => Code::FailedPrecondition,
        RefusalKind::Aborted => Code::Aborted,
        RefusalKind::OutOfRange => Code::OutOfRange,
        RefusalKind::PermissionDenied => Code::PermissionDenied,
        RefusalKind::Unauthenticated => Code::Unauthenticated,
        RefusalKind::ResourceExhausted => Code::ResourceExhausted,
        RefusalKind::Unavailable => Code::Unavailable,
        RefusalKind::Internal => Code::Internal,
    }
}

impl From<DomainError> for Status {
    fn from(err: DomainError) -> Self {
        refusal_status(&Refusal::from(err))
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
