//! Properties of the input validation functions over generated input: they never panic, they
//! accept exactly what they document, their normalised output is stable under a second pass,
//! and their error messages stay short whatever the input.

use proptest::prelude::*;
use telephony_admin::domain::DomainError;
use telephony_admin::domain::account::parse_id;
use telephony_admin::domain::phone_number::{E164, parse_calling_name};
use telephony_admin::domain::telephony::SettingsMask;
use telephony_admin::domain::user::parse_email;
use telephony_admin::store::page::PageRequest;

/// `^\+[1-9]\d{6,14}$`: the shape of an E.164 number.
fn is_e164_shaped(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The longest message an error may carry: long enough for any of ours, far shorter than the
/// inputs generated here.
fn short(error: &DomainError) -> bool {
    error.to_string().len() <= 512
}

/// Strings that look like phone numbers in many notations, often valid, often not.
fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\+[0-9]{1,17}",
        "\\+[0-9 ().\\-]{1,25}",
        "[ ]{0,2}\\+1 ?\\(?[2-9][0-9]{2}\\)?[ .\\-]?[0-9]{3}[ .\\-]?[0-9]{4}[ ]{0,2}",
        "\\+44 ?[0-9]{2} ?[0-9]{4} ?[0-9]{4}",
        "\\+[0-9]{1,3}[A-Za-z0-9 #;*,/'\\-]{0,20}",
    ]
}

