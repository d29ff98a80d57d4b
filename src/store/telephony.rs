//! The console's user telephony page: assign and unassign a number, read and change calling and
//! SMS permissions. Each use case locks the user, then the number, decides through
//! `domain::telephony`, writes the change and its event, and commits once.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, EntityTrait, QuerySelect, Set};

use super::Store;
use super::entities::{phone_number, user};
use super::idempotency::IdempotencyKey;
use super::users::UserView;
use crate::domain::DomainError;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::phone_number::{E164, NumberState, NumberStatus, ProductType};
use crate::domain::telephony::{self, SettingsMask, TelephonySettings};
use crate::error::{Error, Result};

impl Store {
    /// Gives `number` to the user; their calling and SMS permissions are turned off.
    pub async fn assign_phone_number(
        &self,
        account_id: &str,
        user_id: &str,
        number: &E164,
        request_id: Option<&str>,
        actor: &str,
    ) -> Result<UserView> {
        let key = request_id.map(|request_id| IdempotencyKey {
            request_id,
            operation: "AssignPhoneNumber",
            fingerprint: format!("{account_id}/{user_id}/{number}"),
        });
        let txn = self.begin_write().await?;
        if let Some(previous) = self.replay(&txn, key.as_ref()).await? {
            return Ok(previous);
        }
        let view = self.load_user(&txn, account_id, user_id, true).await?;
        let row = self.lock_number(&txn, number.as_str()).await?;
        let settings = telephony::assign(&view.line(), &number_state(&row)?)?;

        let now = Utc::now();
        let mut number_row: phone_number::ActiveModel = row.into();
        number_row.status = Set(NumberStatus::Assigned.as_str().to_owned());
        number_row.account_id = Set(Some(account_id.to_owned()));
        number_row.user_id = Set(Some(user_id.to_owned()));
        number_row.associate_time = Set(Some(now));
        number_row.update_time = Set(now);
        // The unique index on user_id backs the rule up if two assignments ever race past it.
        number_row.update(&txn).await?;
        let user = write_settings(&txn, view.user, settings).await?;
        self.append_change(
            &txn,
            NewChange {
                account_id: account_id.to_owned(),
                user_id: user_id.to_owned(),
                kind: ChangeKind::PhoneNumberAssigned,
                e164_phone_number: number.to_string(),
                settings,
                actor: actor.to_owned(),
            },
        )
        .await?;
        let result = UserView {
            user,
            phone_number: Some(number.to_string()),
        };
        self.remember(&txn, key.as_ref(), &result).await?;
        self.commit(txn, true).await?;
        Ok(result)
    }

    /// Takes the user's number back into the inventory; their permissions go back to off.
    pub async fn unassign_phone_number(
        &self,
        account_id: &str,
        user_id: &str,
        confirm: bool,
        request_id: Option<&str>,
        actor: &str,
    ) -> Result<UserView> {
        let key = request_id.map(|request_id| IdempotencyKey {
            request_id,
            operation: "UnassignPhoneNumber",
            fingerprint: format!("{account_id}/{user_id}"),
        });
        let txn = self.begin_write().await?;
        if let Some(previous) = self.replay(&txn, key.as_ref()).await? {
            return Ok(previous);
        }
        let view = self.load_user(&txn, account_id, user_id, true).await?;
        let released = telephony::unassign(&view.line(), confirm)?;
        self.release_number(&txn, &released).await?;
        let user = write_settings(&txn, view.user, TelephonySettings::OFF).await?;
        self.append_change(
            &txn,
            NewChange {
                account_id: account_id.to_owned(),
                user_id: user_id.to_owned(),
                kind: ChangeKind::PhoneNumberUnassigned,
                e164_phone_number: released,
                settings: TelephonySettings::OFF,
                actor: actor.to_owned(),
            },
        )
        .await?;
        let result = UserView {
            user,
            phone_number: None,
        };
        self.remember(&txn, key.as_ref(), &result).await?;
        self.commit(txn, true).await?;
        Ok(result)
    }

    pub async fn get_telephony_settings(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<TelephonySettings> {
        Ok(self.get_user(account_id, user_id).await?.settings())
    }

    /// Changes the permissions named by `mask`; a change to the same values writes nothing.
    pub async fn update_telephony_settings(
        &self,
        account_id: &str,
        user_id: &str,
        requested: TelephonySettings,
        mask: SettingsMask,
        request_id: Option<&str>,
        actor: &str,
    ) -> Result<TelephonySettings> {
        let key = request_id.map(|request_id| IdempotencyKey {
            request_id,
            operation: "UpdateTelephonySettings",
            fingerprint: format!(
                "{account_id}/{user_id}/{}{}{}/{}{}{}",
                u8::from(requested.inbound_calling),
                u8::from(requested.outbound_calling),
                u8::from(requested.sms),
                u8::from(mask.inbound_calling),
                u8::from(mask.outbound_calling),
                u8::from(mask.sms)
            ),
        });
        let txn = self.begin_write().await?;
        if let Some(previous) = self.replay(&txn, key.as_ref()).await? {
            return Ok(previous);
        }
        let view = self.load_user(&txn, account_id, user_id, true).await?;
        let Some(updated) = telephony::update_settings(&view.line(), requested, mask)? else {
            let unchanged = view.settings();
            self.remember(&txn, key.as_ref(), &unchanged).await?;
            self.commit(txn, false).await?;
            return Ok(unchanged);
        };
        write_settings(&txn, view.user, updated).await?;
        self.append_change(
            &txn,
            NewChange {
                account_id: account_id.to_owned(),
                user_id: user_id.to_owned(),
                kind: ChangeKind::TelephonySettingsUpdated,
                e164_phone_number: view.phone_number.clone().unwrap_or_default(),
                settings: updated,
                actor: actor.to_owned(),
            },
        )
        .await?;
        self.remember(&txn, key.as_ref(), &updated).await?;
        self.commit(txn, true).await?;
        Ok(updated)
    }

    /// The number's row, locked; NOT_FOUND when it is not (or no longer) in the inventory.
    pub(super) async fn lock_number(
        &self,
        txn: &DatabaseTransaction,
        e164: &str,
    ) -> Result<phone_number::Model> {
        let row = phone_number::Entity::find_by_id(e164)
            .lock_exclusive()
            .one(txn)
            .await?;
        match row {
            Some(row)
                if crate::domain::phone_number::exists_at(&number_state(&row)?, Utc::now()) =>
            {
                Ok(row)
            }
            _ => Err(DomainError::NotFound {
                resource: "phone number",
                name: e164.to_owned(),
            }
            .into()),
        }
    }
}

async fn write_settings(
    txn: &DatabaseTransaction,
    user: user::Model,
    settings: TelephonySettings,
) -> Result<user::Model> {
    let mut model: user::ActiveModel = user.into();
    model.inbound_calling = Set(settings.inbound_calling);
    model.outbound_calling = Set(settings.outbound_calling);
    model.sms = Set(settings.sms);
    model.update_time = Set(Utc::now());
    Ok(model.update(txn).await?)
}

/// The domain's view of a stored number.
pub(super) fn number_state(row: &phone_number::Model) -> Result<NumberState> {
    let corrupt =
        |what: &str| Error::Internal(format!("phone number {} has an unknown {what}", row.e164));
    Ok(NumberState {
        e164: row.e164.clone(),
        status: NumberStatus::from_db(&row.status).ok_or_else(|| corrupt("status"))?,
        product_type: ProductType::from_db(&row.product_type)
            .ok_or_else(|| corrupt("product type"))?,
        deletion_time: row.deletion_time,
    })
}
