//! Two things that keep reads off the database's slow paths:
//!
//! - A revocation generation: one counter row that every revocation bumps, in the same
//!   transaction, and stamps on the revoked key. Servers cache verified keys in memory and ask
//!   for "keys revoked after generation N" instead of looking every key up on every call.
//! - Indexes for every filter of ListPhoneNumbers, each ending in `e164`, the keyset order, so
//!   that a page costs the same at a million numbers as at ten thousand. Filters on `user_id`
//!   (unique) need none of their own; an account's numbers are all ASSIGNED, so a status filter
//!   beside `account_id` never needs an index of its own either.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeyGeneration {
    Table,
    Id,
    Generation,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    RevokeGeneration,
}

#[derive(DeriveIden)]
enum PhoneNumbers {
    Table,
    E164,
    ProductType,
    Status,
    AccountId,
}

/// The ListPhoneNumbers indexes this migration adds: name and columns.
fn number_indexes() -> [(&'static str, Vec<PhoneNumbers>); 3] {
    use PhoneNumbers::{AccountId, E164, ProductType, Status};
    [
        ("phone_numbers_product", vec![ProductType, E164]),
        (
            "phone_numbers_status_product",
            vec![Status, ProductType, E164],
        ),
        (
            "phone_numbers_account_product",
            vec![AccountId, ProductType, E164],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyGeneration::Table)
                    .col(
                        ColumnDef::new(ApiKeyGeneration::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyGeneration::Generation)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ApiKeyGeneration::Table)
                    .columns([ApiKeyGeneration::Id, ApiKeyGeneration::Generation])
                    .values_panic([1.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(
                        ColumnDef::new(ApiKeys::RevokeGeneration)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_revoke_generation")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::RevokeGeneration)
                    .to_owned(),
            )
            .await?;

        for (name, columns) in number_indexes() {
            let mut index = Index::create();
            index.name(name).table(PhoneNumbers::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in number_indexes() {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(PhoneNumbers::Table)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("api_keys_revoke_generation")
                    .table(ApiKeys::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::RevokeGeneration)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeyGeneration::Table).to_owned())
            .await
    }
}
