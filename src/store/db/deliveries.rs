//! The `deliveries` table's keys and new rows: each push delivery (a webhook, or the e-mail to
//! users) has one row, keyed by its sink.

use sea_orm::Set;

use super::entities::delivery;

/// The delivery key of the e-mail to users.
pub const MAIL_SINK: &str = "mail";

/// The delivery key of a webhook.
pub fn webhook_sink(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// A new delivery row for `sink`, starting after the event `start_after`.
pub(crate) fn new_delivery(sink: &str, start_after: u64) -> delivery::ActiveModel {
    delivery::ActiveModel {
        sink: Set(sink.to_owned()),
        cursor: Set(i64::try_from(start_after).unwrap_or(i64::MAX)),
        last_delivered: Set(0),
        paused: Set(false),
        failing_since: Set(None),
        last_error: Set(None),
        last_error_time: Set(None),
        lease_owner: Set(None),
        lease_expire_time: Set(None),
    }
}
