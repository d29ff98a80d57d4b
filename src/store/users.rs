//! Users of an account. A user's number is read from `phone_numbers` (the row pointing at the
//! user), so the two can never disagree.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::Store;
use super::accounts::account_not_found;
use super::entities::{account, phone_number, user};
use super::page::{Page, PageRequest};
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::phone_number::NumberStatus;
use crate::domain::telephony::{TelephonySettings, UserLine};
use crate::domain::user::LicenseType;
use crate::domain::{DomainError, account::new_id};
use crate::error::{Result, is_unique_violation};

/// A user with the number they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub user: user::Model,
    pub phone_number: Option<String>,
}

impl UserView {
    pub fn settings(&self) -> TelephonySettings {
        TelephonySettings {
            inbound_calling: self.user.inbound_calling,
            outbound_calling: self.user.outbound_calling,
            sms: self.user.sms,
        }
    }

    pub fn license_type(&self) -> Option<LicenseType> {
        LicenseType::from_db(&self.user.license_type)
    }

    /// The user as the telephony rules see them.
    pub fn line(&self) -> UserLine {
        UserLine {
            user_id: self.user.id.clone(),
            phone_number: self.phone_number.clone(),
            settings: self.settings(),
        }
    }
}

/// Fields of a user to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub license_type: Option<LicenseType>,
}

pub(super) fn user_not_found(account_id: &str, user_id: &str) -> DomainError {
    DomainError::NotFound {
        resource: "user",
        name: format!("{user_id} in account {account_id}"),
    }
}

fn email_taken(account_id: &str, email: &str) -> DomainError {
    DomainError::AlreadyExists {
        resource: "user",
        name: format!("with email {email} in account {account_id}"),
    }
}

impl Store {
    pub async fn create_user(
        &self,
        account_id: &str,
        email: String,
        display_name: String,
        license_type: LicenseType,
    ) -> Result<UserView> {
        let txn = self.begin_write().await?;
        account::Entity::find_by_id(account_id)
            .lock_shared()
            .one(&txn)
            .await?
            .ok_or_else(|| account_not_found(account_id))?;
        let taken = user::Entity::find()
            .filter(user::Column::AccountId.eq(account_id))
            .filter(user::Column::Email.eq(email.as_str()))
            .one(&txn)
            .await?;
        if taken.is_some() {
            return Err(email_taken(account_id, &email).into());
        }
        let now = Utc::now();
        let inserted = user::ActiveModel {
            id: Set(new_id()),
            account_id: Set(account_id.to_owned()),
            email: Set(email.clone()),
            display_name: Set(display_name),
            license_type: Set(license_type.as_str().to_owned()),
            inbound_calling: Set(false),
            outbound_calling: Set(false),
            sms: Set(false),
            create_time: Set(now),
            update_time: Set(now),
        }
        .insert(&txn)
        .await;
        let user = match inserted {
            Ok(user) => user,
            // A concurrent request took the email between our check and our insert.
            Err(e) if is_unique_violation(&e) => return Err(email_taken(account_id, &email).into()),
            Err(e) => return Err(e.into()),
        };
        self.commit(txn, false).await?;
        Ok(UserView {
            user,
            phone_number: None,
        })
    }

    pub async fn get_user(&self, account_id: &str, user_id: &str) -> Result<UserView> {
        self.load_user(self.connection(), account_id, user_id, false)
            .await
    }

