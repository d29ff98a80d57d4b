//! Who still has to sign out: four nullable columns on `users` (the oldest and the newest
//! sign-out-required change not yet acknowledged, each with its time; NULL when none is
//! pending), and a partial index of the pending users of an account in `id` order, so that
//! `ListUsers` with `sign_out_pending = true` reads only pending users, page by page.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AccountId,
    SignOutPendingOldestSequence,
    SignOutPendingOldestTime,
    SignOutPendingLatestSequence,
    SignOutPendingLatestTime,
}

const PENDING_USERS: &str = "users_sign_out_pending";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Users::SignOutPendingOldestSequence)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Users::SignOutPendingOldestTime)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Users::SignOutPendingLatestSequence)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Users::SignOutPendingLatestTime)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(PENDING_USERS)
                    .table(Users::Table)
                    .col(Users::AccountId)
                    .col(Users::Id)
                    .and_where(Expr::col(Users::SignOutPendingLatestSequence).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(PENDING_USERS)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Users::SignOutPendingOldestSequence,
            Users::SignOutPendingOldestTime,
            Users::SignOutPendingLatestSequence,
            Users::SignOutPendingLatestTime,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
