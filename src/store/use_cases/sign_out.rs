//! Who still has to sign out: LogoutUser asks a user's sign-out everywhere (a
//! USER_SIGN_OUT_REQUESTED event; waiting requests are joined into one set run), and
//! AcknowledgeSignOut records that the user signed out and back in, clearing or narrowing their
//! pending state under the rule of `domain::sign_out` and recording a SIGN_OUT_ACKNOWLEDGED
//! event when it acknowledged anything. Every sign-out-required event marks its user pending in
//! the transaction that numbers it (`db::users::mark_pending`, from the engine's outbox and
//! sequencer). Assignments and unassignments read and answer their users' pending state
//! through [`lock_users`] and [`record_pending`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Requester;
use crate::domain::change::{ChangeEvent, ChangeKind, NewChange};
use crate::domain::ids::{AccountId, KeyId, RequestId, UserId};
use crate::domain::sign_out::{self, Acknowledgement, SignOutPending};
use crate::error::{Error, Result};
use crate::store::db::distinct;
use crate::store::db::entities::{change_event, enums};
use crate::store::db::users::{lock_user_view, lock_user_views, user_not_found, write_pending};
use crate::store::db::views::UserView;
use crate::store::engine::Engine;
use crate::store::engine::batch_events::staged_sign_outs;
use crate::store::engine::idempotency::{IdempotencyKey, remember, replay};
use crate::store::engine::mutation::{Mutation, TxnFuture};
use crate::store::engine::outbox::{append_change, append_changes, newest_sequence};

/// Who still has to sign out: the store's surface for it.
pub struct SignOut<'a> {
    engine: &'a Engine,
}

impl<'a> SignOut<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// Asks for the user's sign-out everywhere; returns the event's sequence.
    pub async fn logout(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        actor: &KeyId,
    ) -> Result<u64> {
        self.engine
            .write(LogoutUser {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                actor: actor.to_string(),
            })
            .await
    }

    /// Records that the user signed out and back in, reflecting every change up to `through`.
    pub async fn acknowledge(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        through: u64,
        request_id: Option<&RequestId>,
        caller: Requester<'_>,
    ) -> Result<UserView> {
        self.engine
            .write(AcknowledgeSignOut {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                through,
                idempotency: caller.idempotency_key(request_id, "AcknowledgeSignOut", || {
                    format!("{account_id}/{user_id}/{through}")
                }),
                actor: caller.actor(),
            })
            .await
    }
}

