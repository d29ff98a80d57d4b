//! Searching text columns: a case-insensitive "contains", the same on SQLite and PostgreSQL.

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Condition};

/// Rows where any of `columns` contains `text` (lower case), in any case. `%`, `_` and `\` in
/// `text` are plain characters. LOWER on both sides: PostgreSQL's LIKE minds case, and SQLite's
/// ignores it for ASCII only.
pub(crate) fn contains<C: ColumnTrait>(
    text: &str,
    columns: impl IntoIterator<Item = C>,
) -> Condition {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let pattern = format!("%{escaped}%");
    columns.into_iter().fold(Condition::any(), |any, column| {
        any.add(
            Expr::expr(Func::lower(Expr::col(column))).like(LikeExpr::new(&pattern).escape('\\')),
        )
    })
}
