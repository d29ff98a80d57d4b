//! Change events written without a sequence (PostgreSQL). A write transaction inserts its
//! events into `change_events_staged`, without touching the change-log counter; the sequencer
//! (`store::engine::sequencer`) numbers them after they commit and moves them into `change_events`,
//! keeping their staged id in `change_events.staged_id` so that an answer that named an event
//! by that id can be given its sequence later. SQLite never uses the table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChangeEventsStaged {
    Table,
    Id,
    EventId,
    AccountId,
    UserId,
    Kind,
    E164,
    InboundCalling,
    OutboundCalling,
    Sms,
    Notice,
    Actor,
    OccurTime,
}

#[derive(DeriveIden)]
enum ChangeEvents {
    Table,
    StagedId,
}

const STAGED_ID_INDEX: &str = "change_events_staged_id";

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().take()
}

fn flag(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).boolean().not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChangeEventsStaged::Table)
                    .col(
                        // Handed out at insert time, in increasing order: an event written by a
                        // transaction that saw another's effects gets a larger id than its events.
                        ColumnDef::new(ChangeEventsStaged::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ChangeEventsStaged::EventId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChangeEventsStaged::AccountId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChangeEventsStaged::UserId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(text(ChangeEventsStaged::Kind))
                    .col(text(ChangeEventsStaged::E164))
                    .col(flag(ChangeEventsStaged::InboundCalling))
                    .col(flag(ChangeEventsStaged::OutboundCalling))
                    .col(flag(ChangeEventsStaged::Sms))
                    .col(ColumnDef::new(ChangeEventsStaged::Notice).text().not_null())
                    .col(text(ChangeEventsStaged::Actor))
                    .col(
                        ColumnDef::new(ChangeEventsStaged::OccurTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeEvents::Table)
                    .add_column(ColumnDef::new(ChangeEvents::StagedId).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(STAGED_ID_INDEX)
                    .table(ChangeEvents::Table)
                    .col(ChangeEvents::StagedId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(STAGED_ID_INDEX)
                    .table(ChangeEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeEvents::Table)
                    .drop_column(ChangeEvents::StagedId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ChangeEventsStaged::Table).to_owned())
            .await
    }
}
