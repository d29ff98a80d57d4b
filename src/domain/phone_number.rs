//! Phone numbers: parsing and normalising E.164 numbers with libphonenumber's rules, the kinds of
//! number and product, the life cycle of a number in the inventory, and calling names.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use phonenumber::{Mode, Type};

use super::DomainError;

/// Longest raw input accepted before parsing (formatting characters included).
const MAX_RAW_CHARS: usize = 64;
/// E.164 numbers have at most 15 digits, the country code included.
const MAX_E164_DIGITS: usize = 15;

/// A phone number that can exist, in its canonical E.164 form (`+12065550100`): parsed once at
/// the edge ([`E164::parse`]), or read back as the store wrote it ([`E164::from_stored`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164 {
    canonical: String,
}

/// Whether callers pay for calls to the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberType {
    Local,
    TollFree,
}

impl E164 {
    /// Parses any common international notation (`+1 (206) 555-0100`, `+1.206.555.0100`, …).
    /// The number must carry its country code and be valid for that country.
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid(field, "is required"));
        }
        if trimmed.chars().count() > MAX_RAW_CHARS {
            return Err(DomainError::invalid(
                field,
                "is too long to be a phone number",
            ));
        }
        // Digits and the usual separators only: no letters (vanity spellings), control
        // characters or trailing junk that the parser would otherwise skip or translate.
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '/')))
        {
            return Err(DomainError::invalid(
                field,
                format!("may contain only digits, spaces and + - . ( ) /, not {bad:?}"),
            ));
        }
        if trimmed.matches('+').count() != 1 {
            return Err(DomainError::invalid(
                field,
                "must contain exactly one '+', before the country code",
            ));
        }
        if !trimmed.starts_with('+') {
            return Err(DomainError::invalid(
                field,
                "must be in international form with a leading '+' and the country code (E.164)",
            ));
        }
        let parsed = phonenumber::parse(None, trimmed).map_err(|e| {
            DomainError::invalid(field, format!("{trimmed:?} is not a phone number ({e})"))
        })?;
        // Extensions are not part of an E.164 number; refuse rather than silently drop them.
        if parsed.extension().is_some() || !phonenumber::is_valid(&parsed) {
            return Err(DomainError::invalid(
                field,
                format!("{trimmed:?} is not a valid phone number for its country code"),
            ));
        }
        if country_of(&parsed).is_none() {
            return Err(DomainError::invalid(
                field,
                format!("{trimmed:?} belongs to no country"),
            ));
        }
        let canonical = parsed.format().mode(Mode::E164).to_string();
        // libphonenumber's metadata admits some national numbers (German mobile ranges, for
        // one) longer than E.164 allows: such a number could not be dialled internationally.
        if canonical.len() - 1 > MAX_E164_DIGITS {
            return Err(DomainError::invalid(
                field,
                format!(
                    "{trimmed:?} has more than {MAX_E164_DIGITS} digits, the most E.164 allows"
                ),
            ));
        }
        Ok(Self { canonical })
    }

    /// A number as the store wrote it (canonical already): not checked again.
    pub fn from_stored(stored: String) -> Self {
        Self { canonical: stored }
    }

    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// ISO 3166-1 alpha-2 region code, and whether callers pay: worked out from the number
    /// (libphonenumber's metadata), for the few places that need them.
    pub fn classify(&self) -> (String, NumberType) {
        match phonenumber::parse(None, &self.canonical) {
            Ok(parsed) => (country_of(&parsed).unwrap_or_default(), type_of(&parsed)),
            Err(_) => (String::new(), NumberType::Local),
        }
    }

    pub fn number_type(&self) -> NumberType {
        self.classify().1
    }
}

fn country_of(parsed: &phonenumber::PhoneNumber) -> Option<String> {
    parsed.country().id().map(|id| id.as_ref().to_owned())
}

fn type_of(parsed: &phonenumber::PhoneNumber) -> NumberType {
    match parsed.number_type(&phonenumber::metadata::DATABASE) {
        Type::TollFree => NumberType::TollFree,
        _ => NumberType::Local,
    }
}

/// Loads libphonenumber's metadata now, so that the first request does not pay for it.
pub fn warm_up() {
    let _ = phonenumber::parse(None, "+12065550100");
}

impl From<E164> for String {
    fn from(number: E164) -> String {
        number.canonical
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// What a number is used for; only BUSINESS_CALLING numbers can be given to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductType {
    BusinessCalling,
    VoiceConnector,
    SipMediaApplicationDialIn,
}

impl ProductType {
    /// The product's name, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BusinessCalling => "BUSINESS_CALLING",
            Self::VoiceConnector => "VOICE_CONNECTOR",
            Self::SipMediaApplicationDialIn => "SIP_MEDIA_APPLICATION_DIAL_IN",
        }
    }
}

