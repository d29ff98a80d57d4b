//! `phone_number_assignments`: every period a user held a number. Kept for good, unlike change
//! events; no foreign keys, so that the history outlives the user and the number.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "phone_number_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub e164: String,
    pub account_id: String,
    pub user_id: String,
    pub assign_time: DateTimeUtc,
    /// `None` while the user holds the number.
    pub unassign_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
