//! `change_events`: the transactional outbox. A row is written in the same transaction as the
//! change it describes; `sequence` comes from `change_log` and has no gaps. On PostgreSQL rows
//! arrive here from `change_events_staged`, numbered as their transaction's last step, and keep
//! their staged id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sequence: i64,
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
    /// The event's id in `change_events_staged` (PostgreSQL); NULL when it was numbered as it
    /// was written (SQLite).
    pub staged_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
