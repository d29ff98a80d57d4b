//! Numbering change events on PostgreSQL, at the end of the transaction that writes them.
//!
//! Handing out a sequence when an event is written means holding the change-log counter row
//! locked from then until the transaction commits: every event-writing transaction of every
//! replica would then wait in one line for the whole of another's work. So on PostgreSQL a use
//! case only *stages* its events: the writer's batch keeps them in memory, each with a staged
//! id ([`super::batch_events`]). The writer numbers them as the last step of its batch, just
//! before the commit ([`number_in`]): it locks the counter, writes the batch's events into
//! `change_events` with the next sequences in staged-id order, marks the users of
//! sign-out-required events pending and notifies the other replicas, all in one statement. The
//! counter is held only for that statement and the commit, one commit pays for the change and
//! its numbering, and an event is written once.
//!
//! Why the log stays gap-free and in order: numbering transactions follow one another through
//! the counter row, each numbers contiguously after the last, and their rows appear at their
//! commit, in the counter's order. A change that saw another's effects (waited for its row lock,
//! read its row) did so after that other transaction committed, numbered.
//!
//! Answers that carry sequences (LogoutUser's, the pending sign-out of an assignment) are
//! computed before the numbering with provisional values ([`provisional`]); once the batch has
//! committed, the writer puts the real sequences in ([`answer_numbered`]). A stored idempotent
//! answer keeps its provisional values, and a replay is resolved the same way, through
//! `change_events.staged_id`. Events left in the `change_events_staged` table (by a version of
//! the service that wrote them there and numbered them after its commit, and died first) are
//! numbered by any replica's [`Sweeper`] within [`SWEEP_INTERVAL`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, Iterable, QueryFilter, QuerySelect, Statement, TransactionTrait,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch_events::{self, staged_id_of};
use crate::domain::change::ChangeKind;
use crate::error::{Error, Result};
use crate::store::db::SET_CHUNK;
use crate::store::db::entities::{change_event, enums};

/// The PostgreSQL NOTIFY channel that tells other replicas a change was committed (sent when
/// its events are numbered).
pub const NOTIFY_CHANNEL: &str = "telephony_admin_changes";

/// How often each replica looks for events left staged.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Which staged events a numbering writes into the log.
pub(super) enum Staged {
    /// Those the writer's batch keeps ([`super::batch_events`]).
    ByBatch,
    /// Every one in `change_events_staged`: left there by an earlier version.
    All,
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

/// The task that numbers events left staged (one per process, PostgreSQL only).
pub(super) struct Sweeper {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sweeper {
    /// Starts the task on `db`; `committed` is signalled after each sweep that numbered events.
    pub fn start(db: DatabaseConnection, committed: Arc<Notify>) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(sweep(db, committed, stop.clone()));
        Self { stop, task }
    }

    /// Stops the task.
    pub async fn close(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the staged change event sweeper failed");
        }
    }
}

async fn sweep(db: DatabaseConnection, committed: Arc<Notify>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let numbered = match anything_staged(&db).await {
            Ok(true) => number_staged(&db).await,
            Ok(false) => continue,
            Err(e) => Err(e),
        };
        match numbered {
            Ok(numbered) if !numbered.is_empty() => {
                tracing::info!(
                    events = numbered.len(),
                    "numbered change events left staged"
                );
                committed.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot number staged change events"),
        }
    }
    tracing::debug!("the staged change event sweeper stopped");
}

