//! Numbering change events on PostgreSQL after their transactions commit.
//!
//! Handing out a sequence inside the writing transaction means holding the change-log counter
//! row locked until that transaction commits: every event-writing commit of every replica then
//! waits in one line. So on PostgreSQL a write transaction only *stages* its events
//! (`change_events_staged`, whose ids an identity column hands out at insert time) and commits
//! without touching the counter. A short sequencing transaction then locks the counter, moves
//! every staged event it can see into `change_events` with the next sequences in staged-id
//! order, marks the users of sign-out-required events pending, notifies the other replicas and
//! commits. Only sequencing transactions wait for each other, and each numbers everything
//! committed so far, whichever replica wrote it.
//!
//! Why the log stays gap-free and in order: sequencing transactions follow one another through
//! the counter row, each numbers contiguously after the last, and their rows appear at their
//! commit. A change that saw another's effects (waited for its row lock, read its row) inserted
//! its events after that other transaction committed, so its staged ids are larger: it is
//! numbered later, or further on in the same run.
//!
//! Answers that carry sequences (LogoutUser's, the pending sign-out of an assignment) are
//! computed in the transaction with provisional values ([`provisional`]); the writer hands each
//! committed batch to the [`Sequencer`] task, which answers the callers once their events are
//! numbered, with the real sequences put in. A stored idempotent answer keeps its provisional
//! values, and a replay is resolved the same way, through `change_events.staged_id`. Events
//! staged by a process that died before numbering them are numbered by any replica's sweep
//! within [`SWEEP_INTERVAL`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use tokio::sync::{Notify, mpsc};

use crate::domain::change::ChangeKind;
use crate::error::{Error, Result};
use crate::store::db::SET_CHUNK;
use crate::store::db::entities::{change_event, change_event_staged, enums};

/// The PostgreSQL NOTIFY channel that tells other replicas a change was committed (sent when
/// its events are numbered).
pub const NOTIFY_CHANNEL: &str = "telephony_admin_changes";

/// Provisional sequences are this plus the staged id: far above any real sequence, and still
/// an `i64` where a stored answer keeps one.
const PROVISIONAL_BASE: u64 = 1 << 62;

/// Events moved per sequencing transaction.
const NUMBER_CHUNK: i64 = 5_000;

/// How often each replica numbers events left staged (by a process that died after its commit).
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Sequencing attempts for a waiting batch before its callers get the database's error (their
/// changes stand; the sweep numbers their events once the database answers again).
const MAX_ATTEMPTS: u32 = 20;

/// The provisional sequence standing for the staged event `staged_id`.
pub(crate) fn provisional(staged_id: i64) -> u64 {
    PROVISIONAL_BASE + staged_id.max(0) as u64
}

/// The staged id a provisional sequence stands for; `None` for a real sequence.
fn staged_id_of(sequence: u64) -> Option<i64> {
    sequence
        .checked_sub(PROVISIONAL_BASE)
        .and_then(|id| i64::try_from(id).ok())
}

/// A committed mutation whose caller waits for its events' sequences.
pub(super) trait Awaiting: Send {
    /// Visits every sequence in the kept answer, provisional or not.
    fn visit_sequences(&mut self, visit: &mut dyn FnMut(&mut u64));
    /// Sends the kept answer.
    fn answer(self: Box<Self>);
    /// Sends `error` instead.
    fn fail(self: Box<Self>, error: Error);
}

/// The handle of the sequencing task (one per process, PostgreSQL only).
pub(super) struct Sequencer {
    queue: mpsc::UnboundedSender<Vec<Box<dyn Awaiting>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sequencer {
    /// Starts the task on `db`; `committed` is signalled after each run that numbered events.
    pub fn start(db: DatabaseConnection, committed: Arc<Notify>) -> Self {
        let (queue, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            SequencerTask {
                db,
                incoming,
                committed,
            }
            .run(),
        );
        Self { queue, task }
    }

    /// Numbers the events of a committed batch, then answers its callers.
    pub fn hand_over(&self, batch: Vec<Box<dyn Awaiting>>) {
        if let Err(mpsc::error::SendError(batch)) = self.queue.send(batch) {
            for waiting in batch {
                waiting.fail(Error::ShuttingDown);
            }
        }
    }

    /// Numbers and answers what was handed over, then stops.
    pub async fn close(self) {
        drop(self.queue);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the change sequencer task failed");
        }
    }
}

struct SequencerTask {
    db: DatabaseConnection,
    incoming: mpsc::UnboundedReceiver<Vec<Box<dyn Awaiting>>>,
    committed: Arc<Notify>,
}

