//! The change events a writer batch appends on PostgreSQL, kept in memory until its numbering
//! writes them into the log ([`super::sequencer::number_in`]), so that an event is written once,
//! by the statement that numbers it.
//!
//! Each event gets its staged id (what its provisional sequence stands for, and what
//! `change_events.staged_id` keeps) from the staged table's identity sequence, reserved a block at
//! a time per process ([`ReservedIds`]): the ids stay unique across replicas and processes, and in
//! increasing order within a batch, which is the order the numbering follows. The events of a
//! savepoint rolled back are forgotten with it ([`forget_since`]); a later use case of the batch
//! finds the sign-outs of those kept ([`staged_sign_outs`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use serde_json::json;

use crate::domain::ids::UserId;
use crate::error::{Error, Result};
use crate::store::db::entities::change_event;

/// Provisional sequences are this plus the staged id: far above any real sequence, and still
/// an `i64` where a stored answer keeps one.
const PROVISIONAL_BASE: u64 = 1 << 62;

/// Staged ids reserved at once: one round trip per this many events.
const RESERVE_BLOCK: usize = 64;

/// The provisional sequence standing for the staged event `staged_id`: what an answer carries
/// until the batch's numbering gives the real one (`super::sequencer::answer_numbered`).
pub(crate) fn provisional(staged_id: i64) -> u64 {
    PROVISIONAL_BASE + staged_id.max(0) as u64
}

/// The staged id a provisional sequence stands for; `None` for a real sequence.
pub(super) fn staged_id_of(sequence: u64) -> Option<i64> {
    sequence
        .checked_sub(PROVISIONAL_BASE)
        .and_then(|id| i64::try_from(id).ok())
}

/// An event the writer's current batch appended, not yet numbered.
pub(super) struct PendingEvent {
    /// The event, its `staged_id` set.
    pub event: change_event::Model,
    /// Its user, as the use case named them.
    pub user_id: UserId,
    pub signs_out: bool,
}

/// A process's staged ids reserved and not yet used (one per writer: a database of its own).
#[derive(Clone, Default)]
pub(super) struct ReservedIds(Arc<Mutex<VecDeque<i64>>>);

struct Batch {
    events: Vec<PendingEvent>,
    reserved: ReservedIds,
}

tokio::task_local! {
    /// The events the writer's current batch appended, in staged-id order.
    static BATCH: RefCell<Batch>;
}

/// Runs `batch` (the writer's, on its task), keeping the events it appends.
pub(super) async fn collecting<F: Future>(reserved: ReservedIds, batch: F) -> F::Output {
    let events = Batch {
        events: Vec::new(),
        reserved,
    };
    BATCH.scope(RefCell::new(events), batch).await
}

/// `count` staged ids, in increasing order, from those `txn`'s writer reserved (reserving
/// another block first when too few are left). An error outside a writer batch.
pub(super) async fn take_ids(txn: &DatabaseTransaction, count: usize) -> Result<Vec<i64>> {
    let reserved = BATCH
        .try_with(|batch| batch.borrow().reserved.clone())
        .map_err(|_| Error::Internal("change events appended outside the writer".into()))?;
    let short = {
        let ids = reserved.lock();
        count.saturating_sub(ids.len())
    };
    if short > 0 {
        let fresh = reserve(txn, short.max(RESERVE_BLOCK)).await?;
        reserved.lock().extend(fresh);
    }
    Ok(reserved.lock().drain(..count).collect())
}

impl ReservedIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<i64>> {
        // The queue is left whole by every holder: a poisoned lock still guards valid ids.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `count` fresh ids of the staged table's identity sequence, in increasing order.
async fn reserve(txn: &DatabaseTransaction, count: usize) -> Result<Vec<i64>> {
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT nextval(pg_get_serial_sequence('change_events_staged', 'id')) \
             FROM generate_series(1, $1)",
            [(count as i64).into()],
        ))
        .await?;
    let mut ids = rows
        .into_iter()
        .map(|row| row.try_get_by_index::<i64>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// Keeps events just appended, for the batch's numbering.
pub(super) fn keep(events: impl IntoIterator<Item = PendingEvent>) {
    let _ = BATCH.try_with(|batch| batch.borrow_mut().events.extend(events));
}

/// How many events the batch has appended so far: where a savepoint starts.
pub(super) fn mark() -> usize {
    BATCH
        .try_with(|batch| batch.borrow().events.len())
        .unwrap_or(0)
}

/// Forgets the events appended since `mark`: their savepoint was rolled back.
pub(super) fn forget_since(mark: usize) {
    let _ = BATCH.try_with(|batch| batch.borrow_mut().events.truncate(mark));
}

/// The batch's events as a JSON array of rows of `change_events` without their sequence (for
/// `jsonb_to_recordset`); `None` when it appended none.
pub(super) fn as_json_rows() -> Option<String> {
    BATCH
        .try_with(|batch| {
            let batch = batch.borrow();
            if batch.events.is_empty() {
                return None;
            }
            let rows: Vec<_> = (batch.events.iter())
                .map(|pending| {
                    let event = &pending.event;
                    json!({
                        "id": event.staged_id,
                        "event_id": event.event_id,
                        "account_id": event.account_id,
                        "user_id": event.user_id,
                        "kind": event.kind,
                        "kind_code": event.kind_code,
                        "e164": event.e164,
                        "inbound_calling": event.inbound_calling,
                        "outbound_calling": event.outbound_calling,
                        "sms": event.sms,
                        "notice": event.notice,
                        "actor": event.actor,
                        "occur_time": event.occur_time,
                    })
                })
                .collect();
            Some(serde_json::Value::Array(rows).to_string())
        })
        .ok()
        .flatten()
}

/// Inside the writer's batch on PostgreSQL: the sign-out-required events the batch appended for
/// `user_ids` and has not numbered yet (so not yet marked on their users), as (user,
/// provisional sequence, time) in staged order, as their numbering will mark them. An answer
/// computed right after another change to the same user in the batch adds these to the user's
/// pending sign-out, or it would miss that change. Empty on SQLite, which numbers at once.
pub(crate) fn staged_sign_outs(user_ids: &[&UserId]) -> Vec<(UserId, u64, DateTime<Utc>)> {
    BATCH
        .try_with(|batch| {
            (batch.borrow().events.iter())
                .filter(|pending| pending.signs_out && user_ids.contains(&&pending.user_id))
                .map(|pending| {
                    let event = &pending.event;
                    let id = event.staged_id.unwrap_or_default();
                    (pending.user_id.clone(), provisional(id), event.occur_time)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_sequences_name_their_staged_event_and_real_ones_do_not() {
        assert_eq!(staged_id_of(provisional(42)), Some(42));
        assert_eq!(staged_id_of(provisional(0)), Some(0));
        assert_eq!(staged_id_of(7), None);
        assert_eq!(staged_id_of(PROVISIONAL_BASE - 1), None);
        assert!(i64::try_from(provisional(i64::MAX >> 2)).is_ok());
    }
}
