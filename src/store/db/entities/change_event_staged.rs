//! `change_events_staged`: events that earlier versions wrote on PostgreSQL without a sequence, in
//! the transaction of their change, and numbered after its commit. Its identity sequence still
//! hands out the staged ids of today's events, which the writer keeps in memory until it numbers
//! them (`store::engine::batch_events`); a row left here is numbered by the sweeper
//! (`store::engine::sequencer`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_events_staged")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: String,
    pub account_id: String,
    pub user_id: String,
    /// The kind's name (`enums::ChangeKind` for the kinds this version knows); a newer
    /// version's kind is kept as written.
    pub kind: String,
    /// The kind's number in the contract; NULL on rows written before it was recorded.
    pub kind_code: Option<i32>,
    pub e164: String,
    pub inbound_calling: bool,
    pub outbound_calling: bool,
    pub sms: bool,
    #[sea_orm(column_type = "Text")]
    pub notice: String,
    pub actor: String,
    pub occur_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
