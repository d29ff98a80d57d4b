//! `deliveries`: one row per push delivery (`webhook:<id>`, `mail`): how far it got, whether it
//! is paused, its last failure, and which replica holds it (a lease with an expiry).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sink: String,
    /// Every event up to this sequence has been handled (delivered or not wanted).
    pub cursor: i64,
    /// The sequence of the last event delivered.
    pub last_delivered: i64,
    pub paused: bool,
    /// Since when every attempt has failed (`None` while deliveries succeed).
    pub failing_since: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTimeUtc>,
    /// The replica delivering, until `lease_expire_time`.
    pub lease_owner: Option<String>,
    pub lease_expire_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
