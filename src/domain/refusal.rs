//! Why one item of a batch was refused, as a record: what its single RPC would have answered (a
//! kind, a message, and the fields a program can act on), so that an idempotent batch's stored
//! answer keeps data, not a transport's encoding. The api layer turns it into a
//! `google.rpc.Status`.

use super::{DomainError, FieldViolation};

/// The kind of a refusal: the gRPC code its single RPC would answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    Unavailable,
    Internal,
}

impl RefusalKind {
    /// Every kind, for round trips through a stored name.
    pub const ALL: [RefusalKind; 11] = [
        Self::InvalidArgument,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::OutOfRange,
        Self::PermissionDenied,
        Self::Unauthenticated,
        Self::ResourceExhausted,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The name a stored refusal keeps (the gRPC code's name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// One refused item: its kind and message, with the details of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// For a person.
    pub message: String,
    pub detail: RefusalDetail,
}

/// What a program can act on, by kind of refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalDetail {
    None,
    /// INVALID_ARGUMENT: each field and what is wrong with it.
    Violations(Vec<FieldViolation>),
    /// NOT_FOUND, ALREADY_EXISTS: the resource's type and name.
    Resource {
        resource: String,
        name: String,
    },
    /// FAILED_PRECONDITION: the machine-readable reason and what it concerns.
    Precondition {
        reason: String,
        subject: String,
    },
}

impl Refusal {
    /// A refusal of `kind` with only a message.
    pub fn plain(kind: RefusalKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            detail: RefusalDetail::None,
        }
    }
}

impl From<DomainError> for Refusal {
    fn from(err: DomainError) -> Self {
        let message = err.to_string();
        let (kind, detail) = match err {
            DomainError::InvalidArgument(violations) => (
                RefusalKind::InvalidArgument,
                RefusalDetail::Violations(violations),
            ),
            DomainError::NotFound { resource, name } => (
                RefusalKind::NotFound,
                RefusalDetail::Resource {
                    resource: resource.to_owned(),
                    name,
                },
            ),
            DomainError::AlreadyExists { resource, name } => (
                RefusalKind::AlreadyExists,
                RefusalDetail::Resource {
                    resource: resource.to_owned(),
                    name,
                },
            ),
            DomainError::FailedPrecondition {
                reason, subject, ..
            } => (
                RefusalKind::FailedPrecondition,
                RefusalDetail::Precondition {
                    reason: reason.to_owned(),
                    subject,
                },
            ),
            DomainError::Aborted(_) => (RefusalKind::Aborted, RefusalDetail::None),
            DomainError::OutOfRange(_) => (RefusalKind::OutOfRange, RefusalDetail::None),
        };
        Self {
            kind,
            message,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_keeps_its_name() {
        for kind in RefusalKind::ALL {
            assert_eq!(RefusalKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(RefusalKind::from_name("LENT"), None);
    }

    #[test]
    fn a_domain_error_keeps_its_details() {
        let refusal = Refusal::from(DomainError::precondition(
            "PHONE_NUMBER_ASSIGNED",
            "+12065550100",
            "the number is assigned",
        ));
        assert_eq!(refusal.kind, RefusalKind::FailedPrecondition);
        assert_eq!(
            refusal.detail,
            RefusalDetail::Precondition {
                reason: "PHONE_NUMBER_ASSIGNED".into(),
                subject: "+12065550100".into()
            }
        );
        let refusal = Refusal::from(DomainError::invalid("email", "is required"));
        assert_eq!(
            refusal.detail,
            RefusalDetail::Violations(vec![FieldViolation::new("email", "is required")])
        );
    }
}
