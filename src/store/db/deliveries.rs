//! The `deliveries` table's keys and new rows: each push delivery (a webhook, or the e-mail to
//! users) has one row, keyed by its sink.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Set, Statement};

use super::entities::delivery;
use crate::error::Result;

/// The PostgreSQL channel on which a delivery that may have become claimable (a new or resumed
/// webhook) is announced, so that every replica's supervisor looks at once (the payload is the
/// sink).
pub const DELIVERIES_CHANNEL: &str = "telephony_admin_deliveries";

/// The delivery key of the e-mail to users.
pub const MAIL_SINK: &str = "mail";

/// The delivery key of a webhook.
pub fn webhook_sink(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// Announces on PostgreSQL, when `txn` commits, that `sink` may be claimable; a rolled-back
/// savepoint drops the announcement with it. SQLite has one process: its signal is enough.
pub(crate) async fn announce(txn: &DatabaseTransaction, sink: &str) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [DELIVERIES_CHANNEL.into(), sink.into()],
        ))
        .await?;
    }
    Ok(())
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
