//! Checks on SQLite's query plans for ListPhoneNumbers' filters: each combination is answered by
//! walking an index in `e164` order (no sort of the matching rows), so a page costs the same
//! however large the inventory.

use sea_orm::{ConnectionTrait, DbBackend, QuerySelect, QueryTrait, Statement};

use super::numbers::{NumberFilter, numbers_query};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

use super::migration::Migrator;
use crate::domain::phone_number::{NumberStatus, NumberType};

/// SQLite's plan of one page of the filtered list.
async fn plan(
    db: &DatabaseConnection,
    filter: &NumberFilter,
    status: Option<NumberStatus>,
) -> String {
    let query = numbers_query(filter, status, Some("+1206555"), super::now())
        .limit(51)
        .build(DbBackend::Sqlite);
    let explain = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        format!("EXPLAIN QUERY PLAN {}", query.sql),
        query.values.map(|v| v.0).unwrap_or_default(),
    );
    let rows = db.query_all_raw(explain).await.expect("plan");
    rows.iter()
        .map(|row| row.try_get::<String>("", "detail").expect("detail"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn every_region_filter_walks_an_index_in_e164_order() {
    let db = Database::connect("sqlite::memory:")
        .await
        .expect("database");
    Migrator::up(&db, None).await.expect("migrate");
    let us = || Some("US".to_owned());
    let local = Some(NumberType::Local);
    let prefix = || Some("+1206".to_owned());
    let cases = [
        (
            NumberFilter {
                e164_prefix: prefix(),
                ..Default::default()
            },
            None,
            "sqlite_autoindex",
        ),
        (
            NumberFilter {
                country: us(),
                ..Default::default()
            },
            None,
            "phone_numbers_country ",
        ),
        (
            NumberFilter {
                number_type: local,
                ..Default::default()
            },
            None,
            "phone_numbers_type ",
        ),
        (
            NumberFilter {
                country: us(),
                number_type: local,
                e164_prefix: prefix(),
                ..Default::default()
            },
            None,
            "USING INDEX phone_numbers_",
        ),
        (
            NumberFilter {
                country: us(),
                ..Default::default()
            },
            Some(NumberStatus::Unassigned),
            "USING INDEX phone_numbers_",
        ),
        (
            NumberFilter {
                number_type: local,
                e164_prefix: prefix(),
                ..Default::default()
            },
            Some(NumberStatus::Unassigned),
            "USING INDEX phone_numbers_",
        ),
        (
            NumberFilter {
                country: us(),
                number_type: local,
                ..Default::default()
            },
            Some(NumberStatus::Unassigned),
            "USING INDEX phone_numbers_",
        ),
    ];
    for (filter, status, index) in cases {
        let plan = plan(&db, &filter, status).await;
        assert!(plan.contains(index), "{filter:?} {status:?}: {plan}");
        assert!(
            !plan.contains("TEMP B-TREE"),
            "{filter:?} {status:?}: {plan}"
        );
    }
}
