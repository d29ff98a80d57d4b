//! Users of an account: the read model, the use cases that create, change, delete and sign out
//! a user, and the repository functions they share. A user's number is read from
//! `phone_numbers` (the row pointing at the user), so the two can never disagree.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set,
};

use super::Store;
use super::accounts::account_not_found;
use super::batch::{NewUserItem, SET_CHUNK, SingleItem, distinct};
use super::entities::{account, enums, phone_number, user};
use super::new_users::CreateUsers;
use super::outbox::{append_change, append_changes};
use super::page::{Page, PageRequest};
use super::phone_numbers::release_number;
use super::sign_out::pending_of;
use super::writer::{Mutation, TxnFuture};
use crate::domain::DomainError;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::sign_out::SignOutPending;
use crate::domain::telephony::{TelephonySettings, UserLine};
use crate::domain::user::{DisplayName, Email, LicenseType};
use crate::error::{Error, Result};

/// A user with the number they hold. An idempotent request's retry gets it back through its
/// stored form (`store::answers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub account_id: String,
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub license_type: LicenseType,
    pub settings: TelephonySettings,
    pub phone_number: Option<String>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Sign-out-required changes not yet acknowledged.
    pub sign_out_pending: Option<SignOutPending>,
}

impl UserView {
    pub(super) fn new(user: user::Model, phone_number: Option<String>) -> Self {
        Self {
            sign_out_pending: pending_of(&user),
            settings: TelephonySettings {
                inbound_calling: user.inbound_calling,
                outbound_calling: user.outbound_calling,
                sms: user.sms,
            },
            account_id: user.account_id,
            user_id: user.id,
            email: user.email,
            display_name: user.display_name,
            license_type: user.license_type.into(),
            phone_number,
            create_time: user.create_time,
            update_time: user.update_time,
        }
    }

    pub fn settings(&self) -> TelephonySettings {
        self.settings
    }

    /// The user as the telephony rules see them.
    pub fn line(&self) -> UserLine {
        UserLine {
            user_id: self.user_id.clone(),
            phone_number: self.phone_number.clone(),
            settings: self.settings,
        }
    }
}

/// Fields of a user to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<DisplayName>,
    pub license_type: Option<LicenseType>,
}

pub(super) fn user_not_found(account_id: &AccountId, user_id: &UserId) -> DomainError {
    DomainError::NotFound {
        resource: "user",
        name: format!("{user_id} in account {account_id}"),
    }
}

