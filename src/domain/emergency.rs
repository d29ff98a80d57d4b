//! Emergency locations: civic addresses, the places at them, and what an offline validator can
//! say of an address. Offline validation checks an address's structure for its country (the
//! parts a responder needs, the state or province code, the postal code's form); it is not
//! geocoding, and does not say that the address exists. Other validators (a geocoding
//! provider) plug in behind [`AddressValidator`].

use super::error::{DomainError, FieldViolation, Violations};

/// Longest street name; every other text part is at most [`MAX_PART_CHARS`].
const MAX_STREET_CHARS: usize = 200;
const MAX_PART_CHARS: usize = 100;
/// Longest place (floor, suite, room) of a location.
pub const MAX_PLACE_CHARS: usize = 100;

/// The USPS codes of the states, the District of Columbia and the inhabited territories.
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "AS", "GU", "MP", "PR", "VI",
];

/// Canada Post's codes of the provinces and territories.
const CA_PROVINCES: &[&str] = &[
    "AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT",
];

/// A civic address, its text trimmed, its country and state codes in upper case.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CivicAddress {
    pub country: String,
    pub company_name: String,
    pub house_number: String,
    pub house_number_suffix: String,
    pub pre_directional: String,
    pub street_name: String,
    pub street_suffix: String,
    pub post_directional: String,
    pub city: String,
    pub state_or_province: String,
    pub postal_code: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

impl CivicAddress {
    /// Checks what any address must be (a known country, parts of a sane length without
    /// control characters, coordinates in range, both or neither), reporting every bad field
    /// under `prefix` (e.g. `address.`); returns it normalised. Whether the parts make an
    /// address of its country is the validator's question, not this one.
    pub fn parse(self, prefix: &str) -> Result<Self, DomainError> {
        let mut violations = Violations::new();
        let mut text = |name: &str, value: String, max: usize| {
            let value = value.trim().to_owned();
            let field = format!("{prefix}{name}");
            if value.chars().count() > max {
                violations.push(field, format!("must be at most {max} characters"));
            } else if value.chars().any(char::is_control) {
                violations.push(field, "must not contain control characters");
            }
            value
        };
        let address = Self {
            country: text("country", self.country, MAX_PART_CHARS).to_ascii_uppercase(),
            company_name: text("company_name", self.company_name, MAX_PART_CHARS),
            house_number: text("house_number", self.house_number, MAX_PART_CHARS),
            house_number_suffix: text(
                "house_number_suffix",
                self.house_number_suffix,
                MAX_PART_CHARS,
            ),
            pre_directional: text("pre_directional", self.pre_directional, MAX_PART_CHARS),
            street_name: text("street_name", self.street_name, MAX_STREET_CHARS),
            street_suffix: text("street_suffix", self.street_suffix, MAX_PART_CHARS),
            post_directional: text("post_directional", self.post_directional, MAX_PART_CHARS),
            city: text("city", self.city, MAX_PART_CHARS),
            state_or_province: text("state_or_province", self.state_or_province, MAX_PART_CHARS)
                .to_ascii_uppercase(),
            postal_code: text("postal_code", self.postal_code, MAX_PART_CHARS).to_ascii_uppercase(),
            latitude: self.latitude,
            longitude: self.longitude,
        };
        if !is_country_code(&address.country) {
            violations.push(
                format!("{prefix}country"),
                "must be an ISO 3166-1 alpha-2 country code, e.g. US",
            );
        }
        match (address.latitude, address.longitude) {
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) {
                    violations.push(format!("{prefix}latitude"), "must be between -90 and 90");
                }
                if !(-180.0..=180.0).contains(&lon) {
                    violations.push(format!("{prefix}longitude"), "must be between -180 and 180");
                }
            }
            (None, None) => {}
            _ => violations.push(
                format!("{prefix}latitude"),
                "latitude and longitude go together: give both or neither",
            ),
        }
        violations.finish()?;
        Ok(address)
    }
}

/// A country code with telephone numbering (every inhabited ISO 3166-1 alpha-2 country).
fn is_country_code(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && phonenumber::metadata::DATABASE.by_id(code).is_some()
}

