//! The change event in the gRPC contract's forms: the protobuf message (the API's answers and
//! watch streams) and the proto3 JSON mapping of the same message (webhook bodies). Both are
//! here, below the API and the deliveries that use them, and a test keeps them in step.

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::change::{ChangeEvent, ChangeKind};
use crate::domain::telephony::TelephonySettings;
use crate::proto;

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn settings(s: TelephonySettings) -> proto::TelephonySettings {
    proto::TelephonySettings {
        inbound_calling: s.inbound_calling,
        outbound_calling: s.outbound_calling,
        sms: s.sms,
    }
}

/// An event of the log `log_id`.
pub fn change_event(e: &ChangeEvent, log_id: &str) -> proto::ChangeEvent {
    proto::ChangeEvent {
        sequence: e.sequence,
        event_id: e.event_id.clone(),
        account_id: e.account_id.to_string(),
        user_id: e.user_id.to_string(),
        // A kind of a newer version keeps its number: protobuf enums are open.
        kind: e.kind.code(),
        e164_phone_number: number_of(e),
        telephony_settings: Some(settings(e.settings)),
        sign_out_required: e.kind.sign_out_required(),
        notice: e.notice.clone(),
        actor: e.actor.clone(),
        occur_time: Some(timestamp(e.occur_time)),
        log_id: log_id.to_owned(),
    }
}

pub fn change_kind(kind: ChangeKind) -> proto::ChangeKind {
    match kind {
        ChangeKind::PhoneNumberAssigned => proto::ChangeKind::PhoneNumberAssigned,
        ChangeKind::PhoneNumberUnassigned => proto::ChangeKind::PhoneNumberUnassigned,
        ChangeKind::TelephonySettingsUpdated => proto::ChangeKind::TelephonySettingsUpdated,
        ChangeKind::UserSignOutRequested => proto::ChangeKind::UserSignOutRequested,
        ChangeKind::UserDeleted => proto::ChangeKind::UserDeleted,
        ChangeKind::SignOutAcknowledged => proto::ChangeKind::SignOutAcknowledged,
        ChangeKind::EmergencyLocationUpdated => proto::ChangeKind::EmergencyLocationUpdated,
    }
}

/// The change event in the proto3 JSON mapping: the fields of `telephony.admin.v1.ChangeEvent`
/// under their proto names, 64-bit integers as strings, enums by name, timestamps in RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEventJson {
    pub sequence: String,
    pub event_id: String,
    pub account_id: String,
    pub user_id: String,
    pub kind: String,
    pub e164_phone_number: String,
    pub telephony_settings: TelephonySettingsJson,
    pub sign_out_required: bool,
    pub notice: String,
    pub actor: String,
    pub occur_time: String,
    pub log_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelephonySettingsJson {
    pub inbound_calling: bool,
    pub outbound_calling: bool,
    pub sms: bool,
}

impl ChangeEventJson {
    /// The event `e` of the log `log_id`.
    pub fn new(e: &ChangeEvent, log_id: &str) -> Self {
        Self {
            sequence: e.sequence.to_string(),
            event_id: e.event_id.clone(),
            account_id: e.account_id.to_string(),
            user_id: e.user_id.to_string(),
            // The proto enum's names are the stored names with this prefix (a newer version's
            // kind too: its name is kept as written).
            kind: format!("CHANGE_KIND_{}", e.kind.name()),
            e164_phone_number: number_of(e),
            telephony_settings: TelephonySettingsJson {
                inbound_calling: e.settings.inbound_calling,
                outbound_calling: e.settings.outbound_calling,
                sms: e.settings.sms,
            },
            sign_out_required: e.kind.sign_out_required(),
            notice: e.notice.clone(),
            actor: e.actor.clone(),
            occur_time: rfc3339(e.occur_time),
            log_id: log_id.to_owned(),
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The event's number as the contract carries it: empty when the change concerns none.
fn number_of(e: &ChangeEvent) -> String {
    e.e164_phone_number
        .as_ref()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::EventKind;
    use crate::domain::ids::{AccountId, UserId};
    use crate::domain::phone_number::E164;

    #[test]
    fn every_field_matches_what_the_api_returns() {
        for kind in ChangeKind::ALL
            .map(EventKind::from)
            .into_iter()
            .chain([EventKind::Unknown {
                code: 99,
                name: "SOMETHING_NEWER".into(),
            }])
        {
            let event = ChangeEvent {
                sequence: 9,
                event_id: "e".into(),
                account_id: AccountId::from_stored("a".into()),
                user_id: UserId::from_stored("u".into()),
                kind: kind.clone(),
                e164_phone_number: Some(E164::from_stored("+12065550100".into())),
                settings: TelephonySettings {
                    inbound_calling: true,
                    outbound_calling: false,
                    sms: true,
                },
                notice: "n".into(),
                actor: "k".into(),
                occur_time: DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap(),
            };
            let api = change_event(&event, "log");
            let json = ChangeEventJson::new(&event, "log");
            assert_eq!(json.log_id, api.log_id);
            assert_eq!(api.kind, kind.code(), "the contract's number, known or not");
            match kind.known() {
                Some(known) => {
                    assert_eq!(api.kind(), change_kind(known));
                    assert_eq!(json.kind, api.kind().as_str_name());
                }
                None => assert_eq!(json.kind, "CHANGE_KIND_SOMETHING_NEWER"),
            }
            assert_eq!(json.sequence, api.sequence.to_string());
            assert_eq!(json.sign_out_required, api.sign_out_required);
            assert_eq!(json.e164_phone_number, api.e164_phone_number);
            let settings = api.telephony_settings.unwrap();
            assert_eq!(
                (
                    json.telephony_settings.inbound_calling,
                    json.telephony_settings.outbound_calling,
                    json.telephony_settings.sms
                ),
                (
                    settings.inbound_calling,
                    settings.outbound_calling,
                    settings.sms
                )
            );
            let t = api.occur_time.unwrap();
            assert_eq!(
                json.occur_time,
                rfc3339(DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap())
            );
        }
    }
}
