//! Identifiers, each a type of its own so that one cannot be given where another is wanted:
//! accounts, users, number orders, webhooks, API keys, emergency addresses and locations, and the `request_id` that makes a
//! request idempotent. All are UUIDs in canonical lower-case hyphenated form: parsed once at
//! the edge ([`AccountId::parse`]), or read back as the store wrote them
//! ([`AccountId::from_stored`]).

use std::fmt;

use super::DomainError;
use super::account::{new_id, parse_id};

/// An account's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

/// A user's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

/// A number order's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

/// A webhook's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookId(String);

/// An API key's identifier (not its secret).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

/// An emergency (civic) address's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressId(String);

/// An emergency location's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocationId(String);

/// The caller's identifier of one request, which makes its retries idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);

macro_rules! identifier {
    ($name:ident) => {
        impl $name {
            /// A UUID, in any case; kept in its canonical lower-case form.
            pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
                parse_id(field, raw).map(Self)
            }

            /// A new identifier, ordered by creation time.
            pub fn generate() -> Self {
                Self(new_id())
            }

            /// An identifier as the store wrote it (canonical already): not checked again.
            pub fn from_stored(stored: String) -> Self {
                Self(stored)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

identifier!(AccountId);
identifier!(UserId);
identifier!(OrderId);
identifier!(WebhookId);
identifier!(KeyId);
identifier!(RequestId);
identifier!(AddressId);
identifier!(LocationId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_must_be_given() {
        let err = AccountId::parse("account_id", "").unwrap_err();
        assert_eq!(err, DomainError::invalid("account_id", "is required"));
    }

    #[test]
    fn an_id_must_be_a_uuid() {
        assert_eq!(
            UserId::parse("user_id", "not-a-uuid").unwrap_err(),
            DomainError::invalid("user_id", "must be a UUID")
        );
    }

    #[test]
    fn an_id_is_kept_in_canonical_lower_case() {
        let id = AccountId::parse("account_id", "6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
        assert_eq!(id.as_str(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(id.to_string(), id.as_str());
        let generated = UserId::generate();
        assert_eq!(UserId::parse("user_id", generated.as_str()), Ok(generated));
    }
}
