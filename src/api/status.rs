//! The one place where errors become gRPC statuses: a precise code, a message for a person, and
//! `google.rpc` details where a program can use them (field violations, precondition failures,
//! the resource that was not found).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;
use crate::error::{DbFailure, Error, classify_db_error};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
const ERROR_DOMAIN: &str = "telephony.admin.v1";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(err)
    }
}

pub fn to_status(err: Error) -> Status {
    match err {
        Error::Domain(domain) => domain_status(domain),
        Error::Unauthenticated(message) => Status::unauthenticated(message),
        Error::PermissionDenied(message) => {
            crate::metrics::record_auth_failure(crate::metrics::AuthFailure::PermissionDenied);
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
