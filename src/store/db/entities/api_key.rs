//! `api_keys`: who may call the service. Only a SHA-256 hash of each secret is kept.

use sea_orm::entity::prelude::*;

use super::enums::Role;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub role: Role,
    pub account_id: Option<String>,
    #[sea_orm(unique)]
    pub secret_hash: String,
    pub create_time: DateTimeUtc,
    pub revoke_time: Option<DateTimeUtc>,
    /// The revocation generation this key was revoked in (see `store::keys`).
    pub revoke_generation: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
