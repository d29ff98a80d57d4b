//! `phone_numbers`: the inventory, keyed by the E.164 form. `user_id` is unique: a user holds at
//! most one number, and a number (one row) belongs to at most one user.

use sea_orm::entity::prelude::*;

use super::enums::{NumberStatus, NumberType, ProductType};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "phone_numbers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub e164: String,
    pub country: String,
    pub number_type: NumberType,
    pub product_type: ProductType,
    pub status: NumberStatus,
    pub account_id: Option<String>,
    pub user_id: Option<String>,
    pub associate_time: Option<DateTimeUtc>,
    pub calling_name: String,
    pub order_id: String,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    pub deletion_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
