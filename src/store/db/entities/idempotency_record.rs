//! `idempotency_records`: the first result of each mutation that carried a `request_id`, per
//! tenant (`scope`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_records")]
pub struct Model {
    /// Whose request it was: `account/<id>` for an account-scoped key, `organisation` else.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    pub operation: String,
    pub fingerprint: String,
    #[sea_orm(column_type = "Text")]
    pub response: String,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
