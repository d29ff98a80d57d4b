//! Users of an account: the read model, the use cases that create, change, delete and sign out
//! a user, and the repository functions they share. A user's number is read from
//! `phone_numbers` (the row pointing at the user), so the two can never disagree.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    FromQueryResult, JoinType, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::Store;
use super::accounts::account_not_found;
use super::entities::{account, enums, phone_number, user};
use super::outbox::append_change;
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
use crate::error::{Result, is_unique_violation};

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

fn email_taken(account_id: &AccountId, email: &Email) -> DomainError {
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
    let row = user::Entity::find_by_id(user_id.as_str())
        .filter(user::Column::AccountId.eq(account_id.as_str()))
        .column_as(phone_number::Column::E164, "phone_number")
        .join_rev(JoinType::LeftJoin, user_number())
        .into_model::<UserWithNumber>()
        .one(conn)
        .await?;
    Ok(row.map(|r| {
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
    }))
}

/// users → phone_numbers on `phone_numbers.user_id = users.id`.
fn user_number() -> sea_orm::RelationDef {
    use sea_orm::EntityTrait as _;
    phone_number::Entity::belongs_to(user::Entity)
        .from(phone_number::Column::UserId)
        .to(user::Column::Id)
        .into()
}

/// The user's row, locked until the transaction ends (decisions about one user are serialised).
pub(super) async fn lock_user(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<user::Model> {
    user::Entity::find_by_id(user_id.as_str())
        .filter(user::Column::AccountId.eq(account_id.as_str()))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| user_not_found(account_id, user_id).into())
}

/// The E.164 of the number the user holds.
pub(super) async fn number_of_user(
    conn: &impl ConnectionTrait,
    user_id: &UserId,
) -> Result<Option<String>> {
    Ok(phone_number::Entity::find()
        .select_only()
        .column(phone_number::Column::E164)
        .filter(phone_number::Column::UserId.eq(user_id.as_str()))
        .into_tuple::<String>()
        .one(conn)
        .await?)
}

/// The user, locked, with their number.
pub(super) async fn lock_user_view(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    user_id: &UserId,
) -> Result<UserView> {
    let user = lock_user(txn, account_id, user_id).await?;
    let phone_number = number_of_user(txn, user_id).await?;
    Ok(UserView::new(user, phone_number))
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

/// Writes the user's permissions; returns the user as now stored.
pub(super) async fn write_settings(
    txn: &DatabaseTransaction,
    view: UserView,
    settings: TelephonySettings,
) -> Result<UserView> {
    let now = super::now();
    let model = user::ActiveModel {
        inbound_calling: Set(settings.inbound_calling),
        outbound_calling: Set(settings.outbound_calling),
        sms: Set(settings.sms),
        update_time: Set(now),
        ..Default::default()
    };
    update_user_row(txn, &view.user_id, model).await?;
    Ok(UserView {
        settings,
        update_time: now,
        ..view
    })
}

// ---------------------------------------------------------------------------------------------
// Use cases, each run by the writer inside a savepoint.
// ---------------------------------------------------------------------------------------------

pub(super) struct CreateUser {
    pub account_id: AccountId,
    pub email: Email,
    pub display_name: DisplayName,
    pub license_type: LicenseType,
}

impl Mutation for CreateUser {
    type Output = UserView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, UserView> {
        Box::pin(create_user(txn, self))
    }
}

pub(super) async fn create_user(txn: &DatabaseTransaction, cmd: &CreateUser) -> Result<UserView> {
    let account_id = &cmd.account_id;
    account::Entity::find_by_id(account_id.as_str())
        .lock_shared()
        .one(txn)
        .await?
        .ok_or_else(|| account_not_found(account_id))?;
    let taken = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::AccountId.eq(account_id.as_str()))
        .filter(user::Column::Email.eq(cmd.email.as_str()))
        .into_tuple::<String>()
        .one(txn)
        .await?;
    if taken.is_some() {
        return Err(email_taken(account_id, &cmd.email).into());
    }
    let now = super::now();
    let inserted = user::ActiveModel {
        id: Set(UserId::generate().into()),
        account_id: Set(account_id.to_string()),
        email: Set(cmd.email.to_string()),
        display_name: Set(cmd.display_name.to_string()),
        license_type: Set(cmd.license_type.into()),
        inbound_calling: Set(false),
        outbound_calling: Set(false),
        sms: Set(false),
        create_time: Set(now),
        update_time: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await;
    match inserted {
        Ok(user) => Ok(UserView::new(user, None)),
        // A concurrent request (on another replica) took the email between check and insert.
        Err(e) if is_unique_violation(&e) => Err(email_taken(account_id, &cmd.email).into()),
        Err(e) => Err(e.into()),
    }
}

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
        Box::pin(logout_user(txn, self))
    }
}

/// Asks for the user's sign-out everywhere; returns the event's sequence.
pub(super) async fn logout_user(txn: &DatabaseTransaction, cmd: &LogoutUser) -> Result<u64> {
    let view = lock_user_view(txn, &cmd.account_id, &cmd.user_id).await?;
    let event = append_change(
        txn,
        NewChange {
            account_id: cmd.account_id.clone(),
            user_id: cmd.user_id.clone(),
            kind: ChangeKind::UserSignOutRequested,
            e164_phone_number: view.phone_number.clone().unwrap_or_default(),
            settings: view.settings,
            actor: cmd.actor.clone(),
        },
    )
    .await?;
    Ok(event.sequence)
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
        self.write(CreateUser {
            account_id: account_id.clone(),
            email,
            display_name,
            license_type,
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
