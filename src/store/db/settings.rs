//! A user's calling and SMS permissions, read alone (GetTelephonySettings): the direct SQLite
//! read and the pool's query, which answer alike.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::user;
use crate::domain::ids::{AccountId, UserId};
use crate::domain::telephony::TelephonySettings;
use crate::error::Result;

/// GetTelephonySettings' query for a direct SQLite read: the user's three permissions; `?1` the
/// user, `?2` the account.
pub(crate) const DIRECT_USER_SETTINGS: &str =
    "SELECT inbound_calling, outbound_calling, sms FROM users WHERE id = ?1 AND account_id = ?2";

/// A row of [`DIRECT_USER_SETTINGS`].
pub(crate) fn direct_user_settings(row: &rusqlite::Row<'_>) -> Option<TelephonySettings> {
    Some(TelephonySettings {
        inbound_calling: row.get(0).ok()?,
        outbound_calling: row.get(1).ok()?,
        sms: row.get(2).ok()?,
    })
}

/// The user's permissions (`None`: no such user in the account), as [`DIRECT_USER_SETTINGS`].
pub(crate) async fn find_user_settings(
    conn: &impl ConnectionTrait,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<Option<TelephonySettings>> {
    let row = user::Entity::find_by_id(user_id.as_str())
        .filter(user::Column::AccountId.eq(account_id.as_str()))
        .select_only()
        .column(user::Column::InboundCalling)
        .column(user::Column::OutboundCalling)
        .column(user::Column::Sms)
        .into_tuple::<(bool, bool, bool)>()
        .one(conn)
        .await?;
    Ok(row.map(
        |(inbound_calling, outbound_calling, sms)| TelephonySettings {
            inbound_calling,
            outbound_calling,
            sms,
        },
    ))
}
