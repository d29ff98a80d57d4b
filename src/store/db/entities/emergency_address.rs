//! `emergency_addresses`: civic addresses of an account, with what the validator found of each.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "emergency_addresses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub account_id: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub company_name: String,
    pub house_number: String,
    pub house_number_suffix: String,
    pub pre_directional: String,
    pub street_name: String,
    pub street_suffix: String,
    pub post_directional: String,
    pub city: String,
    pub state_or_province: String,
    pub postal_code: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// `unvalidated`, `structure_valid` or `invalid` (`domain::emergency::ValidationState`).
    pub validation_state: String,
    /// The problems per field, as JSON `[{"field": …, "description": …}]`.
    #[sea_orm(column_type = "Text")]
    pub validation_problems: String,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
