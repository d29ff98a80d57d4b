//! The write statements of one step of a use case, sent to the database together.
//!
//! Every call to the driver is a round trip: to the SQLite connection's thread, or to the
//! PostgreSQL server. A step's statements (a number back in the inventory, its history period
//! closed, the users' permissions; on SQLite also the events and the users' pending sign-outs)
//! therefore go in as few calls as the database allows:
//!
//! - **SQLite**: one call, as one SQL text whose `?` parameters sqlx binds statement by
//!   statement, in order. Each statement sees the ones before it.
//! - **PostgreSQL**, whose extended protocol takes one statement per message: consecutive
//!   statements that write different tables become one statement, the earlier ones as
//!   data-modifying `WITH` clauses of the last, their `$n` parameters renumbered. Such clauses
//!   run on one snapshot and do not see each other's rows, so two statements on one table never
//!   share a statement, and neither does a DELETE from a table that a foreign key references
//!   ([`REFERENCED`]: its check must see the rows the other clauses change). The statements of a
//!   step write what the step decided: none reads a table another one writes.
//!
//! An error stops the step; the use case's savepoint or transaction is rolled back with it.

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, QueryTrait, Statement, Value,
};

use crate::error::Result;

/// Statements to run in order, in one call where the database allows it.
pub(crate) struct Writes {
    backend: DbBackend,
    statements: Vec<Statement>,
}

impl Writes {
    /// No statements yet, for `txn`'s database.
    pub(crate) fn new(txn: &DatabaseTransaction) -> Self {
        Self {
            backend: txn.get_database_backend(),
            statements: Vec::new(),
        }
    }

    /// Adds `query` (an UPDATE, INSERT or DELETE built with SeaORM) after the others.
    pub(crate) fn push(&mut self, query: &impl QueryTrait) {
        self.statements.push(query.build(self.backend));
    }

    /// Runs the statements, in order.
    pub(crate) async fn run(self, txn: &DatabaseTransaction) -> Result<()> {
        let calls = match self.backend {
            DbBackend::Sqlite if self.statements.len() > 1 => vec![joined(self.statements)],
            DbBackend::Postgres => combined(self.statements),
            _ => self.statements,
        };
        for statement in calls {
            txn.execute_raw(statement).await?;
        }
        Ok(())
    }

    /// Runs the statements, then `last`, and answers the rows `last` returns. The statements
    /// before it must return none (no `RETURNING`), as SeaORM's UPDATE, DELETE and the INSERT
    /// of [`Writes::push`] do.
    pub(crate) async fn run_then_query(
        mut self,
        txn: &DatabaseTransaction,
        last: Statement,
    ) -> Result<Vec<QueryResult>> {
        if self.backend == DbBackend::Sqlite {
            self.statements.push(last);
            return Ok(txn.query_all_raw(joined(self.statements)).await?);
        }
        self.run(txn).await?;
        Ok(txn.query_all_raw(last).await?)
    }
}