/// Any text: arbitrary Unicode, or phone-like text.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), phone_like(), "\\PC{0,300}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Parsing never panics; what it accepts is E.164-shaped, and parsing the result again
    /// gives the same number (normalisation is idempotent).
    #[test]
    fn e164_parse_normalises_idempotently(raw in any_text()) {
        if let Ok(number) = E164::parse("n", &raw) {
            let canonical = number.as_str().to_owned();
            prop_assert!(is_e164_shaped(&canonical), "{raw:?} -> {canonical:?}");
            let again = E164::parse("n", &canonical)
                .map_err(|e| TestCaseError::fail(format!("{raw:?} -> {canonical:?} does not parse: {e}")))?;
            prop_assert_eq!(&again, &number);
            prop_assert_eq!(again.as_str(), canonical.as_str());
            prop_assert!(number.classify().0.len() == 2, "{raw:?}: country {:?}", number.classify().0);
        }
    }

    /// Every formatting of a US number in the 555-01xx range means that number.
    #[test]
    fn formatting_does_not_change_the_number(
        line in 100u32..200,
        style in 0usize..6,
    ) {
        let raw = match style {
            0 => format!("+1206555{line:04}"),
            1 => format!("+1 206 555 {line:04}"),
            2 => format!("+1 (206) 555-{line:04}"),
            3 => format!("+1.206.555.{line:04}"),
            4 => format!("  +1-206-555-{line:04}\t"),
            _ => format!("+1 2065550{}", &format!("{line:03}")[..3]),
        };
        let number = E164::parse("n", &raw)
            .map_err(|e| TestCaseError::fail(format!("{raw:?}: {e}")))?;
        prop_assert_eq!(number.as_str(), format!("+1206555{line:04}"));
        prop_assert_eq!(number.classify().0, "US");
    }

    /// Refusals carry a short message, however long the input.
    #[test]
    fn e164_errors_stay_short(raw in "\\PC{0,5000}") {
        if let Err(error) = E164::parse("n", &raw) {
            prop_assert!(short(&error), "{} byte message", error.to_string().len());
        }
    }

    /// A calling name is accepted exactly when it is empty or 2 to 15 ASCII letters, digits
    /// and spaces; an accepted name is returned unchanged.
    #[test]
    fn calling_names_accept_exactly_the_documented_set(
        raw in prop_oneof![
            "[A-Za-z0-9 ]{0,20}",
            "[A-Za-z0-9 \\-_.éЖ\t]{0,20}",
            any::<String>(),
        ]
    ) {
        let expected = raw.is_empty()
            || ((2..=15).contains(&raw.chars().count())
                && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '));
        match parse_calling_name("calling_name", &raw) {
            Ok(name) => {
                prop_assert!(expected, "{raw:?} accepted");
                prop_assert_eq!(name, raw);
            }
            Err(error) => {
                prop_assert!(!expected, "{raw:?} refused: {error}");
                prop_assert!(short(&error));
            }
        }
    }

    /// Page requests never panic, whatever the size, token, filters and maximum.
    #[test]
    fn page_request_parse_never_panics(
        page_size in any::<i32>(),
        token in prop_oneof![any::<String>(), "[A-Za-z0-9_\\-]{0,200}", "\\PC{0,2000}"],
        filters in any::<String>(),
        max in prop_oneof![Just(0u64), Just(1000u64), any::<u64>()],
    ) {
        if let Err(error) = PageRequest::parse(page_size, &token, &filters, max) {
            prop_assert!(short(&error));
        }
    }

    /// A token made by `finish` leads to the next page under the same filters, and is refused
    /// under any other filters.
    #[test]
    fn page_tokens_round_trip(
        size in 1u64..50,
        keys in prop::collection::vec("[a-z0-9\\-+]{1,64}", 51..60),
        filters in any::<String>(),
        other_filters in any::<String>(),
    ) {
        let first = PageRequest::parse(size as i32, "", &filters, 1000)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(first.size, size);
        let rows = keys[..=size as usize].to_vec();
        let page = first.finish(rows, |k| k.clone());
        prop_assert_eq!(page.items.len() as u64, size);
        prop_assert!(!page.next_page_token.is_empty());
        let next = PageRequest::parse(size as i32, &page.next_page_token, &filters, 1000)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(next.after.as_deref(), Some(keys[size as usize - 1].as_str()));
        if other_filters != filters {
            prop_assert!(PageRequest::parse(size as i32, &page.next_page_token, &other_filters, 1000).is_err());
        }
        // The last page makes no token.
        let last = next.finish(keys[..size as usize].to_vec(), |k| k.clone());
        prop_assert!(last.next_page_token.is_empty());
    }

    /// Email parsing never panics; an accepted address is trimmed, lower case, and accepted
    /// again unchanged.
    #[test]
    fn email_parse_is_idempotent(
        raw in prop_oneof![
            any::<String>(),
            "[ ]{0,2}[A-Za-z0-9._%+\\-]{1,20}@[A-Za-z0-9\\-]{1,20}\\.[A-Za-z]{2,6}[ ]{0,2}",
            "\\PC{0,40}@\\PC{0,40}",
            "\\PC{0,400}",
        ]
    ) {
        match parse_email("email", &raw) {
            Ok(email) => {
                prop_assert_eq!(email.trim(), email.as_str());
                prop_assert_eq!(email.to_lowercase(), email.clone());
                let again = parse_email("email", &email)
                    .map_err(|e| TestCaseError::fail(format!("{raw:?} -> {email:?} refused: {e}")))?;
                prop_assert_eq!(again, email);
            }
            Err(error) => prop_assert!(short(&error)),
        }
    }

    /// Id parsing never panics; it accepts UUIDs only, in their canonical lower-case form.
    #[test]
    fn id_parse_accepts_uuids_only(
        raw in prop_oneof![
            any::<String>(),
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "[0-9a-fA-F\\-{}]{30,40}",
        ]
    ) {
        match parse_id("id", &raw) {
            Ok(id) => {
                prop_assert!(uuid::Uuid::try_parse(&raw).is_ok(), "{raw:?} accepted");
                prop_assert_eq!(id.len(), 36);
                prop_assert_eq!(id.to_lowercase(), id.clone());
                prop_assert_eq!(parse_id("id", &id).ok(), Some(id));
            }
            Err(error) => prop_assert!(short(&error)),
        }
    }

    /// A settings mask accepts exactly the known paths, and its refusal stays short even for
    /// a huge unknown path.
    #[test]
    fn settings_masks_accept_known_paths_only(
        paths in prop::collection::vec(
            prop_oneof![
                Just("inbound_calling".to_owned()),
                Just("outbound_calling".to_owned()),
                Just("sms".to_owned()),
                Just("telephony_settings.sms".to_owned()),
                Just("telephony_settings".to_owned()),
                Just("*".to_owned()),
                any::<String>(),
                "\\PC{1000,3000}",
            ],
            0..20,
        )
    ) {
        const KNOWN: [&str; 8] = [
            "inbound_calling",
            "outbound_calling",
            "sms",
            "telephony_settings.inbound_calling",
            "telephony_settings.outbound_calling",
            "telephony_settings.sms",
            "telephony_settings",
            "*",
        ];
        let all_known = paths.iter().all(|p| KNOWN.contains(&p.as_str()));
        match SettingsMask::from_paths("update_mask", &paths) {
            Ok(mask) => {
                prop_assert!(all_known, "{paths:?} accepted");
                if paths.is_empty() {
                    prop_assert_eq!(mask, SettingsMask::ALL);
                }
                prop_assert_eq!(mask.sms, paths.is_empty() || paths.iter().any(|p| matches!(p.as_str(), "sms" | "telephony_settings.sms" | "telephony_settings" | "*")));
            }
            Err(error) => {
                prop_assert!(!all_known, "{paths:?} refused: {error}");
                prop_assert!(short(&error), "{} byte message", error.to_string().len());
            }
        }
    }
}
