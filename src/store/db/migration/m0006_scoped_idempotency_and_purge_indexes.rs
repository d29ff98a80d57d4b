//! Two things the periodic purges and retries need:
//!
//! - An index on `change_events.occur_time`, so that finding the newest expired event reads
//!   only the expired ones instead of scanning the retained log on every run.
//! - Idempotency records scoped by tenant: `idempotency_records` has the primary key
//!   `(scope, request_id)`, so two accounts that happen to pick the same `request_id` each get
//!   their own result, and an index on `create_time` for the purge. It replaces
//!   `idempotency_keys` (a new table, because SQLite cannot change a primary key in place).
//!   Old records are dropped: they only serve retries within the retention window.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChangeEvents {
    Table,
    OccurTime,
    Sequence,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
}

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    Scope,
    RequestId,
    Operation,
    Fingerprint,
    Response,
    CreateTime,
}

const EVENTS_BY_TIME: &str = "change_events_occur_time";
const RECORDS_BY_TIME: &str = "idempotency_records_create_time";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(EVENTS_BY_TIME)
                    .table(ChangeEvents::Table)
                    .col(ChangeEvents::OccurTime)
                    .col(ChangeEvents::Sequence)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyRecords::Table)
                    .col(
                        ColumnDef::new(IdempotencyRecords::Scope)
                            .string_len(80)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyRecords::RequestId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyRecords::Operation)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyRecords::Fingerprint)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyRecords::Response)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IdempotencyRecords::CreateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(IdempotencyRecords::Scope)
                            .col(IdempotencyRecords::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(RECORDS_BY_TIME)
                    .table(IdempotencyRecords::Table)
                    .col(IdempotencyRecords::CreateTime)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "m0006 cannot be undone: the tenant of each idempotency record would be lost".into(),
        ))
    }
}
