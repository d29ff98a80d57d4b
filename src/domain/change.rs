//! Change events: the kinds of change a user must learn of, and the notice they are sent.
//! Every change here requires the user to sign out and sign back in, except the record that
//! they did ([`ChangeKind::SignOutAcknowledged`]).

use chrono::{DateTime, Utc};

use super::ids::{AccountId, UserId};
use super::phone_number::E164;
use super::telephony::TelephonySettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    PhoneNumberAssigned,
    PhoneNumberUnassigned,
    TelephonySettingsUpdated,
    UserSignOutRequested,
    UserDeleted,
    /// The user signed out and back in: an audit record, not a change to pick up.
    SignOutAcknowledged,
    /// The user's effective emergency location changed: it travels with each emergency call,
    /// so no sign-in is needed.
    EmergencyLocationUpdated,
}

impl ChangeKind {
    /// The kind's name, as in notices and webhook payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PhoneNumberAssigned => "PHONE_NUMBER_ASSIGNED",
            Self::PhoneNumberUnassigned => "PHONE_NUMBER_UNASSIGNED",
            Self::TelephonySettingsUpdated => "TELEPHONY_SETTINGS_UPDATED",
            Self::UserSignOutRequested => "USER_SIGN_OUT_REQUESTED",
            Self::UserDeleted => "USER_DELETED",
            Self::SignOutAcknowledged => "SIGN_OUT_ACKNOWLEDGED",
            Self::EmergencyLocationUpdated => "EMERGENCY_LOCATION_UPDATED",
        }
    }

    /// Every kind of change takes effect only after the user signs in again, but the
    /// acknowledgement that they did (no change to pick up) and an emergency location (sent
    /// with each call, not held by the session).
    pub fn sign_out_required(self) -> bool {
        !matches!(
            self,
            Self::SignOutAcknowledged | Self::EmergencyLocationUpdated
        )
    }

    /// The kind's number in the contract (`ChangeKind` in `change_service.proto`).
    pub fn code(self) -> i32 {
        match self {
            Self::PhoneNumberAssigned => 1,
            Self::PhoneNumberUnassigned => 2,
            Self::TelephonySettingsUpdated => 3,
            Self::UserSignOutRequested => 4,
            Self::UserDeleted => 5,
            Self::SignOutAcknowledged => 6,
            Self::EmergencyLocationUpdated => 7,
        }
    }

    pub const ALL: [Self; 7] = [
        Self::PhoneNumberAssigned,
        Self::PhoneNumberUnassigned,
        Self::TelephonySettingsUpdated,
        Self::UserSignOutRequested,
        Self::UserDeleted,
        Self::SignOutAcknowledged,
        Self::EmergencyLocationUpdated,
    ];

    /// The kind a contract number names, if this version knows it.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// A recorded event's kind: one this version knows, or one a newer version wrote (during a
/// rolling upgrade), passed on as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Known(ChangeKind),
    Unknown { code: i32, name: String },
}

impl EventKind {
    /// The contract's number: open, as protobuf enums are.
    pub fn code(&self) -> i32 {
        match self {
            Self::Known(kind) => kind.code(),
            Self::Unknown { code, .. } => *code,
        }
    }

    /// The kind's name, as in webhook payloads.
    pub fn name(&self) -> &str {
        match self {
            Self::Known(kind) => kind.as_str(),
            Self::Unknown { name, .. } => name,
        }
    }

    pub fn known(&self) -> Option<ChangeKind> {
        match self {
            Self::Known(kind) => Some(*kind),
            Self::Unknown { .. } => None,
        }
    }

    /// An unknown kind counts as sign-out-required: every kind but the acknowledgement is, and
    /// the user's pending sign-out was marked by the same rule when the event was numbered.
    pub fn sign_out_required(&self) -> bool {
        self.known().is_none_or(ChangeKind::sign_out_required)
    }
}

impl From<ChangeKind> for EventKind {
    fn from(kind: ChangeKind) -> Self {
        Self::Known(kind)
    }
}

/// A change about to be recorded, before the store gives it a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub kind: ChangeKind,
    /// `None` when the change concerns no number (a user without one deleted or signed out).
    pub e164_phone_number: Option<E164>,
    pub settings: TelephonySettings,
    pub actor: String,
}