pub(super) fn email_taken(account_id: &AccountId, email: &Email) -> DomainError {
    DomainError::AlreadyExists {
        resource: "user",
        name: format!("with email {email} in account {account_id}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Repository functions: one query each.
// ---------------------------------------------------------------------------------------------

/// A user's row and their number's E.164, as one LEFT JOIN row.
#[derive(FromQueryResult)]
struct UserWithNumber {
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
pub(super) async fn find_user_view(
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

/// The users `user_ids` (of any account) with their numbers, by id, their rows locked until the
/// transaction ends: one query per [`SET_CHUNK`] ids. Their pending sign-outs are as stored.
pub(super) async fn lock_user_views(
    txn: &DatabaseTransaction,
    user_ids: &[&str],
) -> Result<HashMap<String, UserView>> {
    let mut views = HashMap::with_capacity(user_ids.len());
    for chunk in user_ids.chunks(SET_CHUNK) {
        let query = user::Entity::find().filter(user::Column::Id.is_in(chunk.iter().copied()));
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
fn with_number(query: Select<user::Entity>, lock: bool) -> Select<user::Entity> {
    let mut query = query
        .column_as(phone_number::Column::E164, "phone_number")
        .join_rev(JoinType::LeftJoin, user_number());
    if lock {
        QueryTrait::query(&mut query).lock_with_tables(LockType::Update, [user::Entity]);
    }
    query
}

impl UserWithNumber {
    fn into_view(self) -> UserView {
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
pub(super) async fn lock_user_view(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<UserView> {
    read_user_view(txn, account_id, user_id, true)
        .await?
        .ok_or_else(|| user_not_found(account_id, user_id).into())
}

/// Writes each user's permissions: one statement per distinct outcome (assigning and
/// unassigning always turn everything off; updates have at most eight) and [`SET_CHUNK`] users.
pub(super) async fn write_many_settings<'a>(
    txn: &DatabaseTransaction,
    users: impl Iterator<Item = (&'a str, TelephonySettings)>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut by_settings: Vec<(TelephonySettings, Vec<&str>)> = Vec::new();
    for (user_id, settings) in users {
        match by_settings.iter_mut().find(|(s, _)| *s == settings) {
            Some((_, users)) => users.push(user_id),
            None => by_settings.push((settings, vec![user_id])),
        }
    }
    for (settings, user_ids) in &by_settings {
        for chunk in user_ids.chunks(SET_CHUNK) {
            user::Entity::update_many()
                .set(user::ActiveModel {
                    inbound_calling: Set(settings.inbound_calling),
                    outbound_calling: Set(settings.outbound_calling),
                    sms: Set(settings.sms),
                    update_time: Set(now),
                    ..Default::default()
                })
                .filter(user::Column::Id.is_in(chunk.iter().copied()))
                .exec(txn)
                .await?;
        }
    }
    Ok(())
}

/// Writes the columns set in `model` to the user's row.
async fn update_user_row(
    txn: &DatabaseTransaction,
    user_id: &str,
    model: user::ActiveModel,
) -> Result<()> {
    user::Entity::update_many()
        .set(model)
        .filter(user::Column::Id.eq(user_id))
        .exec(txn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Use cases, each run by the writer inside a savepoint.
// ---------------------------------------------------------------------------------------------

pub(super) struct UpdateUser {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub update: UserUpdate,
}

impl Mutation for UpdateUser {
    type Output = UserView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, UserView> {
        Box::pin(update_user(txn, self))
    }
}

pub(super) async fn update_user(txn: &DatabaseTransaction, cmd: &UpdateUser) -> Result<UserView> {
    let view = lock_user_view(txn, &cmd.account_id, &cmd.user_id).await?;
    let now = super::now();
    let mut model = user::ActiveModel {
        update_time: Set(now),
        ..Default::default()
    };
    let mut updated = UserView {
        update_time: now,
        ..view
    };
    if let Some(display_name) = &cmd.update.display_name {
        model.display_name = Set(display_name.to_string());
        updated.display_name = display_name.to_string();
    }
    if let Some(license_type) = cmd.update.license_type {
        model.license_type = Set(license_type.into());
        updated.license_type = license_type;
    }
    update_user_row(txn, cmd.user_id.as_str(), model).await?;
    Ok(updated)
}

pub(super) struct DeleteUser {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub actor: String,
}

impl Mutation for DeleteUser {
    type Output = ();
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(delete_user(txn, self))
    }
}

/// Deletes the user; their number goes back to the inventory, and they are told.
pub(super) async fn delete_user(txn: &DatabaseTransaction, cmd: &DeleteUser) -> Result<()> {
    let view = lock_user_view(txn, &cmd.account_id, &cmd.user_id).await?;
    if let Some(number) = &view.phone_number {
        release_number(txn, number).await?;
    }
    user::Entity::delete_by_id(cmd.user_id.as_str())
        .exec(txn)
        .await?;
    append_change(
        txn,
        NewChange {
            account_id: cmd.account_id.clone(),
            user_id: cmd.user_id.clone(),
            kind: ChangeKind::UserDeleted,
            e164_phone_number: view.phone_number.unwrap_or_default(),
            settings: TelephonySettings::OFF,
            actor: cmd.actor.clone(),
        },
    )
    .await?;
    Ok(())
}

pub(super) struct LogoutUser {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub actor: String,
}

impl Mutation for LogoutUser {
    type Output = u64;
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, u64> {
        Box::pin(async move {
            logout_users(txn, vec![self])
                .await?
                .pop()
                .ok_or_else(|| Error::Internal("a sign-out of one user has no outcome".into()))?
        })
    }

    fn visit_sequences(sequence: &mut u64, visit: &mut dyn FnMut(&mut u64)) {
        visit(sequence);
    }

    /// Any two: each sign-out names its own user and actor.
    fn joins(&self, _other: &Self) -> bool {
        true
    }

    fn run_together<'a>(
        all: Vec<&'a Self>,
        txn: &'a DatabaseTransaction,
    ) -> TxnFuture<'a, Vec<Result<u64>>> {
        Box::pin(logout_users(txn, all))
    }
}

/// Asks each user's sign-out everywhere, in order: each event's sequence, or the user's
/// NOT_FOUND. The users in one query (per [`SET_CHUNK`]), the events in one append.
async fn logout_users(
    txn: &DatabaseTransaction,
    all: Vec<&LogoutUser>,
) -> Result<Vec<Result<u64>>> {
    let ids = distinct(all.iter().map(|cmd| cmd.user_id.as_str()));
    let views = lock_user_views(txn, &ids).await?;
    let mut changes = Vec::with_capacity(all.len());
    let mut found = Vec::with_capacity(all.len());
    for cmd in &all {
        match views.get(cmd.user_id.as_str()) {
            Some(view) if view.account_id == cmd.account_id.as_str() => {
                changes.push(NewChange {
                    account_id: cmd.account_id.clone(),
                    user_id: cmd.user_id.clone(),
                    kind: ChangeKind::UserSignOutRequested,
                    e164_phone_number: view.phone_number.clone().unwrap_or_default(),
                    settings: view.settings,
                    actor: cmd.actor.clone(),
                });
                found.push(true);
            }
            _ => found.push(false),
        }
    }
    let mut events = append_changes(txn, changes).await?.into_iter();
    all.iter()
        .zip(found)
        .map(|(cmd, found)| {
            if !found {
                return Ok(Err(user_not_found(&cmd.account_id, &cmd.user_id).into()));
            }
            events
                .next()
                .map(|event| Ok(event.sequence))
                .ok_or_else(|| Error::Internal("a sign-out has no event".into()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The store's surface for the api layer.
// ---------------------------------------------------------------------------------------------

impl Store {
    pub async fn create_user(
        &self,
        account_id: &AccountId,
        email: Email,
        display_name: DisplayName,
        license_type: LicenseType,
    ) -> Result<UserView> {
        self.write(SingleItem {
            use_case: CreateUsers,
            item: NewUserItem {
                account_id: account_id.clone(),
                email,
                display_name,
                license_type,
            },
            idempotency: None,
        })
        .await
    }

    /// One indexed query on a reader.
    pub async fn get_user(&self, account_id: &AccountId, user_id: &UserId) -> Result<UserView> {
        let found = match self.direct_user_view(account_id, user_id) {
            Some(found) => found,
            None => find_user_view(self.connection(), account_id, user_id).await?,
        };
        found.ok_or_else(|| user_not_found(account_id, user_id).into())
    }

    /// Users of an account in creation order, or the one with `email`; with
    /// `sign_out_pending`, only those with (true) or without (false) a change to pick up.
    pub async fn list_users(
        &self,
        account_id: &AccountId,
        email: Option<&Email>,
        sign_out_pending: Option<bool>,
        page: &PageRequest,
    ) -> Result<Page<UserView>> {
        let db = self.connection();
        account::Entity::find_by_id(account_id.as_str())
            .one(db)
            .await?
            .ok_or_else(|| account_not_found(account_id))?;
        let mut query = user::Entity::find()
            .filter(user::Column::AccountId.eq(account_id.as_str()))
            .order_by_asc(user::Column::Id);
        if let Some(email) = email {
            query = query.filter(user::Column::Email.eq(email.as_str()));
        }
        // `true` is served by the partial index of pending users (migration m0007).
        match sign_out_pending {
            Some(true) => {
                query = query.filter(user::Column::SignOutPendingLatestSequence.is_not_null())
            }
            Some(false) => {
                query = query.filter(user::Column::SignOutPendingLatestSequence.is_null())
            }
            None => {}
        }
        if let Some(after) = &page.after {
            query = query.filter(user::Column::Id.gt(after.as_str()));
        }
        let users = query.limit(page.fetch_limit()).all(db).await?;
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
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
        let views = users
            .into_iter()
            .map(|user| {
                let number = numbers.remove(&user.id);
                UserView::new(user, number)
            })
            .collect();
        Ok(page.finish(views, |v| v.user_id.clone()))
    }

    pub async fn update_user(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        update: UserUpdate,
    ) -> Result<UserView> {
        self.write(UpdateUser {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            update,
        })
        .await
    }

    /// Deletes the user; their number goes back to the inventory, and they are told.
    pub async fn delete_user(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        actor: &str,
    ) -> Result<()> {
        self.write(DeleteUser {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            actor: actor.to_owned(),
        })
        .await
    }

    /// Asks for the user's sign-out everywhere; returns the event's sequence.
    pub async fn logout_user(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        actor: &str,
    ) -> Result<u64> {
        self.write(LogoutUser {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            actor: actor.to_owned(),
        })
        .await
    }
}
