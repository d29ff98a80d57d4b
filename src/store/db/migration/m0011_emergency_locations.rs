//! Emergency locations: civic addresses, the locations on them, and which location an
//! account, a user or a number has.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmergencyAddresses {
    Table,
    Id,
    AccountId,
    Country,
    CompanyName,
    HouseNumber,
    HouseNumberSuffix,
    PreDirectional,
    StreetName,
    StreetSuffix,
    PostDirectional,
    City,
    StateOrProvince,
    PostalCode,
    Latitude,
    Longitude,
    ValidationState,
    ValidationProblems,
    CreateTime,
    UpdateTime,
}

#[derive(DeriveIden)]
enum EmergencyLocations {
    Table,
    Id,
    AccountId,
    AddressId,
    Place,
    CreateTime,
}

#[derive(DeriveIden)]
enum EmergencyLocationUses {
    Table,
    HolderKind,
    HolderId,
    AccountId,
    LocationId,
    UpdateTime,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use EmergencyAddresses as A;
        let text = |column: A| ColumnDef::new(column).string().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(A::Table)
                    .col(
                        ColumnDef::new(A::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(A::AccountId).string_len(64).not_null())
                    .col(ColumnDef::new(A::Country).string_len(2).not_null())
                    .col(text(A::CompanyName))
                    .col(text(A::HouseNumber))
                    .col(text(A::HouseNumberSuffix))
                    .col(text(A::PreDirectional))
                    .col(text(A::StreetName))
                    .col(text(A::StreetSuffix))
                    .col(text(A::PostDirectional))
                    .col(text(A::City))
                    .col(text(A::StateOrProvince))
                    .col(text(A::PostalCode))
                    .col(ColumnDef::new(A::Latitude).double().null())
                    .col(ColumnDef::new(A::Longitude).double().null())
                    .col(ColumnDef::new(A::ValidationState).string_len(32).not_null())
                    .col(ColumnDef::new(A::ValidationProblems).text().not_null())
                    .col(
                        ColumnDef::new(A::CreateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(A::UpdateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // An account's addresses in id (creation) order, for its lists.
        manager
            .create_index(
                Index::create()
                    .name("emergency_addresses_account")
                    .table(A::Table)
                    .col(A::AccountId)
                    .col(A::Id)
                    .to_owned(),
            )
            .await?;
        use EmergencyLocations as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .col(
                        ColumnDef::new(L::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(L::AccountId).string_len(64).not_null())
                    .col(ColumnDef::new(L::AddressId).string_len(64).not_null())
                    .col(ColumnDef::new(L::Place).string().not_null())
                    .col(
                        ColumnDef::new(L::CreateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("emergency_locations_account")
                    .table(L::Table)
                    .col(L::AccountId)
                    .col(L::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("emergency_locations_address")
                    .table(L::Table)
                    .col(L::AddressId)
                    .to_owned(),
            )
            .await?;
        use EmergencyLocationUses as U;
        manager
            .create_table(
                Table::create()
                    .table(U::Table)
                    .col(ColumnDef::new(U::HolderKind).string_len(16).not_null())
                    .col(ColumnDef::new(U::HolderId).string_len(64).not_null())
                    .col(ColumnDef::new(U::AccountId).string_len(64).not_null())
                    .col(ColumnDef::new(U::LocationId).string_len(64).not_null())
                    .col(
                        ColumnDef::new(U::UpdateTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(U::HolderKind).col(U::HolderId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("emergency_location_uses_location")
                    .table(U::Table)
                    .col(U::LocationId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EmergencyLocationUses::Table.into_iden(),
            EmergencyLocations::Table.into_iden(),
            EmergencyAddresses::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
