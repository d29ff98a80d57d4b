//! `webhooks`: where change events are pushed, which ones, and the signing secret, sealed at
//! rest (`secrets_key`: AES-256-GCM, bound to the webhook's id).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    pub description: String,
    /// Only events of this account (`None`: every account).
    pub account_id: Option<String>,
    /// Kind names joined by commas (empty: every kind); see `enums::kinds_to_db`.
    pub kinds: String,
    /// Sealed (`sealed:v1:…`), or in the clear if stored by an older version and not yet sealed.
    pub secret: String,
    /// The secret before the last rotation, still signing until its expiry.
    pub previous_secret: Option<String>,
    pub previous_secret_expire_time: Option<DateTimeUtc>,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
