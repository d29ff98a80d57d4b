//! The `users` table's row functions that several use cases share: a user with the number
//! they hold (one LEFT JOIN), locked or not; new users inserted, and their names and licences,
//! permissions and pending sign-out columns written, many users in one statement; and GetUser's
//! query in the form the direct SQLite read runs it. A user's number is read from
//! `phone_numbers` (the row pointing at the user), so the two can never disagree.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr, Func, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QuerySelect, QueryTrait, Select, Set,
};

use super::SET_CHUNK;
use super::direct_rows::{optional_time, stored_enum, time};
use super::entities::{enums, phone_number, user};
use super::views::UserView;
use super::writes::Writes;
use crate::domain::DomainError;
use crate::domain::ids::{AccountId, LocationId, UserId};
use crate::domain::sign_out::SignOutPending;
use crate::domain::telephony::TelephonySettings;
use crate::domain::user::Email;
use crate::error::{Error, Result, is_unique_violation};

/// Which users of an account a list answers; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub email: Option<Email>,
    /// Users whose email or display name contains this text, in any case (lower-cased).
    pub search: Option<String>,
    /// Whether a sign-out is pending.
    pub sign_out_pending: Option<bool>,
    /// Users whose own emergency location is this one.
    pub emergency_location: Option<LocationId>,
    /// Users holding a number whose country requires an emergency location, without one.
    pub missing_emergency_location: bool,
}

pub(crate) fn user_not_found(account_id: &AccountId, user_id: &UserId) -> DomainError {
    DomainError::NotFound {
        resource: "user",
        name: format!("{user_id} in account {account_id}"),
    }
}

pub(crate) fn email_taken(account_id: &AccountId, email: &Email) -> DomainError {
    DomainError::AlreadyExists {
        resource: "user",
        name: format!("with email {email} in account {account_id}"),
    }
}

/// A user's row and their number's E.164, as one LEFT JOIN row.
#[derive(FromQueryResult)]
pub(crate) struct UserWithNumber {
    id: String,
    account_id: String,
    email: String,
    display_name: String,
    license_type: enums::LicenseType,
    inbound_calling: bool,
    outbound_calling: bool,
    sms: bool,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    sign_out_pending_oldest_sequence: Option<i64>,
    sign_out_pending_oldest_time: Option<DateTime<Utc>>,
    sign_out_pending_latest_sequence: Option<i64>,
    sign_out_pending_latest_time: Option<DateTime<Utc>>,
    phone_number: Option<String>,
}

