//! A user's business-calling number and calling/SMS permissions: what an assignment, an
//! unassignment and a permission change are allowed to do, and what they leave behind.

use super::DomainError;
use super::ids::UserId;
use super::phone_number::{E164, NumberState, NumberStatus, ProductType};

/// A user's calling and SMS permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TelephonySettings {
    pub inbound_calling: bool,
    pub outbound_calling: bool,
    pub sms: bool,
}

impl TelephonySettings {
    /// Everything off: the state after an assignment and after an unassignment.
    pub const OFF: Self = Self {
        inbound_calling: false,
        outbound_calling: false,
        sms: false,
    };
}

/// Which permissions an update touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsMask {
    pub inbound_calling: bool,
    pub outbound_calling: bool,
    pub sms: bool,
}

impl SettingsMask {
    pub const ALL: Self = Self {
        inbound_calling: true,
        outbound_calling: true,
        sms: true,
    };

    /// Builds a mask from FieldMask paths; no paths means all three.
    pub fn from_paths<S: AsRef<str>>(field: &str, paths: &[S]) -> Result<Self, DomainError> {
        if paths.is_empty() {
            return Ok(Self::ALL);
        }
        let mut mask = Self {
            inbound_calling: false,
            outbound_calling: false,
            sms: false,
        };
        for path in paths {
            match path.as_ref() {
                "inbound_calling" | "telephony_settings.inbound_calling" => {
                    mask.inbound_calling = true
                }
                "outbound_calling" | "telephony_settings.outbound_calling" => {
                    mask.outbound_calling = true
                }
                "sms" | "telephony_settings.sms" => mask.sms = true,
                "telephony_settings" | "*" => mask = Self::ALL,
                other => {
                    // The path is untrusted: echoing a huge one would make the error's
                    // headers too large for the client to accept.
                    let shown = super::truncate(other, 64);
                    return Err(DomainError::invalid(
                        field,
                        format!(
                            "unknown path {shown:?}; expected inbound_calling, outbound_calling or sms"
                        ),
                    ));
                }
            }
        }
        Ok(mask)
    }
}

/// The user as far as the telephony rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLine {
    pub user_id: UserId,
    pub phone_number: Option<E164>,
    pub settings: TelephonySettings,
}

/// Checks that `number` may be given to `user`; on success the user's settings are all off.
pub fn assign(user: &UserLine, number: &NumberState) -> Result<TelephonySettings, DomainError> {
    if let Some(current) = &user.phone_number {
        let message = if current == &number.e164 {
            format!("user {} already has phone number {current}", user.user_id)
        } else {
            format!(
                "user {} already has phone number {current}; a user can have only one business calling number, unassign it first",
                user.user_id
            )
        };
        return Err(DomainError::precondition(
            "USER_HAS_PHONE_NUMBER",
            user.user_id.as_str(),
            message,
        ));
    }
    if number.product_type != ProductType::BusinessCalling {
        return Err(DomainError::precondition(
            "PHONE_NUMBER_NOT_BUSINESS_CALLING",
            number.e164.as_str(),
            format!(
                "phone number {} has product type {}; only BUSINESS_CALLING numbers can be assigned to users",
                number.e164,
                number.product_type.as_str()
            ),
        ));
    }
    match number.status {
        NumberStatus::Unassigned => Ok(TelephonySettings::OFF),
        NumberStatus::Assigned => Err(DomainError::precondition(
            "PHONE_NUMBER_ASSIGNED",
            number.e164.as_str(),
            format!(
                "phone number {} is already assigned to another user",
                number.e164
            ),
        )),
        NumberStatus::DeleteInProgress => Err(DomainError::precondition(
            "PHONE_NUMBER_DELETE_IN_PROGRESS",
            number.e164.as_str(),
            format!(
                "phone number {} is in the deletion queue; restore it before assigning it",
                number.e164
            ),
        )),
    }
}

/// Checks the explicit confirmation and that the user has a number; returns the number to free.
/// On success the user's settings are all off.
pub fn unassign(user: &UserLine, confirm: bool) -> Result<E164, DomainError> {
    if !confirm {
        return Err(DomainError::invalid(
            "confirm",
            "must be true to confirm the unassignment of the user's phone number",
        ));
    }
    user.phone_number.clone().ok_or_else(|| {
        DomainError::precondition(
            "USER_HAS_NO_PHONE_NUMBER",
            user.user_id.as_str(),
            format!("user {} has no phone number to unassign", user.user_id),
        )
    })
}

