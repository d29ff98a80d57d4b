//! Push delivery of change events: the webhooks and, for every delivery (each webhook, and the
//! e-mail to users), its cursor, failure state and lease.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Description,
    AccountId,
    Kinds,
    Secret,
    PreviousSecret,
    PreviousSecretExpireTime,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Sink,
    Cursor,
    LastDelivered,
    Paused,
    FailingSince,
    LastError,
    LastErrorTime,
    LeaseOwner,
    LeaseExpireTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(
                        ColumnDef::new(Webhooks::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Webhooks::Url).text().not_null())
                    .col(ColumnDef::new(Webhooks::Description).string().not_null())
                    .col(ColumnDef::new(Webhooks::AccountId).string_len(64).null())
                    .col(ColumnDef::new(Webhooks::Kinds).string().not_null())
                    .col(ColumnDef::new(Webhooks::Secret).string().not_null())
                    .col(ColumnDef::new(Webhooks::PreviousSecret).string().null())
                    .col(
                        ColumnDef::new(Webhooks::PreviousSecretExpireTime)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Webhooks::CreateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Webhooks::UpdateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    // `webhook:<id>` or `mail`.
                    .col(
                        ColumnDef::new(Deliveries::Sink)
                            .string_len(80)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Deliveries::Cursor).big_integer().not_null())
                    .col(
                        ColumnDef::new(Deliveries::LastDelivered)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Deliveries::Paused)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Deliveries::FailingSince)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Deliveries::LastError).text().null())
                    .col(
                        ColumnDef::new(Deliveries::LastErrorTime)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Deliveries::LeaseOwner).string_len(64).null())
                    .col(
                        ColumnDef::new(Deliveries::LeaseExpireTime)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