impl SequencerTask {
    async fn run(mut self) {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut waiting = Vec::new();
            tokio::select! {
                biased;
                next = self.incoming.recv() => match next {
                    Some(batch) => waiting.extend(batch),
                    None => break,
                },
                _ = sweep.tick() => {
                    match anything_staged(&self.db).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot look for staged change events");
                            continue;
                        }
                    }
                }
            }
            // Every batch committed meanwhile shares this run.
            while let Ok(batch) = self.incoming.try_recv() {
                waiting.extend(batch);
            }
            self.settle(waiting).await;
        }
        tracing::debug!("the change sequencer stopped");
    }

    /// Numbers everything staged, then answers `waiting` with their sequences.
    async fn settle(&self, mut waiting: Vec<Box<dyn Awaiting>>) {
        let mut attempts = 0;
        let numbered = loop {
            attempts += 1;
            match number_staged(&self.db).await {
                Ok(numbered) => break numbered,
                Err(e) if waiting.is_empty() => {
                    tracing::warn!(error = %e, "cannot number staged change events");
                    return;
                }
                Err(e) if attempts >= MAX_ATTEMPTS => {
                    tracing::error!(error = %e, waiting = waiting.len(), "cannot number staged change events; answering with the error");
                    for one in waiting {
                        one.fail(Error::Internal(format!(
                            "the change was committed, but its event could not be numbered yet: {e}"
                        )));
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempts, "cannot number staged change events; trying again");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempts))).await;
                }
            }
        };
        if !numbered.is_empty() {
            self.committed.notify_one();
        }
        let sequences = match self.sequences_of(&mut waiting, numbered).await {
            Ok(sequences) => sequences,
            Err(e) => {
                for one in waiting {
                    one.fail(copy(&e));
                }
                return;
            }
        };
        for mut one in waiting {
            let mut unknown = None;
            one.visit_sequences(&mut |sequence| {
                if let Some(id) = staged_id_of(*sequence) {
                    match sequences.get(&id) {
                        Some(&real) => *sequence = real,
                        None => unknown = Some(id),
                    }
                }
            });
            match unknown {
                None => one.answer(),
                // Only a replayed answer whose event retention has purged since.
                Some(id) => one.fail(Error::Internal(format!(
                    "the sequence of staged change event {id} is no longer known"
                ))),
            }
        }
    }

    /// The sequences of every staged id named in `waiting`: from this run's numbering, or (for
    /// events another replica's sequencer numbered first, and replayed answers) from the log.
    async fn sequences_of(
        &self,
        waiting: &mut [Box<dyn Awaiting>],
        mut numbered: HashMap<i64, u64>,
    ) -> Result<HashMap<i64, u64>> {
        let mut missing = HashSet::new();
        for one in waiting.iter_mut() {
            one.visit_sequences(&mut |sequence| {
                if let Some(id) = staged_id_of(*sequence)
                    && !numbered.contains_key(&id)
                {
                    missing.insert(id);
                }
            });
        }
        if missing.is_empty() {
            return Ok(numbered);
        }
        let ids: Vec<i64> = missing.into_iter().collect();
        for chunk in ids.chunks(SET_CHUNK) {
            let found: Vec<(Option<i64>, i64)> = change_event::Entity::find()
                .select_only()
                .column(change_event::Column::StagedId)
                .column(change_event::Column::Sequence)
                .filter(change_event::Column::StagedId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (staged, sequence) in found {
                if let Some(staged) = staged {
                    numbered.insert(staged, sequence.max(0) as u64);
                }
            }
        }
        Ok(numbered)
    }
}

fn copy(error: &Error) -> Error {
    Error::Internal(error.to_string())
}

async fn anything_staged(db: &DatabaseConnection) -> Result<bool> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM change_events_staged)",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index(0)?,
        None => false,
    })
}

/// Numbers every staged event visible now, in staged-id order, one transaction per
/// [`NUMBER_CHUNK`]; returns their sequences by staged id.
pub(crate) async fn number_staged(db: &DatabaseConnection) -> Result<HashMap<i64, u64>> {
    let mut numbered = HashMap::new();
    loop {
        let moved = number_chunk(db).await?;
        let done = (moved.len() as i64) < NUMBER_CHUNK;
        numbered.extend(moved);
        if done {
            return Ok(numbered);
        }
    }
}

