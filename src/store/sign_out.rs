//! Who still has to sign out, in the store: every sign-out-required change event marks its user
//! as pending in the transaction that gives it its sequence ([`mark_pending`], called where
//! events are numbered: `outbox::append_changes` on SQLite, `sequencer` on PostgreSQL), and `AcknowledgeSignOut` clears or narrows that state under the
//! rule of `domain::sign_out`, recording a SIGN_OUT_ACKNOWLEDGED event when it acknowledged
//! anything.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr, Func};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Store;
use super::entities::{change_event, change_log, enums, user};
use super::idempotency::{IdempotencyKey, remember, replay};
use super::outbox::append_change;
use super::telephony::{Requester, idempotency_key};
use super::users::{UserView, lock_user_view};
use super::writer::{Mutation, TxnFuture};
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::sign_out::{self, Acknowledgement, SignOutPending};
use crate::error::{Error, Result};

/// The pending state stored on a user's row.
pub(super) fn pending_of(row: &user::Model) -> Option<SignOutPending> {
    Some(SignOutPending {
        oldest_sequence: row.sign_out_pending_oldest_sequence?.max(0) as u64,
        oldest_time: row.sign_out_pending_oldest_time?,
        latest_sequence: row.sign_out_pending_latest_sequence?.max(0) as u64,
        latest_time: row.sign_out_pending_latest_time?,
    })
}

/// Users marked pending per UPDATE: the CASE expressions bind four values per user.
const MARK_CHUNK: usize = 500;

/// Inside the savepoint that gives sign-out-required events their sequences (SQLite; the
/// sequencer's statement does the same on PostgreSQL), given as (user, sequence, time) in
/// sequence order: each user's newest event becomes their latest pending change, and
/// their first one the oldest if none was pending. One statement per [`MARK_CHUNK`] users; a
/// deleted user's row is gone, so their USER_DELETED event marks nothing.
pub(super) async fn mark_pending(
    txn: &DatabaseTransaction,
    events: &[(&str, i64, DateTime<Utc>)],
) -> Result<()> {
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
        user::Entity::update_many()
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
            .filter(Column::Id.is_in(chunk.iter().map(|u| u.0)))
            .exec(txn)
            .await?;
    }
    Ok(())
}

async fn write_pending(
    txn: &DatabaseTransaction,
    user_id: &str,
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
        .filter(Column::Id.eq(user_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// The newest sequence of the log, as this transaction sees it.
pub(super) async fn newest_sequence(txn: &DatabaseTransaction) -> Result<u64> {
    let row = change_log::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?;
    Ok(row.last_sequence.max(0) as u64)
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
        .filter(Column::Kind.ne(enums::ChangeKind::from(ChangeKind::SignOutAcknowledged)))
        .order_by_asc(Column::Sequence)
        .limit(1)
        .into_tuple()
        .one(txn)
        .await?;
    Ok(found.map(|(sequence, time)| (sequence.max(0) as u64, time)))
}

pub(super) struct AcknowledgeSignOut {
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
    write_pending(txn, cmd.user_id.as_str(), remaining).await?;
    view.sign_out_pending = remaining;
    append_change(
        txn,
        NewChange {
            account_id: cmd.account_id.clone(),
            user_id: cmd.user_id.clone(),
            kind: ChangeKind::SignOutAcknowledged,
            e164_phone_number: view.phone_number.clone().unwrap_or_default(),
            settings: view.settings,
            actor: cmd.actor.clone(),
        },
    )
    .await?;
    remember(txn, key, &view).await?;
    Ok(view)
}

impl Store {
    /// Records that the user signed out and back in, reflecting every change up to `through`.
    pub async fn acknowledge_sign_out(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        through: u64,
        request_id: Option<&str>,
        caller: Requester<'_>,
    ) -> Result<UserView> {
        self.write(AcknowledgeSignOut {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            through,
            idempotency: idempotency_key(caller, request_id, "AcknowledgeSignOut", || {
                format!("{account_id}/{user_id}/{through}")
            }),
            actor: caller.key_id.to_owned(),
        })
        .await
    }
}
