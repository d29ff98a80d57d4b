//! The rules of the service, free of I/O: what a valid phone number, name or email is, what an
//! assignment, an unassignment or a permission change does, and what the user is told about it.
//!
//! Nothing here knows of gRPC, SQL or tokio; the store asks these functions for decisions inside
//! its transactions, and the API uses them to validate input.

pub mod account;
pub mod change;
pub mod emergency;
pub mod error;
pub mod ids;
pub mod phone_number;
pub mod refusal;
pub mod role;
pub mod sign_out;
pub mod telephony;
pub mod user;
pub mod webhook;

pub use error::{DomainError, FieldViolation};
pub use refusal::{Refusal, RefusalDetail, RefusalKind};

/// Shortens untrusted text before it is echoed back in a message.
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max_chars).collect::<String>())
    }
}
