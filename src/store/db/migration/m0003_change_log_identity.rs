//! The change log's identity: a random `log_id`, created once with the database, that every
//! event and checkpoint carries. Sequences restart or repeat when a database is restored from a
//! backup or replaced; a consumer that sends back the `log_id` of its resume point learns that
//! its sequence belongs to another log instead of silently skipping or re-reading events.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChangeLog {
    Table,
    Id,
    LogId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeLog::Table)
                    .add_column(
                        ColumnDef::new(ChangeLog::LogId)
                            .string()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(ChangeLog::Table)
                    .value(ChangeLog::LogId, uuid::Uuid::new_v4().to_string())
                    .and_where(Expr::col(ChangeLog::Id).eq(1))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeLog::Table)
                    .drop_column(ChangeLog::LogId)
                    .to_owned(),
            )
            .await
    }
}
