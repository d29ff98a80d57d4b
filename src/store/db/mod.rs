//! Tables: the SeaORM entities, the migrations, the read models built from rows ([`views`]),
//! keyset pages ([`page`]), and the row functions that several use cases share, one query or
//! set statement each ([`users`], [`numbers`], [`history`]); a step's write statements are
//! collected in [`writes`], to go to the database together. Nothing here knows the writer or a
//! use case: `engine` and `use_cases` point down to this layer, never the other way.

pub mod emergency;
pub mod entities;
pub mod migration;
pub mod page;
pub mod views;

pub(crate) mod deliveries;
pub(crate) mod direct_rows;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod numbers;
pub(crate) mod search;
pub(crate) mod settings;
pub(crate) mod users;
pub(crate) mod writes;

#[cfg(test)]
mod inventory_plans;

use crate::domain::DomainError;
use crate::domain::ids::AccountId;

/// Ids per `IN (…)` list and rows per set statement: a CASE binds two values per row and a
/// multi-row INSERT up to 14, so this stays far below SQLite's and PostgreSQL's limits on bound
/// values.
pub(crate) const SET_CHUNK: usize = 500;

/// The current time at the precision both databases store (microseconds), so that a value
/// answered from memory equals the one read back later.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// The values in first-seen order, without repeats.
pub(crate) fn distinct<'a, T: Eq + std::hash::Hash + ?Sized>(
    values: impl Iterator<Item = &'a T>,
) -> Vec<&'a T> {
    let mut seen = std::collections::HashSet::new();
    values.filter(|value| seen.insert(*value)).collect()
}

pub(crate) fn account_not_found(id: &AccountId) -> DomainError {
    DomainError::NotFound {
        resource: "account",
        name: id.to_string(),
    }
}

/// Escapes LIKE wildcards so a prefix matches literally.
pub(crate) fn escape_like(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