/// A location's place at its address (floor, suite, room): trimmed, possibly empty.
pub fn parse_place(field: &str, raw: &str) -> Result<String, DomainError> {
    let place = raw.trim();
    if place.chars().count() > MAX_PLACE_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_PLACE_CHARS} characters"),
        ));
    }
    if place.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(place.to_owned())
}

/// What a validator found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationState {
    /// No rules for the address's country.
    Unvalidated,
    StructureValid,
    Invalid,
}

impl ValidationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unvalidated => "unvalidated",
            Self::StructureValid => "structure_valid",
            Self::Invalid => "invalid",
        }
    }

    pub fn from_stored(stored: &str) -> Self {
        match stored {
            "structure_valid" => Self::StructureValid,
            "invalid" => Self::Invalid,
            _ => Self::Unvalidated,
        }
    }
}

/// A validator's verdict on an address: its state, and for an invalid one, what is wrong per
/// field (fields named as in the address: `postal_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub state: ValidationState,
    pub problems: Vec<FieldViolation>,
}

/// Says what it can of an address. The built-in one is [`OfflineValidator`].
pub trait AddressValidator: Send + Sync {
    fn validate(&self, address: &CivicAddress) -> Validation;
}

/// Structure per country, without I/O: for the US and Canada the parts a dispatchable location
/// needs, the state or province code against the official list and the postal code's form;
/// for any country, a street name and a city.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineValidator;

impl AddressValidator for OfflineValidator {
    fn validate(&self, address: &CivicAddress) -> Validation {
        let mut problems = Vec::new();
        let mut require = |field: &str, value: &str| {
            if value.is_empty() {
                problems.push(FieldViolation::new(field, "is required"));
            }
        };
        require("street_name", &address.street_name);
        require("city", &address.city);
        let checked = match address.country.as_str() {
            "US" | "CA" => {
                require("house_number", &address.house_number);
                require("state_or_province", &address.state_or_province);
                require("postal_code", &address.postal_code);
                let (codes, postal_ok, postal_form): (&[&str], fn(&str) -> bool, &str) =
                    if address.country == "US" {
                        (
                            US_STATES,
                            is_zip,
                            "a ZIP code (12345) or ZIP+4 (12345-6789)",
                        )
                    } else {
                        (
                            CA_PROVINCES,
                            is_canadian_postal_code,
                            "a postal code (A1A 1A1)",
                        )
                    };
                let state = &address.state_or_province;
                if !state.is_empty() && !codes.contains(&state.as_str()) {
                    problems.push(FieldViolation::new(
                        "state_or_province",
                        format!(
                            "{state:?} is not a {} code",
                            if address.country == "US" {
                                "USPS state or territory"
                            } else {
                                "Canadian province or territory"
                            }
                        ),
                    ));
                }
                let postal = &address.postal_code;
                if !postal.is_empty() && !postal_ok(postal) {
                    problems.push(FieldViolation::new(
                        "postal_code",
                        format!("must be {postal_form}"),
                    ));
                }
                true
            }
            _ => false,
        };
        let state = match (problems.is_empty(), checked) {
            (false, _) => ValidationState::Invalid,
            (true, true) => ValidationState::StructureValid,
            // Present but unchecked: this validator has no rules for the country.
            (true, false) => ValidationState::Unvalidated,
        };
        Validation { state, problems }
    }
}

fn is_zip(code: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match code.split_once('-') {
        None => digits(code, 5),
        Some((zip, plus4)) => digits(zip, 5) && digits(plus4, 4),
    }
}

