//! The parts of requests that an RPC and its batch share: each single RPC and each item of the
//! matching batch parse their fields here, the same way, so that an item is refused exactly as
//! the single call would be. The service modules and their `batch` submodules both use this;
//! neither uses the other's parsing.

use crate::api::convert;
use crate::domain::DomainError;
use crate::domain::error::{Violations, all3};
use crate::domain::ids::LocationId;
use crate::domain::phone_number::{CallingName, E164};
use crate::domain::telephony::{SettingsMask, TelephonySettings};
use crate::domain::user::{DisplayName, Email, LicenseType};
use crate::error::Result;
use crate::proto;
use crate::store::{NumberUpdate, UserUpdate};

/// The `emergency_location_id` of an assignment (or item): empty is none.
pub fn optional_location(raw: &str) -> std::result::Result<Option<LocationId>, DomainError> {
    match raw {
        "" => Ok(None),
        raw => LocationId::parse("emergency_location_id", raw).map(Some),
    }
}

/// The requested permissions and the mask of an UpdateTelephonySettings request (or item).
pub fn settings_change(
    requested: Option<&proto::TelephonySettings>,
    update_mask: Option<&prost_types::FieldMask>,
) -> Result<(TelephonySettings, SettingsMask)> {
    let requested =
        requested.ok_or_else(|| DomainError::invalid("telephony_settings", "is required"))?;
    let paths: Vec<&str> = update_mask
        .map(|m| m.paths.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mask = SettingsMask::from_paths("update_mask", &paths)?;
    Ok((convert::settings_from(requested), mask))
}

/// The fields of a CreateUser request (or item), each checked.
pub fn new_user_fields(
    email: &str,
    display_name: &str,
    license_type: i32,
) -> Result<(Email, DisplayName, LicenseType), DomainError> {
    all3(
        Email::parse("email", email),
        DisplayName::parse("display_name", display_name),
        convert::license_type("license_type", license_type),
    )
}

/// The change an UpdateUser request (or item) asks for.
pub fn user_update(
    display_name: &str,
    license_type: i32,
    emergency_location_id: &str,
    update_mask: Option<&prost_types::FieldMask>,
) -> Result<UserUpdate> {
    let paths = convert::mask_paths(
        "update_mask",
        update_mask,
        &["display_name", "license_type", "emergency_location_id"],
    )?;
    let wants = |path: &str| paths.is_empty() || paths.contains(&path);
    let mut violations = Violations::new();
    let update = UserUpdate {
        display_name: if wants("display_name") {
            violations.check(DisplayName::parse("display_name", display_name))
        } else {
            None
        },
        license_type: if wants("license_type") {
            violations.check(convert::license_type("license_type", license_type))
        } else {
            None
        },
        // Only when named: an empty mask keeps meaning the two fields above.
        emergency_location: if paths.contains(&"emergency_location_id") {
            violations.check(optional_location(emergency_location_id))
        } else {
            None
        },
    };
    violations.finish()?;
    Ok(update)
}

/// The number and the change an UpdatePhoneNumber request (or item) asks for.
pub fn number_update(
    phone_number_id: &str,
    product_type: i32,
    calling_name: &str,
    update_mask: Option<&prost_types::FieldMask>,
) -> Result<(E164, NumberUpdate)> {
    let number = E164::parse("phone_number_id", phone_number_id)?;
    let paths = convert::mask_paths(
        "update_mask",
        update_mask,
        &["product_type", "calling_name"],
    )?;
    if paths.is_empty() {
        return Err(DomainError::invalid(
            "update_mask",
            "is required: name the fields to change (product_type, calling_name)",
        )
        .into());
    }
    let mut violations = Violations::new();
    let mut update = NumberUpdate::default();
    if paths.contains(&"product_type") {
        match convert::product_type("product_type", product_type) {
            Ok(Some(product_type)) => update.product_type = Some(product_type),
            Ok(None) => violations.push("product_type", "is required when in update_mask"),
            Err(e) => {
                violations.check::<()>(Err(e));
            }
        }
    }
    if paths.contains(&"calling_name") {
        update.calling_name = violations.check(CallingName::parse("calling_name", calling_name));
    }
    violations.finish()?;
    Ok((number, update))
}