/// Where a number is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberStatus {
    Unassigned,
    Assigned,
    DeleteInProgress,
}

/// How an order went: every number acquired, some of them, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Successful,
    Partial,
    Failed,
}

impl OrderStatus {
    /// The status of an order that acquired `acquired` of `requested` numbers.
    pub fn of(acquired: usize, requested: usize) -> Self {
        match acquired {
            0 => Self::Failed,
            n if n == requested => Self::Successful,
            _ => Self::Partial,
        }
    }
}

/// Toll-free numbers are for contact centres (Voice Connector, SIP media applications), not for
/// a person's business calling.
pub fn check_product_type(number: &E164, product: ProductType) -> Result<(), DomainError> {
    if number.number_type() == NumberType::TollFree && product == ProductType::BusinessCalling {
        return Err(DomainError::invalid(
            "product_type",
            format!("{number} is toll-free; toll-free numbers cannot be BUSINESS_CALLING"),
        ));
    }
    Ok(())
}

/// The caller-ID name shown for outbound calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CallingName(String);

impl CallingName {
    /// Empty, or 2 to 15 ASCII letters, digits and spaces, kept as given.
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let count = raw.chars().count();
        if !(2..=15).contains(&count) {
            return Err(DomainError::invalid(
                field,
                "must be empty or 2 to 15 characters long",
            ));
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
            return Err(DomainError::invalid(
                field,
                "may contain only letters, digits and spaces",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CallingName> for String {
    fn from(name: CallingName) -> String {
        name.0
    }
}

/// The name as text; see [`CallingName::parse`].
pub fn parse_calling_name(field: &str, raw: &str) -> Result<String, DomainError> {
    CallingName::parse(field, raw).map(String::from)
}

/// The current state of a number, as far as the rules below need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberState {
    pub e164: E164,
    pub status: NumberStatus,
    pub product_type: ProductType,
    pub deletion_time: Option<DateTime<Utc>>,
}

/// When a number deleted at `now` is purged: after the configured deletion-queue period.
pub fn deletion_time(now: DateTime<Utc>, period: Duration) -> DateTime<Utc> {
    now.checked_add_signed(period)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Deleting is allowed for unassigned numbers only.
pub fn check_delete(number: &NumberState) -> Result<(), DomainError> {
    match number.status {
        NumberStatus::Unassigned => Ok(()),
        NumberStatus::Assigned => Err(DomainError::precondition(
            "PHONE_NUMBER_ASSIGNED",
            number.e164.as_str(),
            format!(
                "phone number {} is assigned to a user; unassign it before deleting it",
                number.e164
            ),
        )),
        NumberStatus::DeleteInProgress => Err(DomainError::precondition(
            "PHONE_NUMBER_DELETE_IN_PROGRESS",
            number.e164.as_str(),
            format!(
                "phone number {} is already in the deletion queue",
                number.e164
            ),
        )),
    }
}

/// Restoring is allowed while the number waits in the deletion queue. A number whose deletion
/// time has passed is gone, even if the purge has not run yet.
pub fn check_restore(number: &NumberState, now: DateTime<Utc>) -> Result<(), DomainError> {
    match number.status {
        NumberStatus::DeleteInProgress => match number.deletion_time {
            Some(at) if at <= now => Err(DomainError::NotFound {
                resource: "phone number",
                name: number.e164.to_string(),
            }),
            _ => Ok(()),
        },
        _ => Err(DomainError::precondition(
            "PHONE_NUMBER_NOT_DELETED",
            number.e164.as_str(),
            format!("phone number {} is not in the deletion queue", number.e164),
        )),
    }
}

/// Whether the number is visible at `now` (a number past its deletion time no longer exists).
pub fn exists_at(number: &NumberState, now: DateTime<Utc>) -> bool {
    !matches!(
        (number.status, number.deletion_time),
        (NumberStatus::DeleteInProgress, Some(at)) if at <= now
    )
}

/// An assigned number must stay BUSINESS_CALLING; a product type must suit the number.
pub fn check_product_type_change(
    number: &NumberState,
    parsed: &E164,
    new_type: ProductType,
) -> Result<(), DomainError> {
    check_product_type(parsed, new_type)?;
    if number.status == NumberStatus::Assigned && new_type != number.product_type {
        return Err(DomainError::precondition(
            "PHONE_NUMBER_ASSIGNED",
            number.e164.as_str(),
            format!(
                "phone number {} is assigned to a user; unassign it before changing its product type",
                number.e164
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_variants_normalise_to_one_number() {
        let a = E164::parse("n", "+1 (206) 555-0100").unwrap();
        let b = E164::parse("n", "+12065550100").unwrap();
        let c = E164::parse("n", " +1.206.555.0100 ").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.as_str(), "+12065550100");
        assert_eq!(a.classify(), ("US".to_owned(), NumberType::Local));
    }

    #[test]
    fn toll_free_and_foreign_numbers_are_recognised() {
        let toll_free = E164::parse("n", "+1 800 555 0199").unwrap();
        assert_eq!(toll_free.number_type(), NumberType::TollFree);
        let london = E164::parse("n", "+44 20 7946 0958").unwrap();
        assert_eq!(london.classify().0, "GB");
        assert_eq!(london.as_str(), "+442079460958");
    }

    #[test]
    fn numbers_longer_than_e164_allows_are_refused() {
        // Valid by libphonenumber's German metadata, but 16 digits.
        match E164::parse("n", "+4916400000000000") {
            Err(DomainError::InvalidArgument(v)) => {
                assert!(v[0].description.contains("more than 15 digits"), "{v:?}")
            }
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
        assert_eq!(
            E164::parse("n", "+491640000000000").unwrap().as_str(),
            "+491640000000000"
        );
    }

    #[test]
    fn numbers_that_cannot_exist_are_refused() {
        for bad in [
            "",
            "12065550100",
            "+1",
            "+1 206 555 010",
            "+999 1234567",
            "+1 (206) 555-0100 ext. 5",
            "hello",
            "+12065550100999999",
        ] {
            assert!(E164::parse("n", bad).is_err(), "{bad:?} accepted");
        }
        assert!(E164::parse("n", &"+1".repeat(100)).is_err());
    }

    #[test]
    fn toll_free_numbers_cannot_be_business_calling() {
        let toll_free = E164::parse("n", "+18005550199").unwrap();
        assert!(check_product_type(&toll_free, ProductType::BusinessCalling).is_err());
        assert!(check_product_type(&toll_free, ProductType::VoiceConnector).is_ok());
        let local = E164::parse("n", "+12065550100").unwrap();
        assert!(check_product_type(&local, ProductType::BusinessCalling).is_ok());
    }

    fn refused(raw: &str) -> String {
        match CallingName::parse("calling_name", raw) {
            Err(DomainError::InvalidArgument(v)) => v[0].description.clone(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_calling_name_may_be_empty() {
        assert_eq!(CallingName::parse("calling_name", "").unwrap().as_str(), "");
    }

    #[test]
    fn a_calling_name_is_2_to_15_characters() {
        assert_eq!(refused("A"), "must be empty or 2 to 15 characters long");
        assert_eq!(
            refused("ABCDEFGHIJKLMNOP"),
            "must be empty or 2 to 15 characters long"
        );
        let name = CallingName::parse("calling_name", "ABCDEFGHIJKLMNO").unwrap();
        assert_eq!(name.to_string(), "ABCDEFGHIJKLMNO");
    }

    #[test]
    fn a_calling_name_has_only_letters_digits_and_spaces() {
        for bad in ["Front-Desk", "Zoë", "a\tb"] {
            assert_eq!(refused(bad), "may contain only letters, digits and spaces");
        }
        assert_eq!(
            CallingName::parse("calling_name", "Front Desk 1")
                .unwrap()
                .as_str(),
            "Front Desk 1"
        );
    }

    #[test]
    fn calling_names_follow_the_console_rules() {
        for good in ["", "Ab", "Front Desk 1", "ABCDEFGHIJKLMNO"] {
            assert_eq!(parse_calling_name("c", good).unwrap(), good);
        }
        for bad in ["A", "ABCDEFGHIJKLMNOP", "Front-Desk", "Zoë", "a\tb"] {
            assert!(parse_calling_name("c", bad).is_err(), "{bad:?} accepted");
        }
    }

    fn state(status: NumberStatus, deletion_time: Option<DateTime<Utc>>) -> NumberState {
        NumberState {
            e164: E164::from_stored("+12065550100".into()),
            status,
            product_type: ProductType::BusinessCalling,
            deletion_time,
        }
    }

    #[test]
    fn only_unassigned_numbers_can_be_deleted() {
        assert!(check_delete(&state(NumberStatus::Unassigned, None)).is_ok());
        assert!(matches!(
            check_delete(&state(NumberStatus::Assigned, None)),
            Err(DomainError::FailedPrecondition {
                reason: "PHONE_NUMBER_ASSIGNED",
                ..
            })
        ));
    }

    #[test]
    fn restore_works_only_within_the_queue_period() {
        let now = Utc::now();
        let queued = state(
            NumberStatus::DeleteInProgress,
            Some(deletion_time(now, Duration::days(7))),
        );
        assert!(check_restore(&queued, now + Duration::days(6)).is_ok());
        assert!(matches!(
            check_restore(&queued, now + Duration::days(7)),
            Err(DomainError::NotFound { .. })
        ));
        assert!(!exists_at(&queued, now + Duration::days(8)));
        assert!(check_restore(&state(NumberStatus::Unassigned, None), now).is_err());
    }
}
