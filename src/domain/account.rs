//! Accounts: validation of names and identifiers.

use super::DomainError;

pub const MAX_NAME_CHARS: usize = 100;

/// A trimmed account name of 1 to 100 printable characters.
pub fn parse_account_name(field: &str, raw: &str) -> Result<String, DomainError> {
    parse_display_text(field, raw, MAX_NAME_CHARS)
}

/// Trimmed, non-empty, at most `max_chars` characters, no control characters.
pub fn parse_display_text(field: &str, raw: &str, max_chars: usize) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Identifiers are UUIDs in their canonical lower-case hyphenated form.
pub fn parse_id(field: &str, raw: &str) -> Result<String, DomainError> {
    if raw.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    uuid::Uuid::try_parse(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| DomainError::invalid(field, "must be a UUID"))
}

/// A new identifier; version 7 UUIDs sort by creation time, which keeps listings in creation order.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_account_name("name", "  Acme  ").unwrap(), "Acme");
        assert!(parse_account_name("name", "   ").is_err());
        assert!(parse_account_name("name", &"x".repeat(101)).is_err());
        assert!(parse_account_name("name", &"é".repeat(100)).is_ok());
        assert!(parse_account_name("name", "a\u{0}b").is_err());
    }

    #[test]
    fn ids_must_be_uuids() {
        let id = new_id();
        assert_eq!(parse_id("account_id", &id).unwrap(), id);
        assert_eq!(
            parse_id("x", "6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap(),
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        assert!(parse_id("x", "").is_err());
        assert!(parse_id("x", "not-a-uuid").is_err());
    }
}
