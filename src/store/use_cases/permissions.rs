//! Calling and SMS permissions: read them, and change them for one user or a thousand in a fixed
//! number of statements. The users (with their numbers) are read and locked in one query, each
//! item is decided in order by `domain::telephony::update_settings` against the state the earlier
//! items left (a change to the same values writes nothing and emits no event), and the users are
//! written with one UPDATE per distinct outcome, then their events through the outbox.
//! `UpdateTelephonySettings` is this use case with one item; its batch RPC with many.

use std::collections::HashMap;

use sea_orm::DatabaseTransaction;

use super::Requester;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::ids::{AccountId, RequestId, UserId};
use crate::domain::telephony::{self, SettingsMask, TelephonySettings};
use crate::error::Result;
use crate::store::db::distinct;
use crate::store::db::settings::{DIRECT_USER_SETTINGS, direct_user_settings, find_user_settings};
use crate::store::db::users::{lock_user_views, user_not_found, write_many_settings};
use crate::store::db::writes::Writes;
use crate::store::engine::Engine;
use crate::store::engine::mutation::TxnFuture;
use crate::store::engine::outbox::write_with_changes;
use crate::store::engine::set_run::{Apply, BatchItem, BatchOptions, ItemResult, SetUseCase};

/// Calling and SMS permissions: the store's surface for them.
pub struct Permissions<'a> {
    engine: &'a Engine,
}

impl<'a> Permissions<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// The user's permissions: one indexed query on a reader (on a SQLite file, on the calling
    /// thread).
    pub async fn get(&self, account_id: &AccountId, user_id: &UserId) -> Result<TelephonySettings> {
        let direct = self.engine.direct().and_then(|direct| {
            let params = (user_id.as_str(), account_id.as_str());
            direct.read_one(DIRECT_USER_SETTINGS, params, direct_user_settings)
        });
        let found = match direct {
            Some(found) => found,
            None => find_user_settings(self.engine.reader(), account_id, user_id).await?,
        };
        found.ok_or_else(|| user_not_found(account_id, user_id).into())
    }

    /// Changes the permissions named by `mask`; a change to the same values writes nothing.
    pub async fn update(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        requested: TelephonySettings,
        mask: SettingsMask,
        request_id: Option<&RequestId>,
        caller: Requester<'_>,
    ) -> Result<TelephonySettings> {
        let key = caller.idempotency_key(request_id, "UpdateTelephonySettings", || {
            format!(
                "{account_id}/{user_id}/{}{}{}/{}{}{}",
                u8::from(requested.inbound_calling),
                u8::from(requested.outbound_calling),
                u8::from(requested.sms),
                u8::from(mask.inbound_calling),
                u8::from(mask.outbound_calling),
                u8::from(mask.sms)
            )
        });
        let item = SettingsItem {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            requested,
            mask,
        };
        self.engine
            .run_one(UpdateSettings::by(caller), item, key)
            .await
    }

    /// BatchUpdateTelephonySettings: each item as [`Permissions::update`] would answer it.
    pub async fn batch_update(
        &self,
        items: Vec<BatchItem<SettingsItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<TelephonySettings>>> {
        let use_case = UpdateSettings::by(caller);
        self.engine
            .run_set(
                "BatchUpdateTelephonySettings",
                use_case,
                items,
                options,
                caller.scope(),
            )
            .await
    }
}

/// An item of BatchUpdateTelephonySettings.
#[derive(Debug, Clone)]
pub struct SettingsItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub requested: TelephonySettings,
    pub mask: SettingsMask,
}

/// Who changes permissions: the key, the changes' actor.
#[derive(PartialEq, Eq)]
pub(crate) struct UpdateSettings {
    pub actor: String,
}

impl UpdateSettings {
    fn by(caller: Requester<'_>) -> Self {
        Self {
            actor: caller.actor(),
        }
    }
}

impl SetUseCase for UpdateSettings {
    type Item = SettingsItem;
    type Output = TelephonySettings;
    const APPENDS_CHANGES: bool = true;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a SettingsItem>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<TelephonySettings>>> {
        Box::pin(update_all(txn, self, items, apply))
    }
}

async fn update_all(
    txn: &DatabaseTransaction,
    use_case: &UpdateSettings,
    items: Vec<&SettingsItem>,
    apply: Apply,
) -> Result<Vec<Result<TelephonySettings>>> {
    let user_ids = distinct(items.iter().map(|item| &item.user_id));
    let mut users = lock_user_views(txn, &user_ids).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut changes = Vec::new();
    let mut failed = 0;
    for item in &items {
        let decided = users
            .get_mut(&item.user_id)
            .filter(|view| view.account_id == item.account_id)
            .ok_or_else(|| user_not_found(&item.account_id, &item.user_id).into())
            .and_then(|view| {
                let updated = telephony::update_settings(&view.line(), item.requested, item.mask)?;
                if let Some(updated) = updated {
                    view.settings = updated;
                    changes.push(NewChange {
                        account_id: item.account_id.clone(),
                        user_id: item.user_id.clone(),
                        kind: ChangeKind::TelephonySettingsUpdated,
                        e164_phone_number: view.phone_number.clone(),
                        settings: updated,
                        actor: use_case.actor.clone(),
                    });
                }
                Ok(view.settings)
            });
        failed += usize::from(decided.is_err());
        outcomes.push(decided);
    }
    if !changes.is_empty() && apply.writes(items.len(), failed) {
        // Each changed user's settings as the last of their items left them.
        let mut last: HashMap<&UserId, TelephonySettings> = HashMap::new();
        for change in &changes {
            last.insert(&change.user_id, change.settings);
        }
        let mut writes = Writes::new(txn);
        write_many_settings(&mut writes, last.into_iter(), crate::store::db::now());
        write_with_changes(txn, writes, changes).await?;
    }
    Ok(outcomes)
}