pub(crate) struct LogoutUser {
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
    let ids = distinct(all.iter().map(|cmd| &cmd.user_id));
    let views = lock_user_views(txn, &ids).await?;
    let mut changes = Vec::with_capacity(all.len());
    let mut found = Vec::with_capacity(all.len());
    for cmd in &all {
        match views.get(&cmd.user_id) {
            Some(view) if view.account_id == cmd.account_id => {
                changes.push(NewChange {
                    account_id: cmd.account_id.clone(),
                    user_id: cmd.user_id.clone(),
                    kind: ChangeKind::UserSignOutRequested,
                    e164_phone_number: view.phone_number.clone(),
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

/// The user's oldest sign-out-required change after `through` (and at most `latest`), by the
/// index on (user_id, sequence). `None` if retention purged it.
async fn oldest_change_after(
    txn: &DatabaseTransaction,
    user_id: &str,
    through: u64,
    latest: u64,
) -> Result<Option<(u64, DateTime<Utc>)>> {
    use change_event::Column;
    let found: Option<(i64, DateTime<Utc>)> = change_event::Entity::find()
        .select_only()
        .column(Column::Sequence)
        .column(Column::OccurTime)
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Sequence.gt(through as i64))
        .filter(Column::Sequence.lte(latest as i64))
        .filter(Column::Kind.is_not_in(enums::kinds_without_sign_out()))
        .order_by_asc(Column::Sequence)
        .limit(1)
        .into_tuple()
        .one(txn)
        .await?;
    Ok(found.map(|(sequence, time)| (sequence.max(0) as u64, time)))
}

struct AcknowledgeSignOut {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub through: u64,
    pub idempotency: Option<IdempotencyKey>,
    pub actor: String,
}

impl Mutation for AcknowledgeSignOut {
    type Output = UserView;
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, UserView> {
        Box::pin(acknowledge_sign_out(txn, self))
    }
}

/// Acknowledges the user's changes up to `through`; answers the user as now stored.
async fn acknowledge_sign_out(
    txn: &DatabaseTransaction,
    cmd: &AcknowledgeSignOut,
) -> Result<UserView> {
    let key = cmd.idempotency.as_ref();
    if let Some(previous) = replay(txn, key).await? {
        return Ok(previous);
    }
    let mut view = lock_user_view(txn, &cmd.account_id, &cmd.user_id).await?;
    sign_out::check_through(cmd.through, newest_sequence(txn).await?)?;
    let remaining = match (
        sign_out::acknowledge(view.sign_out_pending.as_ref(), cmd.through),
        view.sign_out_pending,
    ) {
        (Acknowledgement::Nothing, _) | (_, None) => {
            remember(txn, key, &view).await?;
            return Ok(view);
        }
        (Acknowledgement::All, Some(_)) => None,
        (Acknowledgement::Partly { through }, Some(pending)) => {
            // Events purged by retention leave the newest change as the oldest one known.
            let (oldest_sequence, oldest_time) =
                oldest_change_after(txn, cmd.user_id.as_str(), through, pending.latest_sequence)
                    .await?
                    .unwrap_or((pending.latest_sequence, pending.latest_time));
            Some(SignOutPending {
                oldest_sequence,
                oldest_time,
                ..pending
            })
        }
    };
    write_pending(txn, &cmd.user_id, remaining).await?;
    view.sign_out_pending = remaining;
    append_change(
        txn,
        NewChange {
            account_id: cmd.account_id.clone(),
            user_id: cmd.user_id.clone(),
            kind: ChangeKind::SignOutAcknowledged,
            e164_phone_number: view.phone_number.clone(),
            settings: view.settings,
            actor: cmd.actor.clone(),
        },
    )
    .await?;
    remember(txn, key, &view).await?;
    Ok(view)
}

// ---------------------------------------------------------------------------------------------
// The pending sign-outs of the users an assignment or unassignment changes.
// ---------------------------------------------------------------------------------------------

/// The users `user_ids` with the numbers they hold, locked: a query per [`SET_CHUNK`] users.
/// The answers name the pending sign-out after the change, counting changes not yet numbered
/// (on PostgreSQL).
pub(crate) async fn lock_users(
    txn: &DatabaseTransaction,
    user_ids: &[&UserId],
) -> Result<HashMap<UserId, UserView>> {
    let mut users = lock_user_views(txn, user_ids).await?;
    for (user_id, sequence, time) in staged_sign_outs(user_ids) {
        if let Some(view) = users.get_mut(&user_id) {
            view.sign_out_pending = Some(SignOutPending::record(
                view.sign_out_pending,
                sequence,
                time,
            ));
        }
    }
    Ok(users)
}

/// Each success's sign-out state names its event: as written, or (nothing written: a dry run)
/// as a real run would write it, after the log's head.
pub(crate) async fn record_pending(
    txn: &DatabaseTransaction,
    outcomes: &mut [Result<UserView>],
    succeeded: &[usize],
    written: Vec<ChangeEvent>,
    now: DateTime<Utc>,
) -> Result<()> {
    if succeeded.is_empty() {
        return Ok(());
    }
    let events: Vec<(u64, DateTime<Utc>)> = if written.is_empty() {
        let head = newest_sequence(txn).await?;
        (1..=succeeded.len() as u64)
            .map(|n| (head + n, now))
            .collect()
    } else {
        written
            .into_iter()
            .map(|event| (event.sequence, event.occur_time))
            .collect()
    };
    for (&outcome, (sequence, time)) in succeeded.iter().zip(events) {
        if let Ok(view) = &mut outcomes[outcome] {
            view.sign_out_pending = Some(SignOutPending::record(
                view.sign_out_pending,
                sequence,
                time,
            ));
        }
    }
    Ok(())
}