    /// Users of an account in creation order, or the one with `email`.
    pub async fn list_users(
        &self,
        account_id: &str,
        email: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UserView>> {
        let db = self.connection();
        account::Entity::find_by_id(account_id)
            .one(db)
            .await?
            .ok_or_else(|| account_not_found(account_id))?;
        let mut query = user::Entity::find()
            .filter(user::Column::AccountId.eq(account_id))
            .order_by_asc(user::Column::Id);
        if let Some(email) = email {
            query = query.filter(user::Column::Email.eq(email));
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
            .map(|user| UserView {
                phone_number: numbers.remove(&user.id),
                user,
            })
            .collect();
        Ok(page.finish(views, |v| v.user.id.clone()))
    }

    pub async fn update_user(
        &self,
        account_id: &str,
        user_id: &str,
        update: UserUpdate,
    ) -> Result<UserView> {
        let txn = self.begin_write().await?;
        let view = self.load_user(&txn, account_id, user_id, true).await?;
        let mut model: user::ActiveModel = view.user.into();
        if let Some(display_name) = update.display_name {
            model.display_name = Set(display_name);
        }
        if let Some(license_type) = update.license_type {
            model.license_type = Set(license_type.as_str().to_owned());
        }
        model.update_time = Set(Utc::now());
        let user = model.update(&txn).await?;
        self.commit(txn, false).await?;
        Ok(UserView {
            user,
            phone_number: view.phone_number,
        })
    }

    /// Deletes the user; their number goes back to the inventory, and they are told.
    pub async fn delete_user(&self, account_id: &str, user_id: &str, actor: &str) -> Result<()> {
        let txn = self.begin_write().await?;
        let view = self.load_user(&txn, account_id, user_id, true).await?;
        if let Some(number) = &view.phone_number {
            self.release_number(&txn, number).await?;
        }
        user::Entity::delete_by_id(user_id).exec(&txn).await?;
        self.append_change(
            &txn,
            NewChange {
                account_id: account_id.to_owned(),
                user_id: user_id.to_owned(),
                kind: ChangeKind::UserDeleted,
                e164_phone_number: view.phone_number.clone().unwrap_or_default(),
                settings: TelephonySettings::OFF,
                actor: actor.to_owned(),
            },
        )
        .await?;
        self.commit(txn, true).await?;
        Ok(())
    }

    /// Asks for the user's sign-out everywhere; returns the event's sequence.
    pub async fn logout_user(&self, account_id: &str, user_id: &str, actor: &str) -> Result<u64> {
        let txn = self.begin_write().await?;
        let view = self.load_user(&txn, account_id, user_id, true).await?;
        let event = self
            .append_change(
                &txn,
                NewChange {
                    account_id: account_id.to_owned(),
                    user_id: user_id.to_owned(),
                    kind: ChangeKind::UserSignOutRequested,
                    e164_phone_number: view.phone_number.clone().unwrap_or_default(),
                    settings: view.settings(),
                    actor: actor.to_owned(),
                },
            )
            .await?;
        self.commit(txn, true).await?;
        Ok(event.sequence as u64)
    }

    /// The user and their number; with `lock`, the user's row is locked until the transaction
    /// ends (so that decisions about the user are serialised).
    pub(super) async fn load_user(
        &self,
        conn: &impl ConnectionTrait,
        account_id: &str,
        user_id: &str,
        lock: bool,
    ) -> Result<UserView> {
        let mut query =
            user::Entity::find_by_id(user_id).filter(user::Column::AccountId.eq(account_id));
        if lock {
            query = query.lock_exclusive();
        }
        let user = query
            .one(conn)
            .await?
            .ok_or_else(|| user_not_found(account_id, user_id))?;
        let phone_number = phone_number::Entity::find()
            .filter(phone_number::Column::UserId.eq(user_id))
            .one(conn)
            .await?
            .map(|n| n.e164);
        Ok(UserView { user, phone_number })
    }

    /// Puts an assigned number back into the inventory as unassigned.
    pub(super) async fn release_number(&self, txn: &DatabaseTransaction, e164: &str) -> Result<()> {
        let number = phone_number::Entity::find_by_id(e164)
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or_else(|| DomainError::NotFound {
                resource: "phone number",
                name: e164.to_owned(),
            })?;
        let mut model: phone_number::ActiveModel = number.into();
        model.status = Set(NumberStatus::Unassigned.as_str().to_owned());
        model.account_id = Set(None);
        model.user_id = Set(None);
        model.associate_time = Set(None);
        model.update_time = Set(Utc::now());
        model.update(txn).await?;
        Ok(())
    }
}