/// Answers `waiting`, whose batch committed having numbered `numbered` (staged id to
/// sequence), with the real sequences put in their answers.
pub(super) async fn answer_numbered(
    db: &DatabaseConnection,
    mut waiting: Vec<Box<dyn Awaiting>>,
    numbered: HashMap<i64, u64>,
) {
    let sequences = match sequences_of(db, &mut waiting, numbered).await {
        Ok(sequences) => sequences,
        Err(e) => {
            for one in waiting {
                one.fail(Error::Internal(e.to_string()));
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

/// The sequences of every staged id named in `waiting`: from this batch's numbering, or (for
/// replayed answers, and events numbered by a sweep) from the log.
async fn sequences_of(
    db: &DatabaseConnection,
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
            .all(db)
            .await?;
        for (staged, sequence) in found {
            if let Some(staged) = staged {
                numbered.insert(staged, sequence.max(0) as u64);
            }
        }
    }
    Ok(numbered)
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

/// Numbers every staged event visible now, in staged-id order, in one transaction of its own;
/// returns their sequences by staged id.
pub(crate) async fn number_staged(db: &DatabaseConnection) -> Result<HashMap<i64, u64>> {
    let txn = db.begin().await?;
    let numbered = number_in(&txn, Staged::All).await?;
    if numbered.is_empty() {
        txn.rollback().await?;
    } else {
        txn.commit().await?;
        record_written(&numbered);
    }
    Ok(numbered.into_iter().collect())
}

/// Inside `txn`, as its last step before the commit, in one statement: numbers the staged
/// events `which` names, as `txn` sees them, with the next sequences of the change-log
/// counter, which it locks until the commit; moves them into the log; marks the
/// pending sign-outs (as `sign_out::mark_pending` does on SQLite: a user's first event becomes
/// their oldest pending change if none was, their last the latest) and notifies the other
/// replicas on commit. Returns (staged id, sequence) in sequence order.
///
/// The statement may wait for the counter while another transaction numbers: it then numbers
/// after that one's events; with [`Staged::All`] it also skips the staged rows that one moved
/// (a row deleted by a committed transaction is passed over by a waiting DELETE).
pub(super) async fn number_in(
    txn: &DatabaseTransaction,
    which: Staged,
) -> std::result::Result<Vec<(i64, u64)>, DbErr> {
    let statement = match which {
        Staged::All => Statement::from_sql_and_values(
            DbBackend::Postgres,
            number_statement(Staged::All),
            [NOTIFY_CHANNEL.into()],
        ),
        Staged::ByBatch => {
            let Some(rows) = batch_events::as_json_rows() else {
                return Ok(Vec::new());
            };
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                number_statement(Staged::ByBatch),
                [NOTIFY_CHANNEL.into(), rows.into()],
            )
        }
    };
    let rows = txn.query_all_raw(statement).await?;
    let mut numbered = Vec::with_capacity(rows.len());
    for row in rows {
        let staged: Option<i64> = row.try_get_by_index(0)?;
        let sequence: Option<i64> = row.try_get_by_index(1)?;
        let (Some(staged), Some(sequence)) = (staged, sequence) else {
            // Rolled back by the caller: the staged events stay staged.
            return Err(DbErr::Custom("the change_log row is missing".into()));
        };
        numbered.push((staged, sequence.max(0) as u64));
    }
    Ok(numbered)
}

/// Counts events numbered by a committed transaction.
pub(super) fn record_written(numbered: &[(i64, u64)]) {
    for &(_, sequence) in numbered {
        crate::metrics::record_event_written(sequence);
    }
}

/// The statement of [`number_in`]: `$1` the NOTIFY channel; for [`Staged::ByBatch`], `$2` the
/// batch's events (a JSON array of rows).
fn number_statement(which: Staged) -> &'static str {
    static ALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static BY_BATCH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let (statement, moved) = match which {
        Staged::All => (&ALL, "DELETE FROM change_events_staged RETURNING *"),
        Staged::ByBatch => (
            &BY_BATCH,
            "SELECT * FROM jsonb_to_recordset($2::jsonb) AS event(id bigint, event_id text, \
                account_id text, user_id text, kind text, kind_code integer, e164 text, \
                inbound_calling boolean, outbound_calling boolean, sms boolean, notice text, \
                actor text, occur_time timestamptz)",
        ),
    };
    statement.get_or_init(|| {
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
                {moved} \
            ), head AS ( \
                UPDATE change_log SET last_sequence = last_sequence + (SELECT count(*) FROM moved) \
                WHERE id = 1 AND EXISTS (SELECT 1 FROM moved) \
                RETURNING last_sequence - (SELECT count(*) FROM moved) AS base, \
                    pg_notify($1, last_sequence::text) \
            ), numbered AS ( \
                INSERT INTO change_events (sequence, staged_id, event_id, account_id, user_id, \
                    kind, kind_code, e164, inbound_calling, outbound_calling, sms, notice, actor, \
                    occur_time) \
                SELECT head.base + row_number() OVER (ORDER BY moved.id), moved.id, event_id, \
                    account_id, user_id, kind, kind_code, e164, inbound_calling, outbound_calling, \
                    sms, notice, actor, occur_time \
                FROM moved, head \
                RETURNING sequence, staged_id, user_id, kind, occur_time \
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
            SELECT staged_id, sequence FROM numbered \
            UNION ALL SELECT NULL, NULL WHERE EXISTS (SELECT 1 FROM moved) \
                AND NOT EXISTS (SELECT 1 FROM head) \
            ORDER BY 2"
        )
    })
}
