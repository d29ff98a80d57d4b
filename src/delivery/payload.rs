//! The JSON body of a webhook delivery: the change event as the API returns it, in the proto3
//! JSON mapping ([`ChangeEventJson`], kept beside the protobuf conversion in [`crate::convert`]),
//! wrapped as the Standard Webhooks specification suggests (`type`, `timestamp`, `data`).

use serde::{Deserialize, Serialize};

pub use crate::convert::{ChangeEventJson, TelephonySettingsJson};
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
    use chrono::DateTime;

    use super::*;
    use crate::domain::change::ChangeKind;
    use crate::domain::ids::{AccountId, UserId};
    use crate::domain::phone_number::E164;
    use crate::domain::telephony::TelephonySettings;

    #[test]
    fn the_body_carries_the_event_in_proto_json_form() {
        let event = ChangeEvent {
            sequence: 42,
            event_id: "e".into(),
            account_id: AccountId::from_stored("a".into()),
            user_id: UserId::from_stored("u".into()),
            kind: ChangeKind::PhoneNumberAssigned.into(),
            e164_phone_number: Some(E164::from_stored("+12065550100".into())),
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
}
