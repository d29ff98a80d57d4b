//! `emergency_location_uses`: which location an account (its default), a user or a number
//! has; one row per holder. Kept apart from the holders' own tables so that "who uses this
//! location" is one indexed query, and a holder without a location has no row.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "emergency_location_uses")]
pub struct Model {
    /// `account`, `user` or `number`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub holder_kind: String,
    /// The account's or user's id, or the number in E.164 form.
    #[sea_orm(primary_key, auto_increment = false)]
    pub holder_id: String,
    /// The account the holder is in (for a number: the account it is assigned to).
    pub account_id: String,
    pub location_id: String,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