/// The settings after an update, or `None` when nothing would change (a no-op emits no event).
pub fn update_settings(
    user: &UserLine,
    requested: TelephonySettings,
    mask: SettingsMask,
) -> Result<Option<TelephonySettings>, DomainError> {
    if user.phone_number.is_none() {
        return Err(DomainError::precondition(
            "USER_HAS_NO_PHONE_NUMBER",
            user.user_id.as_str(),
            format!(
                "user {} has no phone number; assign one before changing calling and SMS permissions",
                user.user_id
            ),
        ));
    }
    let current = user.settings;
    let updated = TelephonySettings {
        inbound_calling: pick(
            mask.inbound_calling,
            requested.inbound_calling,
            current.inbound_calling,
        ),
        outbound_calling: pick(
            mask.outbound_calling,
            requested.outbound_calling,
            current.outbound_calling,
        ),
        sms: pick(mask.sms, requested.sms, current.sms),
    };
    Ok((updated != current).then_some(updated))
}

fn pick(masked: bool, requested: bool, current: bool) -> bool {
    if masked { requested } else { current }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(number: Option<&str>, settings: TelephonySettings) -> UserLine {
        UserLine {
            user_id: UserId::from_stored("u1".into()),
            phone_number: number.map(|n| E164::from_stored(n.to_owned())),
            settings,
        }
    }

    fn number(status: NumberStatus, product_type: ProductType) -> NumberState {
        NumberState {
            e164: E164::from_stored("+12065550100".into()),
            status,
            product_type,
            deletion_time: None,
        }
    }

    const ALL_ON: TelephonySettings = TelephonySettings {
        inbound_calling: true,
        outbound_calling: true,
        sms: true,
    };

    #[test]
    fn assignment_turns_everything_off() {
        let settings = assign(
            &user(None, ALL_ON),
            &number(NumberStatus::Unassigned, ProductType::BusinessCalling),
        )
        .unwrap();
        assert_eq!(settings, TelephonySettings::OFF);
    }

    #[test]
    fn assignment_rules_name_the_broken_rule() {
        let cases = [
            (
                user(Some("+12065550199"), TelephonySettings::OFF),
                NumberStatus::Unassigned,
                ProductType::BusinessCalling,
                "USER_HAS_PHONE_NUMBER",
            ),
            (
                user(None, TelephonySettings::OFF),
                NumberStatus::Assigned,
                ProductType::BusinessCalling,
                "PHONE_NUMBER_ASSIGNED",
            ),
            (
                user(None, TelephonySettings::OFF),
                NumberStatus::DeleteInProgress,
                ProductType::BusinessCalling,
                "PHONE_NUMBER_DELETE_IN_PROGRESS",
            ),
            (
                user(None, TelephonySettings::OFF),
                NumberStatus::Unassigned,
                ProductType::VoiceConnector,
                "PHONE_NUMBER_NOT_BUSINESS_CALLING",
            ),
        ];
        for (user, status, product, expected) in cases {
            match assign(&user, &number(status, product)) {
                Err(DomainError::FailedPrecondition { reason, .. }) => assert_eq!(reason, expected),
                other => panic!("expected {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn unassignment_needs_confirmation_and_a_number() {
        let with_number = user(Some("+12065550100"), ALL_ON);
        assert!(matches!(
            unassign(&with_number, false),
            Err(DomainError::InvalidArgument(_))
        ));
        assert_eq!(
            unassign(&with_number, true).unwrap().as_str(),
            "+12065550100"
        );
        assert!(matches!(
            unassign(&user(None, TelephonySettings::OFF), true),
            Err(DomainError::FailedPrecondition {
                reason: "USER_HAS_NO_PHONE_NUMBER",
                ..
            })
        ));
    }

    #[test]
    fn settings_update_respects_the_mask_and_detects_no_ops() {
        let holder = user(Some("+12065550100"), TelephonySettings::OFF);
        let only_sms = SettingsMask::from_paths("m", &["sms"]).unwrap();
        let updated = update_settings(&holder, ALL_ON, only_sms).unwrap().unwrap();
        assert_eq!(
            updated,
            TelephonySettings {
                sms: true,
                ..TelephonySettings::OFF
            }
        );
        assert_eq!(
            update_settings(&holder, TelephonySettings::OFF, SettingsMask::ALL).unwrap(),
            None
        );
        assert!(
            update_settings(
                &user(None, TelephonySettings::OFF),
                ALL_ON,
                SettingsMask::ALL
            )
            .is_err()
        );
    }

    #[test]
    fn masks_reject_unknown_paths() {
        assert_eq!(
            SettingsMask::from_paths::<&str>("m", &[]).unwrap(),
            SettingsMask::ALL
        );
        assert!(SettingsMask::from_paths("m", &["voicemail"]).is_err());
        let both = SettingsMask::from_paths("m", &["inbound_calling", "outbound_calling"]).unwrap();
        assert!(both.inbound_calling && both.outbound_calling && !both.sms);
    }
}
