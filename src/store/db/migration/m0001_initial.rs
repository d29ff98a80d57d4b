//! The first schema: accounts, users, the number inventory, orders, the change outbox,
//! idempotency keys and API keys. The uniqueness rules of the domain are constraints here too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Name,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    AccountId,
    Email,
    DisplayName,
    LicenseType,
    InboundCalling,
    OutboundCalling,
    Sms,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum PhoneNumbers {
    Table,
    E164,
    Country,
    NumberType,
    ProductType,
    Status,
    AccountId,
    UserId,
    AssociateTime,
    CallingName,
    OrderId,
    CreateTime,
    UpdateTime,
    DeletionTime,
}

#[derive(DeriveIden)]
enum PhoneNumberOrders {
    Table,
    Id,
    ProductType,
    Status,
    Items,
    CreateTime,
}

#[derive(DeriveIden)]
enum ChangeEvents {
    Table,
    Sequence,
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
enum ChangeLog {
    Table,
    Id,
    LastSequence,
    PurgedThrough,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    RequestId,
    Operation,
    Fingerprint,
    Response,
    CreateTime,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Role,
    AccountId,
    SecretHash,
    CreateTime,
    RevokeTime,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .string_len(64)
        .not_null()
        .primary_key()
        .take()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().take()
}

fn flag(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .boolean()
        .not_null()
        .default(false)
        .take()
}

fn time(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn optional_time(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(id(Accounts::Id))
                    .col(text(Accounts::Name))
                    .col(time(Accounts::CreateTime))
                    .col(time(Accounts::UpdateTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("accounts_name_id")
                    .table(Accounts::Table)
                    .col(Accounts::Name)
                    .col(Accounts::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(ColumnDef::new(Users::AccountId).string_len(64).not_null())
                    .col(text(Users::Email))
                    .col(text(Users::DisplayName))
                    .col(text(Users::LicenseType))
                    .col(flag(Users::InboundCalling))
                    .col(flag(Users::OutboundCalling))
                    .col(flag(Users::Sms))
                    .col(time(Users::CreateTime))
                    .col(time(Users::UpdateTime))
                    .foreign_key(
                        ForeignKey::create()
                            .name("users_account")
                            .from(Users::Table, Users::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_account_email")
                    .table(Users::Table)
                    .col(Users::AccountId)
                    .col(Users::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_account_id")
                    .table(Users::Table)
                    .col(Users::AccountId)
                    .col(Users::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PhoneNumbers::Table)
                    .col(
                        ColumnDef::new(PhoneNumbers::E164)
                            .string_len(20)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PhoneNumbers::Country)
                            .string_len(2)
                            .not_null(),
                    )
                    .col(text(PhoneNumbers::NumberType))
                    .col(text(PhoneNumbers::ProductType))
                    .col(text(PhoneNumbers::Status))
                    .col(
                        ColumnDef::new(PhoneNumbers::AccountId)
                            .string_len(64)
                            .null(),
                    )
                    .col(ColumnDef::new(PhoneNumbers::UserId).string_len(64).null())
                    .col(optional_time(PhoneNumbers::AssociateTime))
                    .col(text(PhoneNumbers::CallingName))
                    .col(text(PhoneNumbers::OrderId))
                    .col(time(PhoneNumbers::CreateTime))
                    .col(time(PhoneNumbers::UpdateTime))
                    .col(optional_time(PhoneNumbers::DeletionTime))
                    // An assigned number always names its user, and only an assigned one does.
                    .check(Expr::cust(
                        "(status = 'ASSIGNED' AND user_id IS NOT NULL AND account_id IS NOT NULL) \
                         OR (status <> 'ASSIGNED' AND user_id IS NULL AND account_id IS NULL)",
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("phone_numbers_user")
                            .from(PhoneNumbers::Table, PhoneNumbers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("phone_numbers_account")
                            .from(PhoneNumbers::Table, PhoneNumbers::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // One number per user: NULLs (unassigned numbers) do not collide.
        manager
            .create_index(
                Index::create()
                    .name("phone_numbers_user_unique")
                    .table(PhoneNumbers::Table)
                    .col(PhoneNumbers::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("phone_numbers_account")
                    .table(PhoneNumbers::Table)
                    .col(PhoneNumbers::AccountId)
                    .col(PhoneNumbers::E164)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("phone_numbers_status")
                    .table(PhoneNumbers::Table)
                    .col(PhoneNumbers::Status)
                    .col(PhoneNumbers::E164)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PhoneNumberOrders::Table)
                    .col(id(PhoneNumberOrders::Id))
                    .col(text(PhoneNumberOrders::ProductType))
                    .col(text(PhoneNumberOrders::Status))
                    .col(ColumnDef::new(PhoneNumberOrders::Items).text().not_null())
                    .col(time(PhoneNumberOrders::CreateTime))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChangeEvents::Table)
                    .col(
                        ColumnDef::new(ChangeEvents::Sequence)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ChangeEvents::EventId)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ChangeEvents::AccountId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChangeEvents::UserId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(text(ChangeEvents::Kind))
                    .col(text(ChangeEvents::E164))
                    .col(flag(ChangeEvents::InboundCalling))
                    .col(flag(ChangeEvents::OutboundCalling))
                    .col(flag(ChangeEvents::Sms))
                    .col(ColumnDef::new(ChangeEvents::Notice).text().not_null())
                    .col(text(ChangeEvents::Actor))
                    .col(time(ChangeEvents::OccurTime))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("change_events_account", ChangeEvents::AccountId),
            ("change_events_user", ChangeEvents::UserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ChangeEvents::Table)
                        .col(column)
                        .col(ChangeEvents::Sequence)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(ChangeLog::Table)
                    .col(
                        ColumnDef::new(ChangeLog::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ChangeLog::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChangeLog::PurgedThrough)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ChangeLog::Table)
                    .columns([
                        ChangeLog::Id,
                        ChangeLog::LastSequence,
                        ChangeLog::PurgedThrough,
                    ])
                    .values_panic([1.into(), 0i64.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(id(IdempotencyKeys::RequestId))
                    .col(text(IdempotencyKeys::Operation))
                    .col(text(IdempotencyKeys::Fingerprint))
                    .col(ColumnDef::new(IdempotencyKeys::Response).text().not_null())
                    .col(time(IdempotencyKeys::CreateTime))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(id(ApiKeys::Id))
                    .col(text(ApiKeys::Name))
                    .col(text(ApiKeys::Role))
                    .col(ColumnDef::new(ApiKeys::AccountId).string_len(64).null())
                    .col(
                        ColumnDef::new(ApiKeys::SecretHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(time(ApiKeys::CreateTime))
                    .col(optional_time(ApiKeys::RevokeTime))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApiKeys::Table.into_iden(),
            IdempotencyKeys::Table.into_iden(),
            ChangeLog::Table.into_iden(),
            ChangeEvents::Table.into_iden(),
            PhoneNumberOrders::Table.into_iden(),
            PhoneNumbers::Table.into_iden(),
            Users::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
