//! The JSON body of a webhook delivery: the change event as the API returns it (the fields of
//! `telephony.admin.v1.ChangeEvent` under their proto names, in the proto3 JSON mapping: 64-bit
//! integers as strings, enums by name, timestamps in RFC 3339), wrapped as the Standard Webhooks
//! specification suggests (`type`, `timestamp`, `data`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::change::ChangeEvent;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// The event's kind, e.g. `CHANGE_KIND_PHONE_NUMBER_ASSIGNED`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the change occurred.
    pub timestamp: String,
    pub data: ChangeEventJson,
}

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
            account_id: e.account_id.clone(),
            user_id: e.user_id.clone(),
            // The proto enum's names are the stored names with this prefix.
            kind: format!("CHANGE_KIND_{}", e.kind.as_str()),
            e164_phone_number: e.e164_phone_number.clone(),
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

/// The body for `event` of the log `log_id`.
pub fn webhook_body(event: &ChangeEvent, log_id: &str) -> Vec<u8> {
    let data = ChangeEventJson::new(event, log_id);
    let payload = WebhookPayload {
        kind: data.kind.clone(),
        timestamp: data.occur_time.clone(),
        data,
    };
    serde_json::to_vec(&payload).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::ChangeKind;
    use crate::domain::telephony::TelephonySettings;

    #[test]
    fn the_body_carries_the_event_in_proto_json_form() {
        let event = ChangeEvent {
            sequence: 42,
            event_id: "e".into(),
            account_id: "a".into(),
            user_id: "u".into(),
            kind: ChangeKind::PhoneNumberAssigned,
            e164_phone_number: "+12065550100".into(),
            settings: TelephonySettings {
                sms: true,
                ..TelephonySettings::OFF
            },
            notice: "Your number".into(),
            actor: "k".into(),
            occur_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&event, "log")).unwrap();
        assert_eq!(body["type"], "CHANGE_KIND_PHONE_NUMBER_ASSIGNED");
        assert_eq!(body["data"]["sequence"], "42");
        assert_eq!(body["data"]["telephony_settings"]["sms"], true);
        assert_eq!(body["data"]["sign_out_required"], true);
        assert_eq!(body["data"]["occur_time"], "2023-11-14T22:13:20Z");
        assert_eq!(body["timestamp"], body["data"]["occur_time"]);
    }

    #[test]
    fn every_field_matches_what_the_api_returns() {
        for kind in [
            ChangeKind::PhoneNumberAssigned,
            ChangeKind::PhoneNumberUnassigned,
            ChangeKind::TelephonySettingsUpdated,
            ChangeKind::UserSignOutRequested,
            ChangeKind::UserDeleted,
        ] {
            let event = ChangeEvent {
                sequence: 9,
                event_id: "e".into(),
                account_id: "a".into(),
                user_id: "u".into(),
                kind,
                e164_phone_number: "+12065550100".into(),
                settings: TelephonySettings {
                    inbound_calling: true,
                    outbound_calling: false,
                    sms: true,
                },
                notice: "n".into(),
                actor: "k".into(),
                occur_time: DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap(),
            };
            let api = crate::api::convert::change_event(&event, "log");
            let json = ChangeEventJson::new(&event, "log");
            assert_eq!(json.log_id, api.log_id);
            assert_eq!(json.kind, api.kind().as_str_name());
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
