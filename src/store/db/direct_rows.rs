//! What the direct SQLite reads (`engine::sqlite_reads`) need from the tables: a SeaORM query's
//! bound values as rusqlite's, and rows decoded the way sqlx decodes them. Anything not in the
//! form the store writes is `None`, and the caller reads through the pool instead.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;
use rusqlite::types::Value as Sqlite;
use sea_orm::sea_query::Value;
use sea_orm::{ActiveEnum, DbBackend, QueryTrait, Statement};

use super::entities::phone_number;

/// The query's SQL for SQLite and its bound values; `None` for a value of a kind the store's
/// queries do not bind.
pub(crate) fn sqlite_statement(query: &impl QueryTrait) -> Option<(String, Vec<Sqlite>)> {
    let Statement { sql, values, .. } = query.build(DbBackend::Sqlite);
    let values = values
        .map(|values| values.0)
        .unwrap_or_default()
        .into_iter()
        .map(sqlite_value)
        .collect::<Option<Vec<_>>>()?;
    Some((sql, values))
}

fn sqlite_value(value: Value) -> Option<Sqlite> {
    Some(match value {
        Value::Bool(Some(b)) => Sqlite::Integer(b.into()),
        Value::Int(Some(i)) => Sqlite::Integer(i.into()),
        Value::BigInt(Some(i)) => Sqlite::Integer(i),
        Value::Unsigned(Some(i)) => Sqlite::Integer(i.into()),
        // LIMIT and OFFSET.
        Value::BigUnsigned(Some(i)) => Sqlite::Integer(i64::try_from(i).ok()?),
        Value::String(Some(s)) => Sqlite::Text(s),
        // As sqlx writes a time, so that comparisons with stored times agree.
        Value::ChronoDateTimeUtc(Some(t)) => {
            Sqlite::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }
        _ => return None,
    })
}

/// A time stored as RFC 3339 text (what sqlx writes).
pub(crate) fn time(row: &Row<'_>, column: usize) -> Option<DateTime<Utc>> {
    let text: String = row.get(column).ok()?;
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// A time that may be NULL: `Some(None)` for NULL.
pub(crate) fn optional_time(row: &Row<'_>, column: usize) -> Option<Option<DateTime<Utc>>> {
    match row.get::<_, Option<String>>(column).ok()? {
        None => Some(None),
        Some(_) => time(row, column).map(Some),
    }
}

/// An enum stored as its string value.
pub(crate) fn stored_enum<E: ActiveEnum<Value = String>>(
    row: &Row<'_>,
    column: usize,
) -> Option<E> {
    E::try_from_value(&row.get::<_, String>(column).ok()?).ok()
}

/// A `phone_numbers` row selected by `phone_number::Entity::find()` (every column, in the
/// entity's order).
pub(crate) fn phone_number_row(row: &Row<'_>) -> Option<phone_number::Model> {
    Some(phone_number::Model {
        e164: row.get(0).ok()?,
        country: row.get(1).ok()?,
        number_type: stored_enum(row, 2)?,
        product_type: stored_enum(row, 3)?,
        status: stored_enum(row, 4)?,
        account_id: row.get(5).ok()?,
        user_id: row.get(6).ok()?,
        associate_time: optional_time(row, 7)?,
        calling_name: row.get(8).ok()?,
        order_id: row.get(9).ok()?,
        create_time: time(row, 10)?,
        update_time: time(row, 11)?,
        deletion_time: optional_time(row, 12)?,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, Iterable};

    use super::*;

    /// [`phone_number_row`] reads columns by position: the entity's order must be the one it
    /// expects.
    #[test]
    fn phone_number_columns_are_in_the_decoded_order() {
        let columns: Vec<String> = phone_number::Column::iter()
            .map(|c| sea_orm::IdenStatic::as_str(&c).to_owned())
            .collect();
        assert_eq!(
            columns,
            [
                "e164",
                "country",
                "number_type",
                "product_type",
                "status",
                "account_id",
                "user_id",
                "associate_time",
                "calling_name",
                "order_id",
                "create_time",
                "update_time",
                "deletion_time"
            ]
        );
        let (sql, values) = sqlite_statement(&phone_number::Entity::find()).expect("a statement");
        assert!(
            sql.starts_with("SELECT \"phone_numbers\".\"e164\", \"phone_numbers\".\"country\""),
            "{sql}"
        );
        assert!(values.is_empty());
    }
}
