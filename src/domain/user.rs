//! Users: email addresses, display names and licence types.

use std::fmt;
use std::str::FromStr;

use super::DomainError;
use super::account::parse_display_text;

pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseType {
    Basic,
    Plus,
    Pro,
    ProTrial,
}

/// An email address, trimmed and in lower case so that uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Required, at most 254 characters, a plain address (no display name) whose domain has a
    /// dot.
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid(field, "is required"));
        }
        if trimmed.chars().count() > MAX_EMAIL_CHARS {
            return Err(DomainError::invalid(
                field,
                format!("must be at most {MAX_EMAIL_CHARS} characters"),
            ));
        }
        let parsed = email_address::EmailAddress::from_str(trimmed).map_err(|e| {
            DomainError::invalid(field, format!("is not a valid email address ({e})"))
        })?;
        // Display names ("Ann <ann@example.com>") are not addresses.
        if parsed.email() != trimmed || !parsed.domain().contains('.') {
            return Err(DomainError::invalid(field, "is not a valid email address"));
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

/// The address as text; see [`Email::parse`].
pub fn parse_email(field: &str, raw: &str) -> Result<String, DomainError> {
    Email::parse(field, raw).map(String::from)
}

/// A user's name as shown in the console.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trimmed, non-empty, at most 100 characters, no control characters.
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        parse_display_text(field, raw, MAX_DISPLAY_NAME_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DisplayName> for String {
    fn from(name: DisplayName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<impl fmt::Debug, DomainError>) -> String {
        match result {
            Err(DomainError::InvalidArgument(v)) => v[0].description.clone(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn an_email_is_required() {
        assert_eq!(refused(Email::parse("email", "  ")), "is required");
    }

    #[test]
    fn an_email_is_at_most_254_characters() {
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.chars().count(), 255);
        assert_eq!(
            refused(Email::parse("email", &long)),
            "must be at most 254 characters"
        );
    }

    #[test]
    fn an_email_is_a_plain_address_without_a_display_name() {
        assert_eq!(
            refused(Email::parse("email", "Ann <ann@example.com>")),
            "is not a valid email address"
        );
        assert!(
            refused(Email::parse("email", "ann")).starts_with("is not a valid email address (")
        );
    }

    #[test]
    fn an_email_domain_has_a_dot() {
        assert_eq!(
            refused(Email::parse("email", "ann@example")),
            "is not a valid email address"
        );
    }

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        let email = Email::parse("email", " Ann@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ann@example.com");
        assert_eq!(email.to_string(), "ann@example.com");
    }

    #[test]
    fn a_display_name_must_not_be_empty() {
        assert_eq!(
            refused(DisplayName::parse("display_name", "   ")),
            "must not be empty"
        );
    }

    #[test]
    fn a_display_name_is_at_most_100_characters() {
        assert!(DisplayName::parse("display_name", &"é".repeat(100)).is_ok());
        assert_eq!(
            refused(DisplayName::parse("display_name", &"x".repeat(101))),
            "must be at most 100 characters"
        );
    }

    #[test]
    fn a_display_name_has_no_control_characters() {
        assert_eq!(
            refused(DisplayName::parse("display_name", "Ann\u{7}")),
            "must not contain control characters"
        );
    }

    #[test]
    fn a_display_name_is_trimmed() {
        let name = DisplayName::parse("display_name", "  Ann Lee ").unwrap();
        assert_eq!(name.as_str(), "Ann Lee");
        assert_eq!(name.to_string(), "Ann Lee");
    }

    #[test]
    fn emails_are_validated_and_lower_cased() {
        assert_eq!(
            parse_email("email", " Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "Ann <ann@example.com>",
            "a b@example.com",
        ] {
            assert!(parse_email("email", bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_email("email", &format!("{}@example.com", "a".repeat(300))).is_err());
    }
}
