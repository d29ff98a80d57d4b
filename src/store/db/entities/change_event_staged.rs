//! `change_events_staged`: events written on PostgreSQL without a sequence, in the transaction of
//! their change, until the sequencer (`store::engine::sequencer`) numbers them into `change_events`.

use sea_orm::entity::prelude::*;

use super::enums::ChangeKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_events_staged")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: String,
    pub account_id: String,
    pub user_id: String,
    pub kind: ChangeKind,
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