/// The user and their number in one indexed query (primary key, and the unique `user_id` of
/// `phone_numbers`).
pub(crate) async fn find_user_view(
    conn: &impl ConnectionTrait,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<Option<UserView>> {
    read_user_view(conn, account_id, user_id, false).await
}

/// The query of [`find_user_view`]; with `lock`, the user's row is locked until the
/// transaction ends.
async fn read_user_view(
    conn: &impl ConnectionTrait,
    account_id: &AccountId,
    user_id: &UserId,
    lock: bool,
) -> Result<Option<UserView>> {
    let query = user::Entity::find_by_id(user_id.as_str())
        .filter(user::Column::AccountId.eq(account_id.as_str()));
    let row = with_number(query, lock)
        .into_model::<UserWithNumber>()
        .one(conn)
        .await?;
    Ok(row.map(UserWithNumber::into_view))
}

/// The users `rows`, in their order, with the numbers they hold: one query.
pub(crate) async fn with_numbers(
    db: &impl ConnectionTrait,
    rows: Vec<user::Model>,
) -> Result<Vec<UserView>> {
    let ids: Vec<&str> = rows.iter().map(|u| u.id.as_str()).collect();
    let mut numbers: HashMap<String, String> = if ids.is_empty() {
        HashMap::new()
    } else {
        phone_number::Entity::find()
            .filter(phone_number::Column::UserId.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .filter_map(|n| n.user_id.map(|user_id| (user_id, n.e164)))
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|user| {
            let number = numbers.remove(&user.id);
            UserView::new(user, number)
        })
        .collect())
}

/// The users `user_ids` (of any account) with their numbers, by id, their rows locked until the
/// transaction ends: one query per [`SET_CHUNK`] ids. Their pending sign-outs are as stored.
pub(crate) async fn lock_user_views(
    txn: &DatabaseTransaction,
    user_ids: &[&UserId],
) -> Result<HashMap<UserId, UserView>> {
    let mut views = HashMap::with_capacity(user_ids.len());
    for chunk in user_ids.chunks(SET_CHUNK) {
        let query =
            user::Entity::find().filter(user::Column::Id.is_in(chunk.iter().map(|id| id.as_str())));
        let rows = with_number(query, true)
            .into_model::<UserWithNumber>()
            .all(txn)
            .await?;
        for view in rows.into_iter().map(UserWithNumber::into_view) {
            views.insert(view.user_id.clone(), view);
        }
    }
    Ok(views)
}

/// `query` with the E.164 of the number each user holds (a LEFT JOIN); with `lock`, the users'
/// rows are locked until the transaction ends (only theirs: the number's side may be empty).
pub(crate) fn with_number(query: Select<user::Entity>, lock: bool) -> Select<user::Entity> {
    let mut query = query
        .column_as(phone_number::Column::E164, "phone_number")
        .join_rev(JoinType::LeftJoin, user_number());
    if lock {
        QueryTrait::query(&mut query).lock_with_tables(LockType::Update, [user::Entity]);
    }
    query
}

impl UserWithNumber {
    pub(crate) fn into_view(self) -> UserView {
        let r = self;
        UserView::new(
            user::Model {
                id: r.id,
                account_id: r.account_id,
                email: r.email,
                display_name: r.display_name,
                license_type: r.license_type,
                inbound_calling: r.inbound_calling,
                outbound_calling: r.outbound_calling,
                sms: r.sms,
                create_time: r.create_time,
                update_time: r.update_time,
                sign_out_pending_oldest_sequence: r.sign_out_pending_oldest_sequence,
                sign_out_pending_oldest_time: r.sign_out_pending_oldest_time,
                sign_out_pending_latest_sequence: r.sign_out_pending_latest_sequence,
                sign_out_pending_latest_time: r.sign_out_pending_latest_time,
            },
            r.phone_number,
        )
    }
}

/// users → phone_numbers on `phone_numbers.user_id = users.id`.
fn user_number() -> sea_orm::RelationDef {
    use sea_orm::EntityTrait as _;
    phone_number::Entity::belongs_to(user::Entity)
        .from(phone_number::Column::UserId)
        .to(user::Column::Id)
        .into()
}

/// The user, locked, with their number: one query. The pending sign-out is as stored (on
/// PostgreSQL, without changes not yet numbered).
pub(crate) async fn lock_user_view(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<UserView> {
    read_user_view(txn, account_id, user_id, true)
        .await?
        .ok_or_else(|| user_not_found(account_id, user_id).into())
}

/// Writes each user's permissions (each user once): one statement per [`SET_CHUNK`] users,
/// however their permissions differ. A permission the users all end with is one value; else it
/// is on for the users in one `IN` list and off for the others.
pub(crate) fn write_many_settings<'a>(
    writes: &mut Writes,
    users: impl Iterator<Item = (&'a UserId, TelephonySettings)>,
    now: DateTime<Utc>,
) {
    use user::Column;
    let users: Vec<(&UserId, TelephonySettings)> = users.collect();
    for chunk in users.chunks(SET_CHUNK) {
        let permission = |on: fn(&TelephonySettings) -> bool| -> Expr {
            let holders: Vec<&str> = (chunk.iter())
                .filter(|(_, settings)| on(settings))
                .map(|(user_id, _)| user_id.as_str())
                .collect();
            match holders.len() {
                0 => Expr::value(false),
                n if n == chunk.len() => Expr::value(true),
                _ => CaseStatement::new()
                    .case(Column::Id.is_in(holders), Expr::value(true))
                    .finally(Expr::value(false))
                    .into(),
            }
        };
        writes.push(
            &user::Entity::update_many()
                .col_expr(Column::InboundCalling, permission(|s| s.inbound_calling))
                .col_expr(Column::OutboundCalling, permission(|s| s.outbound_calling))
                .col_expr(Column::Sms, permission(|s| s.sms))
                .col_expr(Column::UpdateTime, Expr::value(now))
                .filter(Column::Id.is_in(chunk.iter().map(|(user_id, _)| user_id.as_str()))),
        );
    }
}

/// Inserts new users: one multi-row INSERT per [`SET_CHUNK`] users. A unique violation (an
/// address taken by a concurrent request, on another replica, between the check and the insert)
/// is a conflict: the writer runs the whole set again, and it is then decided on the state that
/// request left.
pub(crate) async fn insert_users(txn: &DatabaseTransaction, rows: &[user::Model]) -> Result<()> {
    for chunk in rows.chunks(SET_CHUNK) {
        let inserted =
            user::Entity::insert_many(chunk.iter().cloned().map(|row| user::ActiveModel {
                id: Set(row.id),
                account_id: Set(row.account_id),
                email: Set(row.email),
                display_name: Set(row.display_name),
                license_type: Set(row.license_type),
                inbound_calling: Set(row.inbound_calling),
                outbound_calling: Set(row.outbound_calling),
                sms: Set(row.sms),
                create_time: Set(row.create_time),
                update_time: Set(row.update_time),
                ..Default::default()
            }))
            .exec(txn)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::conflict()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes each user's display name and licence as `users` holds them (each user once): one
/// UPDATE per [`SET_CHUNK`] users, the values by user id.
pub(crate) async fn write_profiles(
    txn: &DatabaseTransaction,
    users: &[&UserView],
    now: DateTime<Utc>,
) -> Result<()> {
    use user::Column;
    for chunk in users.chunks(SET_CHUNK) {
        let (names, licenses): (Vec<_>, Vec<_>) = chunk
            .iter()
            .map(|view| {
                let id = view.user_id.as_str();
                let license = enums::LicenseType::from(view.license_type);
                (
                    (id, view.display_name.as_str().into()),
                    (id, license.into()),
                )
            })
            .unzip();
        user::Entity::update_many()
            .col_expr(Column::DisplayName, value_per_row(Column::Id, &names))
            .col_expr(Column::LicenseType, value_per_row(Column::Id, &licenses))
            .col_expr(Column::UpdateTime, Expr::value(now))
            .filter(Column::Id.is_in(chunk.iter().map(|view| view.user_id.as_str())))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// A column's new value in one set statement over several rows, each row's by its `key`
/// column: the value itself when every row gets the same one (a CASE over hundreds of rows
/// costs SQLite a comparison per row for each row it updates), else a CASE on the key. `rows`
/// is not empty.
pub(crate) fn value_per_row<C: ColumnTrait>(key: C, rows: &[(&str, sea_orm::Value)]) -> Expr {
    match rows {
        [(_, first), rest @ ..] if rest.iter().all(|(_, value)| value == first) => {
            Expr::value(first.clone())
        }
        _ => rows
            .iter()
            .fold(CaseStatement::new(), |case, (id, value)| {
                case.case(key.eq(*id), Expr::value(value.clone()))
            })
            .into(),
    }
}

const MARK_CHUNK: usize = 500;

/// Inside the savepoint that gives sign-out-required events their sequences (SQLite; the
/// sequencer's statement does the same on PostgreSQL), given as (user, sequence, time) in
/// sequence order: each user's newest event becomes their latest pending change, and
/// their first one the oldest if none was pending. One statement per [`MARK_CHUNK`] users; a
/// deleted user's row is gone, so their USER_DELETED event marks nothing.
pub(crate) fn mark_pending(writes: &mut Writes, events: &[(&str, i64, DateTime<Utc>)]) {
    use user::Column;
    type Mark = (i64, DateTime<Utc>);
    // Each user's first and last event, in the order users first appear.
    let mut users: Vec<(&str, Mark, Mark)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for &(user_id, sequence, time) in events {
        match index.get(user_id) {
            Some(&at) => users[at].2 = (sequence, time),
            None => {
                index.insert(user_id, users.len());
                users.push((user_id, (sequence, time), (sequence, time)));
            }
        }
    }
    for chunk in users.chunks(MARK_CHUNK) {
        // A CASE only where the values differ: one over hundreds of users costs SQLite a
        // comparison per user for each row it updates.
        let by_user = |pick: &dyn Fn(&(&str, Mark, Mark)) -> sea_orm::Value| -> Expr {
            let first = pick(&chunk[0]);
            match chunk {
                [_] => Expr::value(first),
                _ if chunk[1..].iter().all(|entry| pick(entry) == first) => Expr::value(first),
                _ => {
                    let mut case = CaseStatement::new();
                    for entry in chunk {
                        case = case.case(Column::Id.eq(entry.0), Expr::value(pick(entry)));
                    }
                    case.into()
                }
            }
        };
        writes.push(
            &user::Entity::update_many()
                .col_expr(
                    Column::SignOutPendingOldestSequence,
                    Func::coalesce([
                        Expr::col(Column::SignOutPendingOldestSequence),
                        by_user(&|u| u.1.0.into()),
                    ])
                    .into(),
                )
                .col_expr(
                    Column::SignOutPendingOldestTime,
                    Func::coalesce([
                        Expr::col(Column::SignOutPendingOldestTime),
                        by_user(&|u| u.1.1.into()),
                    ])
                    .into(),
                )
                .col_expr(
                    Column::SignOutPendingLatestSequence,
                    by_user(&|u| u.2.0.into()),
                )
                .col_expr(Column::SignOutPendingLatestTime, by_user(&|u| u.2.1.into()))
                .filter(Column::Id.is_in(chunk.iter().map(|u| u.0))),
        );
    }
}

pub(crate) async fn write_pending(
    txn: &DatabaseTransaction,
    user_id: &UserId,
    pending: Option<SignOutPending>,
) -> Result<()> {
    use user::Column;
    let sequence = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    user::Entity::update_many()
        .col_expr(
            Column::SignOutPendingOldestSequence,
            Expr::value(pending.map(|p| sequence(p.oldest_sequence))),
        )
        .col_expr(
            Column::SignOutPendingOldestTime,
            Expr::value(pending.map(|p| p.oldest_time)),
        )
        .col_expr(
            Column::SignOutPendingLatestSequence,
            Expr::value(pending.map(|p| sequence(p.latest_sequence))),
        )
        .col_expr(
            Column::SignOutPendingLatestTime,
            Expr::value(pending.map(|p| p.latest_time)),
        )
        .filter(Column::Id.eq(user_id.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// GetUser's query for a direct SQLite read (`engine::sqlite_reads`): the same row as
/// [`find_user_view`], the user and the E.164 of the number they hold; `?1` the user, `?2` the
/// account.
pub(crate) static DIRECT_USER_VIEW: LazyLock<String> =
    LazyLock::new(|| format!("{DIRECT_USER_COLUMNS} {DIRECT_USER_FROM}"));

/// The columns [`direct_user_view`] reads, in its order; how many there are.
pub(crate) const DIRECT_USER_COLUMNS: &str = "SELECT u.id, u.account_id, u.email, \
    u.display_name, u.license_type, u.inbound_calling, u.outbound_calling, u.sms, \
    u.create_time, u.update_time, u.sign_out_pending_oldest_sequence, \
    u.sign_out_pending_oldest_time, u.sign_out_pending_latest_sequence, \
    u.sign_out_pending_latest_time, p.e164";
pub(crate) const DIRECT_USER_COLUMN_COUNT: usize = 15;
/// The rest of [`DIRECT_USER_VIEW`]: the user `?1` of the account `?2`, and their number.
pub(crate) const DIRECT_USER_FROM: &str = "FROM users AS u \
    LEFT JOIN phone_numbers AS p ON p.user_id = u.id WHERE u.id = ?1 AND u.account_id = ?2";

/// A row of [`DIRECT_USER_VIEW`]; `None` when a value is not in the form the store writes.
pub(crate) fn direct_user_view(row: &rusqlite::Row<'_>) -> Option<UserView> {
    let model = user::Model {
        id: row.get(0).ok()?,
        account_id: row.get(1).ok()?,
        email: row.get(2).ok()?,
        display_name: row.get(3).ok()?,
        license_type: stored_enum(row, 4)?,
        inbound_calling: row.get(5).ok()?,
        outbound_calling: row.get(6).ok()?,
        sms: row.get(7).ok()?,
        create_time: time(row, 8)?,
        update_time: time(row, 9)?,
        sign_out_pending_oldest_sequence: row.get(10).ok()?,
        sign_out_pending_oldest_time: optional_time(row, 11)?,
        sign_out_pending_latest_sequence: row.get(12).ok()?,
        sign_out_pending_latest_time: optional_time(row, 13)?,
    };
    let phone_number: Option<String> = row.get(14).ok()?;
    Some(UserView::new(model, phone_number))
}
