//! `change_log`: one row holding the last sequence handed out, the last one purged, and the
//! log's identity.
//! Updating the row locks it until commit, so sequences commit in the order they are issued.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub last_sequence: i64,
    pub purged_through: i64,
    /// The log's identity, random, created with the database.
    pub log_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
