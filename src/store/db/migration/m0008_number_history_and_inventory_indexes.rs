//! A number's history and the inventory's new filters:
//!
//! - `phone_number_assignments`: one row per period a user held a number, opened by an
//!   assignment and closed by the unassignment (or the user's deletion) in the same savepoint.
//!   Numbers assigned before this migration get their current period, from their
//!   `associate_time`. Indexed by number and start, the order the history is listed in.
//! - Indexes for ListPhoneNumbers' `country` and `type` filters, alone, together and beside
//!   `status`, each ending in `e164` (the keyset order) so that a page stays flat however large
//!   the inventory. `e164_prefix` is a range on `e164` itself, so it rides on any of them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum PhoneNumbers {
    Table,
    E164,
    Country,
    NumberType,
    Status,
    AccountId,
    UserId,
    AssociateTime,
}

#[derive(DeriveIden)]
enum PhoneNumberAssignments {
    Table,
    Id,
    E164,
    AccountId,
    UserId,
    AssignTime,
    UnassignTime,
}

const HISTORY_BY_NUMBER: &str = "phone_number_assignments_e164_assign_time";

/// The ListPhoneNumbers indexes this migration adds: name and columns.
fn number_indexes() -> [(&'static str, Vec<PhoneNumbers>); 6] {
    use PhoneNumbers::{Country, E164, NumberType, Status};
    [
        ("phone_numbers_country", vec![Country, E164]),
        ("phone_numbers_type", vec![NumberType, E164]),
        (
            "phone_numbers_country_type",
            vec![Country, NumberType, E164],
        ),
        ("phone_numbers_status_country", vec![Status, Country, E164]),
        ("phone_numbers_status_type", vec![Status, NumberType, E164]),
        (
            "phone_numbers_status_country_type",
            vec![Status, Country, NumberType, E164],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PhoneNumberAssignments::Table)
                    .col(
                        ColumnDef::new(PhoneNumberAssignments::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PhoneNumberAssignments::E164)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PhoneNumberAssignments::AccountId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PhoneNumberAssignments::UserId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PhoneNumberAssignments::AssignTime)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PhoneNumberAssignments::UnassignTime)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(HISTORY_BY_NUMBER)
                    .table(PhoneNumberAssignments::Table)
                    .col(PhoneNumberAssignments::E164)
                    .col(PhoneNumberAssignments::AssignTime)
                    .col(PhoneNumberAssignments::Id)
                    .to_owned(),
            )
            .await?;
        // The periods open now: the number's E.164 is a unique id for each.
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(PhoneNumberAssignments::Table)
                    .columns([
                        PhoneNumberAssignments::Id,
                        PhoneNumberAssignments::E164,
                        PhoneNumberAssignments::AccountId,
                        PhoneNumberAssignments::UserId,
                        PhoneNumberAssignments::AssignTime,
                    ])
                    .select_from(
                        Query::select()
                            .columns([
                                PhoneNumbers::E164,
                                PhoneNumbers::E164,
                                PhoneNumbers::AccountId,
                                PhoneNumbers::UserId,
                                PhoneNumbers::AssociateTime,
                            ])
                            .from(PhoneNumbers::Table)
                            .and_where(Expr::col(PhoneNumbers::UserId).is_not_null())
                            .and_where(Expr::col(PhoneNumbers::AccountId).is_not_null())
                            .and_where(Expr::col(PhoneNumbers::AssociateTime).is_not_null())
                            .to_owned(),
                    )
                    .map_err(|e| DbErr::Migration(e.to_string()))?
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
            .drop_table(
                Table::drop()
                    .table(PhoneNumberAssignments::Table)
                    .to_owned(),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Database, EntityTrait, Set};
    use sea_orm_migration::MigratorTrait;

    use crate::store::db::entities::{account, enums, phone_number, phone_number_assignment, user};
    use crate::store::db::migration::Migrator;

    /// The migrations before this one.
    const BEFORE: u32 = 5;

    #[tokio::test]
    async fn numbers_assigned_before_the_migration_get_their_open_period() {
        let db = Database::connect("sqlite::memory:")
            .await
            .expect("database");
        Migrator::up(&db, Some(BEFORE))
            .await
            .expect("earlier migrations");
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
        account::ActiveModel {
            id: Set("a1".into()),
            name: Set("Account".into()),
            create_time: Set(now),
            update_time: Set(now),
        }
        .insert(&db)
        .await
        .expect("account");
        user::ActiveModel {
            id: Set("u1".into()),
            account_id: Set("a1".into()),
            email: Set("ann@example.com".into()),
            display_name: Set("Ann".into()),
            license_type: Set(enums::LicenseType::Basic),
            inbound_calling: Set(false),
            outbound_calling: Set(false),
            sms: Set(false),
            create_time: Set(now),
            update_time: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .expect("user");
        for (e164, holder) in [("+12065550100", Some(("a1", "u1"))), ("+12065550101", None)] {
            phone_number::ActiveModel {
                e164: Set(e164.into()),
                country: Set("US".into()),
                number_type: Set(enums::NumberType::Local),
                product_type: Set(enums::ProductType::BusinessCalling),
                status: Set(if holder.is_some() {
                    enums::NumberStatus::Assigned
                } else {
                    enums::NumberStatus::Unassigned
                }),
                account_id: Set(holder.map(|(a, _)| a.to_owned())),
                user_id: Set(holder.map(|(_, u)| u.to_owned())),
                associate_time: Set(holder.map(|_| now)),
                calling_name: Set(String::new()),
                order_id: Set("o1".into()),
                create_time: Set(now),
                update_time: Set(now),
                deletion_time: Set(None),
            }
            .insert(&db)
            .await
            .expect("number");
        }

        Migrator::up(&db, None).await.expect("this migration");
        let periods = phone_number_assignment::Entity::find()
            .all(&db)
            .await
            .expect("history");
        assert_eq!(periods.len(), 1, "{periods:?}");
        let period = &periods[0];
        assert_eq!(
            (
                period.e164.as_str(),
                period.account_id.as_str(),
                period.user_id.as_str()
            ),
            ("+12065550100", "a1", "u1")
        );
        assert_eq!(period.assign_time, now);
        assert_eq!(period.unassign_time, None);
    }
}
