//! The domain's error type: every way a request can break a rule, with a message for a person.

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// A broken rule. Each variant corresponds to one gRPC status code (see `api::status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The request itself is malformed.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),

    /// The thing named does not exist (or is not visible to the caller).
    #[error("{resource} {name} not found")]
    NotFound {
        resource: &'static str,
        name: String,
    },

    /// The thing to create exists already.
    #[error("{resource} {name} already exists")]
    AlreadyExists {
        resource: &'static str,
        name: String,
    },

    /// The request is well-formed but the current state forbids it. `reason` is a stable,
    /// machine-readable code (UPPER_SNAKE_CASE) for `google.rpc.PreconditionFailure`.
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        subject: String,
        message: String,
    },

    /// A concurrent request won a race; the caller may retry.
    #[error("{0}")]
    Aborted(String),

    /// A value is outside the range the service keeps (e.g. a compacted change sequence).
    #[error("{0}")]
    OutOfRange(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl DomainError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn precondition(
        reason: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::FailedPrecondition {
            reason,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// Collects field violations so that a request reports all its bad fields at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value of `result`, or records its violations and returns `None`.
    pub fn check<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(DomainError::InvalidArgument(mut found)) => {
                self.0.append(&mut found);
                None
            }
            Err(other) => {
                self.0
                    .push(FieldViolation::new("request", other.to_string()));
                None
            }
        }
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidArgument(self.0))
        }
    }
}

/// All three values, or every violation among them.
pub fn all3<A, B, C>(
    a: Result<A, DomainError>,
    b: Result<B, DomainError>,
    c: Result<C, DomainError>,
) -> Result<(A, B, C), DomainError> {
    match (a, b, c) {
        (Ok(a), Ok(b), Ok(c)) => Ok((a, b, c)),
        (a, b, c) => {
            let mut violations = Violations::new();
            violations.check(a);
            violations.check(b);
            violations.check(c);
            violations.finish()?;
            Err(DomainError::invalid("request", "is invalid"))
        }
    }
}
