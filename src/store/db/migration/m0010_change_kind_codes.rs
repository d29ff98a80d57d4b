//! The contract's number of each change event's kind, beside its name, in `change_events` and
//! `change_events_staged`. A version that does not know a kind (a newer replica wrote it during
//! a rolling upgrade) still passes the event on with its number (protobuf enums are open) and
//! its name. Rows written before this migration have no number (NULL): their names are all
//! known, and the name says the kind.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChangeEvents {
    Table,
    KindCode,
}

#[derive(DeriveIden)]
enum ChangeEventsStaged {
    Table,
    KindCode,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per table (SQLite adds one column per statement); no backfill, so that
        // PostgreSQL does not rewrite the retained log.
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeEvents::Table)
                    .add_column(ColumnDef::new(ChangeEvents::KindCode).integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeEventsStaged::Table)
                    .add_column(
                        ColumnDef::new(ChangeEventsStaged::KindCode)
                            .integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeEventsStaged::Table)
                    .drop_column(ChangeEventsStaged::KindCode)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeEvents::Table)
                    .drop_column(ChangeEvents::KindCode)
                    .to_owned(),
            )
            .await
    }
}
