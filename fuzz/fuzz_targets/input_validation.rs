//! Fuzzes the validation of untrusted text: phone numbers, calling names, email addresses,
//! identifiers, field-mask paths and page tokens must never panic, and what they accept must
//! be stable under a second pass.

#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_admin::domain::account::parse_id;
use telephony_admin::domain::phone_number::{E164, parse_calling_name};
use telephony_admin::domain::telephony::SettingsMask;
use telephony_admin::domain::user::parse_email;
use telephony_admin::store::page::PageRequest;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    if let Ok(number) = E164::parse("n", text) {
        let again = E164::parse("n", number.as_str()).expect("a normalised number parses");
        assert_eq!(again, number);
    }
    if let Ok(name) = parse_calling_name("c", text) {
        assert_eq!(name, text);
    }
    if let Ok(email) = parse_email("e", text) {
        assert_eq!(parse_email("e", &email).as_deref(), Ok(email.as_str()));
    }
    if let Ok(id) = parse_id("i", text) {
        assert_eq!(parse_id("i", &id).as_deref(), Ok(id.as_str()));
    }
    let paths: Vec<&str> = text.split(',').collect();
    let _ = SettingsMask::from_paths("m", &paths);

    // The first bytes choose the page size; the rest is the token.
    let page_size = data
        .get(..4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let _ = PageRequest::parse(page_size, text, "filters", 1000);
});