/// `A1A 1A1` (the space optional): letters other than D, F, I, O, Q and U, and no W or Z first.
fn is_canadian_postal_code(code: &str) -> bool {
    let compact: Vec<char> = code.chars().filter(|c| *c != ' ').collect();
    if compact.len() != 6 || code.len() > 7 {
        return false;
    }
    let letter = |c: char| c.is_ascii_uppercase() && !"DFIOQU".contains(c);
    compact.iter().enumerate().all(|(i, &c)| match i {
        0 => letter(c) && c != 'W' && c != 'Z',
        2 | 4 => letter(c),
        _ => c.is_ascii_digit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> CivicAddress {
        CivicAddress {
            country: "us".into(),
            company_name: "Acme".into(),
            house_number: "1600".into(),
            street_name: " Pennsylvania ".into(),
            street_suffix: "Ave".into(),
            post_directional: "NW".into(),
            city: "Washington".into(),
            state_or_province: "dc".into(),
            postal_code: "20500-0003".into(),
            ..CivicAddress::default()
        }
    }

    fn verdict(address: CivicAddress) -> Validation {
        OfflineValidator.validate(&address.parse("address.").expect("well-formed"))
    }

    fn fields(validation: &Validation) -> Vec<&str> {
        validation
            .problems
            .iter()
            .map(|p| p.field.as_str())
            .collect()
    }

    #[test]
    fn a_complete_us_address_is_structure_valid_and_normalised() {
        let parsed = us().parse("address.").unwrap();
        assert_eq!(parsed.country, "US");
        assert_eq!(parsed.state_or_province, "DC");
        assert_eq!(parsed.street_name, "Pennsylvania");
        let validation = OfflineValidator.validate(&parsed);
        assert_eq!(validation.state, ValidationState::StructureValid);
        assert!(validation.problems.is_empty());
    }

    #[test]
    fn us_rules_name_each_bad_field() {
        let missing = verdict(CivicAddress {
            house_number: String::new(),
            postal_code: String::new(),
            ..us()
        });
        assert_eq!(missing.state, ValidationState::Invalid);
        assert_eq!(fields(&missing), ["house_number", "postal_code"]);

        let wrong = verdict(CivicAddress {
            state_or_province: "XX".into(),
            postal_code: "2050".into(),
            ..us()
        });
        assert_eq!(fields(&wrong), ["state_or_province", "postal_code"]);
        for zip in ["20500", "20500-0003"] {
            assert!(is_zip(zip), "{zip}");
        }
        for zip in ["2050", "205000", "20500-03", "2050A", "20500-"] {
            assert!(!is_zip(zip), "{zip}");
        }
    }

    #[test]
    fn canadian_rules() {
        let ca = CivicAddress {
            country: "CA".into(),
            house_number: "111".into(),
            street_name: "Wellington".into(),
            street_suffix: "St".into(),
            city: "Ottawa".into(),
            state_or_province: "ON".into(),
            postal_code: "k1a 0a9".into(),
            ..CivicAddress::default()
        };
        assert_eq!(verdict(ca.clone()).state, ValidationState::StructureValid);
        let wrong = verdict(CivicAddress {
            state_or_province: "TX".into(),
            postal_code: "D1A 0A9".into(),
            ..ca
        });
        assert_eq!(fields(&wrong), ["state_or_province", "postal_code"]);
        for code in ["K1A 0A9", "K1A0A9", "V5K 0A1"] {
            assert!(is_canadian_postal_code(code), "{code}");
        }
        for code in ["W1A 0A9", "K1D 0A9", "K1A 0A", "12345", "K1A  0A9"] {
            assert!(!is_canadian_postal_code(code), "{code}");
        }
    }

    #[test]
    fn other_countries_need_a_street_and_city_and_are_not_claimed_valid() {
        let gb = CivicAddress {
            country: "GB".into(),
            street_name: "Downing Street".into(),
            house_number: "10".into(),
            city: "London".into(),
            ..CivicAddress::default()
        };
        assert_eq!(verdict(gb.clone()).state, ValidationState::Unvalidated);
        let no_city = verdict(CivicAddress {
            city: String::new(),
            ..gb
        });
        assert_eq!(no_city.state, ValidationState::Invalid);
        assert_eq!(fields(&no_city), ["city"]);
    }

    #[test]
    fn malformed_input_is_refused_with_every_field() {
        let error = CivicAddress {
            country: "USA".into(),
            city: "x".repeat(101),
            latitude: Some(91.0),
            ..us()
        }
        .parse("address.")
        .unwrap_err();
        let DomainError::InvalidArgument(violations) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["address.city", "address.country", "address.latitude"]
        );
        assert!(
            CivicAddress {
                country: "ZZ".into(),
                ..us()
            }
            .parse("")
            .is_err()
        );
        assert!(parse_place("place", "Floor 3, Suite 300").is_ok());
        assert!(parse_place("place", &"x".repeat(101)).is_err());
    }
}