/// One SQLite text of `statements`, their parameters in the same order.
fn joined(statements: Vec<Statement>) -> Statement {
    let mut sql = String::new();
    let mut values: Vec<Value> = Vec::new();
    for statement in statements {
        sql.push_str(&statement.sql);
        sql.push_str(";\n");
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    // Parameters are bound in order across the statements: each must use SQLite's unnumbered
    // `?`, as sea-query writes them.
    debug_assert_eq!(sql.matches('?').count(), values.len(), "{sql}");
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

/// The tables that foreign keys reference: a DELETE from one of them runs on its own.
pub(crate) const REFERENCED: [&str; 2] = ["accounts", "users"];

/// PostgreSQL: `statements` in order, each run of consecutive ones on different tables made
/// one statement.
fn combined(statements: Vec<Statement>) -> Vec<Statement> {
    let mut out = Vec::with_capacity(statements.len());
    let mut group: Vec<(String, Statement)> = Vec::new();
    for statement in statements {
        match combinable_table(&statement) {
            Some(table) if !group.iter().any(|(seen, _)| *seen == table) => {
                group.push((table, statement));
            }
            Some(table) => {
                out.extend(with_clauses(std::mem::take(&mut group)));
                group.push((table, statement));
            }
            None => {
                out.extend(with_clauses(std::mem::take(&mut group)));
                out.push(statement);
            }
        }
    }
    out.extend(with_clauses(group));
    out
}

/// The table `statement` writes, when it may share a statement: an UPDATE, INSERT or DELETE as
/// SeaORM writes them (no literal, no RETURNING), not a DELETE from a [`REFERENCED`] table.
fn combinable_table(statement: &Statement) -> Option<String> {
    let sql = statement.sql.as_str();
    if sql.contains('\'') || sql.contains("RETURNING") {
        return None;
    }
    let (rest, deletes) = if let Some(rest) = sql.strip_prefix("DELETE FROM \"") {
        (rest, true)
    } else {
        let rest =
            (sql.strip_prefix("UPDATE \"")).or_else(|| sql.strip_prefix("INSERT INTO \""))?;
        (rest, false)
    };
    let table = rest.split('"').next()?;
    (!(deletes && REFERENCED.contains(&table))).then(|| table.to_owned())
}

/// One statement doing the work of `group`'s: `WITH w0 AS (…), w1 AS (…) <last>`.
fn with_clauses(group: Vec<(String, Statement)>) -> Option<Statement> {
    if group.len() <= 1 {
        return group.into_iter().next().map(|(_, statement)| statement);
    }
    let mut texts = Vec::with_capacity(group.len());
    let mut values: Vec<Value> = Vec::new();
    for (_, statement) in group {
        texts.push(renumbered(&statement.sql, values.len()));
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    let last = texts.pop()?;
    let clauses: Vec<String> = (texts.iter().enumerate())
        .map(|(at, text)| format!("w{at} AS ({text})"))
        .collect();
    let sql = format!("WITH {} {last}", clauses.join(", "));
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
}

/// `sql` with each parameter `$n` made `$(n + offset)`.
fn renumbered(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &str, values: usize) -> Statement {
        let values: Vec<Value> = (0..values as i64).map(Value::from).collect();
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    #[test]
    fn consecutive_writes_to_different_tables_share_a_statement() {
        let out = combined(vec![
            statement(r#"DELETE FROM "uses" WHERE "id" IN ($1)"#, 1),
            statement(r#"UPDATE "numbers" SET "x" = $1 WHERE "id" IN ($2, $3)"#, 3),
            statement(r#"INSERT INTO "periods" ("a", "b") VALUES ($1, $2)"#, 2),
            // The same table again: a new statement.
            statement(r#"UPDATE "numbers" SET "y" = $1"#, 1),
            statement(r#"UPDATE "users" SET "z" = $1 WHERE "id" = $2"#, 2),
            // A referenced table's DELETE runs alone.
            statement(r#"DELETE FROM "users" WHERE "id" = $1"#, 1),
            statement(r#"UPDATE "periods" SET "t" = $1"#, 1),
        ]);
        let sql: Vec<&str> = out.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                r#"WITH w0 AS (DELETE FROM "uses" WHERE "id" IN ($1)), w1 AS (UPDATE "numbers" SET "x" = $2 WHERE "id" IN ($3, $4)) INSERT INTO "periods" ("a", "b") VALUES ($5, $6)"#,
                r#"WITH w0 AS (UPDATE "numbers" SET "y" = $1) UPDATE "users" SET "z" = $2 WHERE "id" = $3"#,
                r#"DELETE FROM "users" WHERE "id" = $1"#,
                r#"UPDATE "periods" SET "t" = $1"#,
            ]
        );
        let counts: Vec<usize> = out
            .iter()
            .map(|s| s.values.as_ref().map_or(0, |v| v.0.len()))
            .collect();
        assert_eq!(counts, [6, 3, 1, 1]);
    }

    #[test]
    fn a_statement_with_a_literal_or_returning_runs_alone() {
        let out = combined(vec![
            statement(r#"UPDATE "a" SET "s" = 'x'"#, 0),
            statement(r#"UPDATE "b" SET "n" = $1 RETURNING "n""#, 1),
            statement(r#"UPDATE "c" SET "n" = $1"#, 1),
        ]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn renumbering_moves_every_parameter_and_nothing_else() {
        assert_eq!(
            renumbered("a = $1 AND b IN ($2, $10) AND c = '$'", 5),
            "a = $6 AND b IN ($7, $15) AND c = '$'"
        );
    }
}
