//! A number's history: every period a user held it, written in the savepoint of the change
//! that opens or closes it (assignment; unassignment or the user's deletion), and kept for good.
//! Read newest first, in keyset pages on (assign time, id).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::phone_number_assignment;
use super::page::{Page, PageRequest};
use super::views::AssignmentPeriod;
use super::writes::Writes;
use crate::domain::ids::{AccountId, UserId};
use crate::domain::phone_number::E164;
use crate::domain::{DomainError, account::new_id};
use crate::error::Result;

/// With the assignments: each user holds their number from `now`; one multi-row INSERT for
/// all of them (callers pass at most a few hundred, and at least one).
pub(crate) fn open_periods<'a>(
    writes: &mut Writes,
    periods: impl IntoIterator<Item = (&'a E164, &'a AccountId, &'a UserId)>,
    now: DateTime<Utc>,
) {
    writes.push(&phone_number_assignment::Entity::insert_many(
        periods.into_iter().map(|(e164, account_id, user_id)| {
            phone_number_assignment::ActiveModel {
                id: Set(new_id()),
                e164: Set(e164.to_string()),
                account_id: Set(account_id.to_string()),
                user_id: Set(user_id.to_string()),
                assign_time: Set(now),
                unassign_time: Set(None),
            }
        }),
    ));
}

/// With the release: the open periods of `e164s` end at `now` (callers pass at most a few
/// hundred numbers).
pub(crate) fn close_periods<'a>(
    writes: &mut Writes,
    e164s: impl IntoIterator<Item = &'a E164>,
    now: DateTime<Utc>,
) {
    use phone_number_assignment::Column;
    writes.push(
        &phone_number_assignment::Entity::update_many()
            .col_expr(Column::UnassignTime, sea_orm::sea_query::Expr::value(now))
            .filter(Column::E164.is_in(e164s.into_iter().map(E164::as_str)))
            .filter(Column::UnassignTime.is_null()),
    );
}

/// A page key: the period's start (microseconds) and id.
fn key_of(period: &phone_number_assignment::Model) -> String {
    format!("{}|{}", period.assign_time.timestamp_micros(), period.id)
}

fn parse_key(key: &str) -> Result<(DateTime<Utc>, String)> {
    let bad = || DomainError::invalid("page_token", "is not a page token of this list");
    let (micros, id) = key.split_once('|').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let time = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((time, id.to_owned()))
}

/// The periods `e164` was held, newest first; only `account`'s when given.
pub(crate) async fn list_periods(
    conn: &impl ConnectionTrait,
    e164: &E164,
    account: Option<&AccountId>,
    page: &PageRequest,
) -> Result<Page<AssignmentPeriod>> {
    use phone_number_assignment::Column;
    let mut query = phone_number_assignment::Entity::find()
        .filter(Column::E164.eq(e164.as_str()))
        .order_by_desc(Column::AssignTime)
        .order_by_desc(Column::Id);
    if let Some(account_id) = account {
        query = query.filter(Column::AccountId.eq(account_id.as_str()));
    }
    if let Some(after) = &page.after {
        let (time, id) = parse_key(after)?;
        query = query.filter(
            Condition::any().add(Column::AssignTime.lt(time)).add(
                Condition::all()
                    .add(Column::AssignTime.eq(time))
                    .add(Column::Id.lt(id)),
            ),
        );
    }
    let rows = query.limit(page.fetch_limit()).all(conn).await?;
    let page = page.finish(rows, key_of);
    Ok(Page {
        items: page.items.into_iter().map(AssignmentPeriod::from).collect(),
        next_page_token: page.next_page_token,
    })
}