/// One sequencing transaction: the counter row locked, then one statement that moves up to
/// [`NUMBER_CHUNK`] staged events into the log with the next sequences, advances the counter,
/// marks the pending sign-outs (as `sign_out::mark_pending` does on SQLite: a user's first
/// event becomes their oldest pending change if none was, their last the latest) and notifies
/// the other replicas on commit.
async fn number_chunk(db: &DatabaseConnection) -> Result<Vec<(i64, u64)>> {
    let txn = db.begin().await?;
    // Taken first: the next statement's snapshot then sees what the previous run moved.
    let head: i64 = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT last_sequence FROM change_log WHERE id = 1 FOR UPDATE",
        ))
        .await?
        .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?
        .try_get_by_index(0)?;
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            number_statement(),
            [head.into(), NUMBER_CHUNK.into(), NOTIFY_CHANNEL.into()],
        ))
        .await?;
    if rows.is_empty() {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    txn.commit().await?;
    let mut numbered = Vec::with_capacity(rows.len());
    for row in rows {
        let staged: i64 = row.try_get_by_index(0)?;
        let sequence: i64 = row.try_get_by_index(1)?;
        crate::metrics::record_event_written(sequence.max(0) as u64);
        numbered.push((staged, sequence.max(0) as u64));
    }
    Ok(numbered)
}

/// The statement of [`number_chunk`]: `$1` the head, `$2` the chunk, `$3` the NOTIFY channel.
fn number_statement() -> &'static str {
    static STATEMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STATEMENT.get_or_init(|| {
        // The kinds that ask for no sign-out, by the domain's rule.
        let no_sign_out: Vec<String> = enums::ChangeKind::iter()
            .filter(|kind| !ChangeKind::from(*kind).sign_out_required())
            .map(|kind| format!("'{}'", kind.to_value()))
            .collect();
        let no_sign_out = if no_sign_out.is_empty() {
            "''".to_owned()
        } else {
            no_sign_out.join(", ")
        };
        format!(
            "WITH moved AS ( \
                DELETE FROM change_events_staged WHERE id IN \
                    (SELECT id FROM change_events_staged ORDER BY id LIMIT $2) \
                RETURNING * \
            ), numbered AS ( \
                INSERT INTO change_events (sequence, staged_id, event_id, account_id, user_id, \
                    kind, kind_code, e164, inbound_calling, outbound_calling, sms, notice, actor, \
                    occur_time) \
                SELECT $1 + row_number() OVER (ORDER BY id), id, event_id, account_id, user_id, \
                    kind, kind_code, e164, inbound_calling, outbound_calling, sms, notice, actor, \
                    occur_time \
                FROM moved \
                RETURNING sequence, staged_id, user_id, kind, occur_time \
            ), head AS ( \
                UPDATE change_log SET last_sequence = $1 + (SELECT count(*) FROM numbered) \
                WHERE id = 1 AND EXISTS (SELECT 1 FROM numbered) \
                RETURNING last_sequence, pg_notify($3, last_sequence::text) \
            ), pending AS ( \
                SELECT user_id, \
                    min(sequence) AS oldest_sequence, \
                    (array_agg(occur_time ORDER BY sequence))[1] AS oldest_time, \
                    max(sequence) AS latest_sequence, \
                    (array_agg(occur_time ORDER BY sequence DESC))[1] AS latest_time \
                FROM numbered WHERE kind NOT IN ({no_sign_out}) GROUP BY user_id \
            ), marked AS ( \
                UPDATE users SET \
                    sign_out_pending_oldest_sequence = \
                        COALESCE(users.sign_out_pending_oldest_sequence, pending.oldest_sequence), \
                    sign_out_pending_oldest_time = \
                        COALESCE(users.sign_out_pending_oldest_time, pending.oldest_time), \
                    sign_out_pending_latest_sequence = pending.latest_sequence, \
                    sign_out_pending_latest_time = pending.latest_time \
                FROM pending WHERE users.id = pending.user_id \
            ) \
            SELECT staged_id, sequence FROM numbered ORDER BY sequence"
        )
    })
}

/// Inside a write transaction on PostgreSQL, with the users' rows locked: the sign-out-required
/// events staged for `user_ids` and not yet numbered (so not yet marked on their users), as
/// (user, provisional sequence, time) in staged order, as the sequencer will mark them. An
/// answer computed right after another change to the same user adds these to the user's
/// pending sign-out, or it would miss that change. Empty on SQLite, which numbers at once.
pub(crate) async fn staged_sign_outs(
    txn: &DatabaseTransaction,
    user_ids: &[&str],
) -> Result<Vec<(String, u64, DateTime<Utc>)>> {
    let mut found = Vec::new();
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(found);
    }
    for chunk in user_ids.chunks(SET_CHUNK) {
        use change_event_staged::Column;
        let staged: Vec<(String, i64, DateTime<Utc>)> = change_event_staged::Entity::find()
            .select_only()
            .column(Column::UserId)
            .column(Column::Id)
            .column(Column::OccurTime)
            .filter(Column::UserId.is_in(chunk.iter().copied()))
            .filter(Column::Kind.is_not_in(enums::kinds_without_sign_out()))
            .order_by_asc(Column::Id)
            .into_tuple()
            .all(txn)
            .await?;
        found.extend(
            staged
                .into_iter()
                .map(|(user_id, id, time)| (user_id, provisional(id), time)),
        );
    }
    Ok(found)
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
