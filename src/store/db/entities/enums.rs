//! The enum columns: the names their values are stored under, and the one mapping between each
//! and the domain's enum. The columns are plain strings in the schema, so the stored values stay
//! readable and no migration is needed; SeaORM converts them (an unknown name read back is a
//! database error, never a silent default).

use sea_orm::entity::prelude::*;

use crate::domain;

/// A stored enum and its domain twin, variant for variant.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident <=> $domain:ty { $($variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $(#[sea_orm(string_value = $value)] $variant,)+
        }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                type Domain = $domain;
                match value {
                    $(Domain::$variant => Self::$variant,)+
                }
            }
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => Self::$variant,)+
                }
            }
        }
    };
}

stored_enum! {
    /// `phone_numbers.status`.
    NumberStatus <=> domain::phone_number::NumberStatus {
        Unassigned = "UNASSIGNED",
        Assigned = "ASSIGNED",
        DeleteInProgress = "DELETE_IN_PROGRESS",
    }
}

stored_enum! {
    /// `phone_numbers.number_type`.
    NumberType <=> domain::phone_number::NumberType {
        Local = "LOCAL",
        TollFree = "TOLL_FREE",
    }
}

stored_enum! {
    /// `phone_numbers.product_type` and `phone_number_orders.product_type`.
    ProductType <=> domain::phone_number::ProductType {
        BusinessCalling = "BUSINESS_CALLING",
        VoiceConnector = "VOICE_CONNECTOR",
        SipMediaApplicationDialIn = "SIP_MEDIA_APPLICATION_DIAL_IN",
    }
}

stored_enum! {
    /// `phone_number_orders.status`.
    OrderStatus <=> domain::phone_number::OrderStatus {
        Successful = "SUCCESSFUL",
        Partial = "PARTIAL",
        Failed = "FAILED",
    }
}

stored_enum! {
    /// `change_events.kind`, and the names in `webhooks.kinds`.
    ChangeKind <=> domain::change::ChangeKind {
        PhoneNumberAssigned = "PHONE_NUMBER_ASSIGNED",
        PhoneNumberUnassigned = "PHONE_NUMBER_UNASSIGNED",
        TelephonySettingsUpdated = "TELEPHONY_SETTINGS_UPDATED",
        UserSignOutRequested = "USER_SIGN_OUT_REQUESTED",
        UserDeleted = "USER_DELETED",
        SignOutAcknowledged = "SIGN_OUT_ACKNOWLEDGED",
        EmergencyLocationUpdated = "EMERGENCY_LOCATION_UPDATED",
    }
}

stored_enum! {
    /// `users.license_type`.
    LicenseType <=> domain::user::LicenseType {
        Basic = "BASIC",
        Plus = "PLUS",
        Pro = "PRO",
        ProTrial = "PRO_TRIAL",
    }
}

stored_enum! {
    /// `api_keys.role`.
    Role <=> domain::role::Role {
        Admin = "admin",
        Viewer = "viewer",
        SessionService = "session-service",
    }
}

/// The stored kinds of the changes that need no sign-in again (the acknowledgement itself, an
/// emergency location): what a pending sign-out does not count.
pub fn kinds_without_sign_out() -> Vec<ChangeKind> {
    domain::change::ChangeKind::ALL
        .into_iter()
        .filter(|kind| !kind.sign_out_required())
        .map(ChangeKind::from)
        .collect()
}

/// The kinds of a webhook's filter as stored: their names joined by commas (empty: every kind).
pub fn kinds_to_db(kinds: &[domain::change::ChangeKind]) -> String {
    kinds
        .iter()
        .map(|k| ChangeKind::from(*k).to_value())
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored form back; unknown names (from a newer version) are ignored.
pub fn kinds_from_db(value: &str) -> Vec<domain::change::ChangeKind> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|name| ChangeKind::try_from_value(&name.to_owned()).ok())
        .map(Into::into)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    #[test]
    fn stored_names_are_those_of_the_schema() {
        // The values written before these enums were derived: renaming one needs a migration
        // (adding one does not: the columns are plain text).
        let names = |values: Vec<String>| values.join(",");
        assert_eq!(
            names(NumberStatus::iter().map(|v| v.to_value()).collect()),
            "UNASSIGNED,ASSIGNED,DELETE_IN_PROGRESS"
        );
        assert_eq!(
            names(ChangeKind::iter().map(|v| v.to_value()).collect()),
            "PHONE_NUMBER_ASSIGNED,PHONE_NUMBER_UNASSIGNED,TELEPHONY_SETTINGS_UPDATED,USER_SIGN_OUT_REQUESTED,USER_DELETED,SIGN_OUT_ACKNOWLEDGED,EMERGENCY_LOCATION_UPDATED"
        );
        assert_eq!(
            names(Role::iter().map(|v| v.to_value()).collect()),
            "admin,viewer,session-service"
        );
        assert_eq!(
            names(LicenseType::iter().map(|v| v.to_value()).collect()),
            "BASIC,PLUS,PRO,PRO_TRIAL"
        );
    }

    #[test]
    fn webhook_kinds_round_trip_and_unknown_names_are_ignored() {
        use domain::change::ChangeKind as Kind;
        let kinds = vec![Kind::PhoneNumberAssigned, Kind::UserDeleted];
        assert_eq!(kinds_to_db(&kinds), "PHONE_NUMBER_ASSIGNED,USER_DELETED");
        assert_eq!(kinds_from_db(&kinds_to_db(&kinds)), kinds);
        assert_eq!(
            kinds_from_db("USER_DELETED,SOMETHING_NEW"),
            vec![Kind::UserDeleted]
        );
        assert!(kinds_from_db("").is_empty());
    }
}
