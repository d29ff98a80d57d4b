//! The console's user telephony page: assign and unassign a number (`store::assignment`), read
//! and change calling and SMS permissions (`store::permissions`). Each change is its set use
//! case run with one item ([`SingleItem`]), idempotent with a `request_id`.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::Store;
use super::assignment::{AssignNumbers, UnassignNumbers};
use super::batch::{AssignItem, SettingsItem, SingleItem, UnassignItem};
use super::idempotency::{IdempotencyKey, scope_of};
use super::permissions::UpdateSettings;
use super::users::{UserView, user_not_found};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::phone_number::E164;
use crate::domain::telephony::{SettingsMask, TelephonySettings};
use crate::error::Result;

/// Who asks for a change: the key (for the change's actor) and its account, if it is scoped to
/// one (for idempotency records and what the answer may reveal).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub key_id: &'a str,
    pub account: Option<&'a str>,
}

pub(super) fn idempotency_key(
    caller: Requester<'_>,
    request_id: Option<&str>,
    operation: &'static str,
    fingerprint: impl FnOnce() -> String,
) -> Option<IdempotencyKey> {
    request_id.map(|request_id| IdempotencyKey {
        scope: scope_of(caller.account),
        request_id: request_id.to_owned(),
        operation,
        fingerprint: fingerprint(),
    })
}

impl Store {
    /// Gives `number` to the user; their calling and SMS permissions are turned off.
    pub async fn assign_phone_number(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        number: &E164,
        request_id: Option<&str>,
        caller: Requester<'_>,
    ) -> Result<UserView> {
        self.write(SingleItem {
            use_case: AssignNumbers {
                caller_account: caller.account.map(str::to_owned),
                actor: caller.key_id.to_owned(),
            },
            item: AssignItem {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                number: number.clone(),
            },
            idempotency: idempotency_key(caller, request_id, "AssignPhoneNumber", || {
                format!("{account_id}/{user_id}/{number}")
            }),
        })
        .await
    }

    /// Takes the user's number back into the inventory; their permissions go back to off.
    pub async fn unassign_phone_number(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        confirm: bool,
        request_id: Option<&str>,
        caller: Requester<'_>,
    ) -> Result<UserView> {
        self.write(SingleItem {
            use_case: UnassignNumbers {
                actor: caller.key_id.to_owned(),
            },
            item: UnassignItem {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                confirm,
            },
            idempotency: idempotency_key(caller, request_id, "UnassignPhoneNumber", || {
                format!("{account_id}/{user_id}/confirm={confirm}")
            }),
        })
        .await
    }

    /// The user's permissions: one indexed query on a reader.
    pub async fn get_telephony_settings(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
    ) -> Result<TelephonySettings> {
        let row = super::entities::user::Entity::find_by_id(user_id.as_str())
            .filter(super::entities::user::Column::AccountId.eq(account_id.as_str()))
            .one(self.connection())
            .await?
            .ok_or_else(|| user_not_found(account_id, user_id))?;
        Ok(TelephonySettings {
            inbound_calling: row.inbound_calling,
            outbound_calling: row.outbound_calling,
            sms: row.sms,
        })
    }

    /// Changes the permissions named by `mask`; a change to the same values writes nothing.
    pub async fn update_telephony_settings(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        requested: TelephonySettings,
        mask: SettingsMask,
        request_id: Option<&str>,
        caller: Requester<'_>,
    ) -> Result<TelephonySettings> {
        self.write(SingleItem {
            use_case: UpdateSettings {
                actor: caller.key_id.to_owned(),
            },
            item: SettingsItem {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                requested,
                mask,
            },
            idempotency: idempotency_key(caller, request_id, "UpdateTelephonySettings", || {
                format!(
                    "{account_id}/{user_id}/{}{}{}/{}{}{}",
                    u8::from(requested.inbound_calling),
                    u8::from(requested.outbound_calling),
                    u8::from(requested.sms),
                    u8::from(mask.inbound_calling),
                    u8::from(mask.outbound_calling),
                    u8::from(mask.sms)
                )
            }),
        })
        .await
    }
}
