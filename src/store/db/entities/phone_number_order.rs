//! `phone_number_orders`: each order and the outcome of every number in it (as JSON).

use sea_orm::entity::prelude::*;

use super::enums::{OrderStatus, ProductType};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "phone_number_orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub product_type: ProductType,
    pub status: OrderStatus,
    #[sea_orm(column_type = "Text")]
    pub items: String,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
