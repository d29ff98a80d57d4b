//! Changing users' calling and SMS permissions, one or a thousand at a time, in a fixed number
//! of statements: the users (with their numbers) are read and locked in one query, each item is
//! decided in order by `domain::telephony::update_settings` against the state the earlier items
//! left (a change to the same values writes nothing and emits no event), and the users are
//! written with one UPDATE per distinct outcome, then their events through the outbox.
//! `UpdateTelephonySettings` is this use case with one item; its batch RPC with many.

use std::collections::HashMap;

use sea_orm::DatabaseTransaction;

use super::batch::{Apply, SetUseCase, SettingsItem, distinct};
use super::outbox::append_changes;
use super::users::{lock_user_views, user_not_found, write_many_settings};
use super::writer::TxnFuture;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::telephony::{self, TelephonySettings};
use crate::error::Result;

/// Who changes permissions: the key, the changes' actor.
#[derive(PartialEq, Eq)]
pub(super) struct UpdateSettings {
    pub actor: String,
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
    let user_ids = distinct(items.iter().map(|item| item.user_id.as_str()));
    let mut users = lock_user_views(txn, &user_ids).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut changes = Vec::new();
    let mut failed = 0;
    for item in &items {
        let decided = users
            .get_mut(item.user_id.as_str())
            .filter(|view| view.account_id == item.account_id.as_str())
            .ok_or_else(|| user_not_found(&item.account_id, &item.user_id).into())
            .and_then(|view| {
                let updated = telephony::update_settings(&view.line(), item.requested, item.mask)?;
                if let Some(updated) = updated {
                    view.settings = updated;
                    changes.push(NewChange {
                        account_id: item.account_id.clone(),
                        user_id: item.user_id.clone(),
                        kind: ChangeKind::TelephonySettingsUpdated,
                        e164_phone_number: view.phone_number.clone().unwrap_or_default(),
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
        let mut last: HashMap<&str, TelephonySettings> = HashMap::new();
        for change in &changes {
            last.insert(change.user_id.as_str(), change.settings);
        }
        write_many_settings(txn, last.into_iter(), super::now()).await?;
        append_changes(txn, changes).await?;
    }
    Ok(outcomes)
}
