//! Users: email addresses, display names and licence types.

use std::str::FromStr;

use super::DomainError;
use super::account::parse_display_text;

pub const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseType {
    Basic,
    Plus,
    Pro,
    ProTrial,
}

/// An email address, normalised to lower case so that uniqueness ignores case.
pub fn parse_email(field: &str, raw: &str) -> Result<String, DomainError> {
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
    let parsed = email_address::EmailAddress::from_str(trimmed)
        .map_err(|e| DomainError::invalid(field, format!("is not a valid email address ({e})")))?;
    // Display names ("Ann <ann@example.com>") are not addresses.
    if parsed.email() != trimmed || !parsed.domain().contains('.') {
        return Err(DomainError::invalid(field, "is not a valid email address"));
    }
    Ok(trimmed.to_lowercase())
}

pub fn parse_display_name(field: &str, raw: &str) -> Result<String, DomainError> {
    parse_display_text(field, raw, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

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