impl NewChange {
    /// The plain text to send to the user.
    pub fn notice(&self) -> String {
        notice(
            self.kind,
            self.e164_phone_number.as_ref().map_or("", E164::as_str),
            self.settings,
        )
    }
}

/// A recorded change, with its place in the change log: what watchers, the audit trail and
/// push deliveries are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// Organisation-wide, strictly increasing by one, without gaps.
    pub sequence: u64,
    pub event_id: String,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub kind: EventKind,
    /// `None` when the change concerns no number (a user without one deleted or signed out).
    pub e164_phone_number: Option<E164>,
    /// The user's permissions after the change.
    pub settings: TelephonySettings,
    /// The plain text sent to the user.
    pub notice: String,
    /// The API key that made the change.
    pub actor: String,
    pub occur_time: DateTime<Utc>,
}

const SIGN_IN_AGAIN: &str = "Sign out and sign back in for the change to take effect.";

pub fn notice(kind: ChangeKind, number: &str, settings: TelephonySettings) -> String {
    match kind {
        ChangeKind::PhoneNumberAssigned => format!(
            "Your business calling phone number is now {number}. Calling and SMS are off until your administrator turns them on. {SIGN_IN_AGAIN}"
        ),
        ChangeKind::PhoneNumberUnassigned => format!(
            "Your business calling phone number {number} has been removed. Calling and SMS are now off. {SIGN_IN_AGAIN}"
        ),
        ChangeKind::TelephonySettingsUpdated => format!(
            "Your calling and SMS permissions have changed: inbound calling is {}, outbound calling is {}, SMS is {}. {SIGN_IN_AGAIN}",
            on_off(settings.inbound_calling),
            on_off(settings.outbound_calling),
            on_off(settings.sms)
        ),
        ChangeKind::UserSignOutRequested => {
            "Your administrator has asked you to sign out. Sign out and sign back in to continue."
                .to_owned()
        }
        ChangeKind::UserDeleted if number.is_empty() => {
            "Your user has been deleted. You have been signed out.".to_owned()
        }
        ChangeKind::UserDeleted => format!(
            "Your user has been deleted and your business calling phone number {number} has been removed. You have been signed out."
        ),
        ChangeKind::SignOutAcknowledged => {
            "You have signed out and back in: your current number and permissions are in effect."
                .to_owned()
        }
        ChangeKind::EmergencyLocationUpdated => {
            "Your emergency location has changed; it is sent with your emergency calls from now on."
                .to_owned()
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_say_what_changed_and_ask_to_sign_in_again() {
        let assigned = notice(
            ChangeKind::PhoneNumberAssigned,
            "+12065550100",
            TelephonySettings::OFF,
        );
        assert!(
            assigned.contains("+12065550100") && assigned.contains("Sign out and sign back in")
        );
        let settings = TelephonySettings {
            inbound_calling: true,
            outbound_calling: false,
            sms: true,
        };
        let updated = notice(
            ChangeKind::TelephonySettingsUpdated,
            "+12065550100",
            settings,
        );
        assert!(updated.contains("inbound calling is on"));
        assert!(updated.contains("outbound calling is off"));
        assert!(updated.contains("SMS is on"));
        assert!(updated.contains("sign back in"));
    }

    #[test]
    fn every_kind_requires_signing_in_again() {
        for kind in [
            ChangeKind::PhoneNumberAssigned,
            ChangeKind::PhoneNumberUnassigned,
            ChangeKind::TelephonySettingsUpdated,
            ChangeKind::UserSignOutRequested,
            ChangeKind::UserDeleted,
            ChangeKind::SignOutAcknowledged,
        ] {
            assert_eq!(
                kind.sign_out_required(),
                kind != ChangeKind::SignOutAcknowledged
            );
        }
    }

    #[test]
    fn every_kind_has_its_own_contract_number() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ChangeKind::from_code(0), None);
        let newer = EventKind::Unknown {
            code: 99,
            name: "SOMETHING_NEWER".into(),
        };
        assert_eq!((newer.code(), newer.name()), (99, "SOMETHING_NEWER"));
        assert!(newer.sign_out_required());
        assert!(!EventKind::from(ChangeKind::SignOutAcknowledged).sign_out_required());
    }
}
