//! The change outbox, write side: appending an event inside a use case's transaction, and
//! purging events past retention in short chunks.
//!
//! Sequences come from the single `change_log` row. On SQLite the appending mutation increments
//! it; the one writer's transaction holds it until commit, so sequence N+1 cannot be handed out
//! before N is committed or rolled back: readers always see a gap-free prefix, in order, and a
//! mutation rolled back to its savepoint takes its increment with it. On PostgreSQL, where
//! replicas write concurrently, events are staged and numbered as the writing transaction's last
//! step, holding the counter only from then to the commit (see `engine::sequencer`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::batch_events::{self, PendingEvent, provisional};
use super::mutation::{Mutation, TxnFuture};
use crate::domain::change::{ChangeEvent, ChangeKind, NewChange};
use crate::domain::ids::UserId;
use crate::error::{Error, Result};
use crate::store::db::entities::{change_event, change_log, enums};
use crate::store::db::users::mark_pending;
use crate::store::db::writes::Writes;

/// Events deleted per purge mutation, so that a purge never holds the writer for long.
const PURGE_CHUNK: i64 = 1000;

/// Rows per multi-row INSERT of events, well within both databases' limits on bound values.
const INSERT_CHUNK: usize = 500;

/// Writes one change event in `txn` and returns it with its sequence; a sign-out-required one
/// also marks its user as pending ([`mark_pending`]).
pub(crate) async fn append_change(
    txn: &DatabaseTransaction,
    change: NewChange,
) -> Result<ChangeEvent> {
    append_changes(txn, vec![change])
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("an appended change has no event".into()))
}

/// Writes `changes` as events in `txn`, in their order, and returns them.
pub(crate) async fn append_changes(
    txn: &DatabaseTransaction,
    changes: Vec<NewChange>,
) -> Result<Vec<ChangeEvent>> {
    write_with_changes(txn, Writes::new(txn), changes).await
}

/// Runs `writes` (the change itself), then writes `changes` as events in `txn`, in their
/// order, and returns them.
///
/// On SQLite (one writer) the events get their sequences here, in two calls to the driver
/// however many changes there are: `writes` with the counter's update, then one multi-row
/// INSERT per [`INSERT_CHUNK`] events with one update marking the users of sign-out-required
/// events as pending ([`mark_pending`]). On PostgreSQL they are staged, without the counter,
/// and numbered just before the commit (`engine::sequencer`); the events returned carry
/// provisional sequences until then.
pub(crate) async fn write_with_changes(
    txn: &DatabaseTransaction,
    writes: Writes,
    changes: Vec<NewChange>,
) -> Result<Vec<ChangeEvent>> {
    if changes.is_empty() {
        writes.run(txn).await?;
        return Ok(Vec::new());
    }
    let now = crate::store::db::now();
    let users: Vec<UserId> = changes
        .iter()
        .map(|change| change.user_id.clone())
        .collect();
    let events: Vec<change_event::Model> = changes
        .into_iter()
        .map(|change| change_event::Model {
            notice: change.notice(),
            sequence: 0,
            event_id: uuid::Uuid::new_v4().to_string(),
            account_id: change.account_id.into(),
            user_id: change.user_id.into(),
            kind: enums::ChangeKind::from(change.kind).to_value(),
            kind_code: Some(change.kind.code()),
            e164: change
                .e164_phone_number
                .map(String::from)
                .unwrap_or_default(),
            inbound_calling: change.settings.inbound_calling,
            outbound_calling: change.settings.outbound_calling,
            sms: change.settings.sms,
            actor: change.actor,
            occur_time: now,
            staged_id: None,
        })
        .collect();
    let events = match txn.get_database_backend() {
        DbBackend::Postgres => {
            writes.run(txn).await?;
            stage(txn, events, users).await?
        }
        _ => number(txn, writes, events).await?,
    };
    Ok(events.into_iter().map(ChangeEvent::from).collect())
}

/// SQLite: runs `writes`, numbers `events` from the counter row and writes them, marking
/// users pending.
async fn number(
    txn: &DatabaseTransaction,
    writes: Writes,
    mut events: Vec<change_event::Model>,
) -> Result<Vec<change_event::Model>> {
    let count = events.len() as i64;
    let counted = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "UPDATE change_log SET last_sequence = last_sequence + ? WHERE id = 1 RETURNING last_sequence",
        [count.into()],
    );
    // The counter's row alone: the writes before it return none.
    let last: i64 = match writes.run_then_query(txn, counted).await?.as_slice() {
        [row] => row.try_get_by_index(0)?,
        [] => return Err(Error::Internal("the change_log row is missing".into())),
        rows => {
            let found = rows.len();
            return Err(Error::Internal(format!(
                "the counter's update answered {found} rows"
            )));
        }
    };
    for (event, sequence) in events.iter_mut().zip(last - count + 1..) {
        event.sequence = sequence;
    }
    let mut written = Writes::new(txn);
    for chunk in events.chunks(INSERT_CHUNK) {
        // Every column of each model, as is (SeaORM inserts a model's values unchanged).
        written.push(&change_event::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(IntoActiveModel::into_active_model),
        ));
    }
    // Each user with sign-out-required changes has them to pick up: in this same savepoint, so
    // the events and the marks commit or vanish together.
    let pending: Vec<(&str, i64, DateTime<Utc>)> = events
        .iter()
        // Written by this version just above: the number names a kind it knows.
        .filter(|event| signs_out(event))
        .map(|event| (event.user_id.as_str(), event.sequence, event.occur_time))
        .collect();
    mark_pending(&mut written, &pending);
    written.run(txn).await?;
    for event in &events {
        crate::metrics::record_event_written(event.sequence.max(0) as u64);
    }
    Ok(events)
}

/// PostgreSQL: gives each event its staged id and the provisional sequence standing for it, and
/// keeps them in the batch, whose numbering writes them ([`batch_events`]).
async fn stage(
    txn: &DatabaseTransaction,
    mut events: Vec<change_event::Model>,
    users: Vec<UserId>,
) -> Result<Vec<change_event::Model>> {
    let ids = batch_events::take_ids(txn, events.len()).await?;
    for (event, id) in events.iter_mut().zip(ids) {
        event.staged_id = Some(id);
        event.sequence = i64::try_from(provisional(id)).unwrap_or(i64::MAX);
    }
    batch_events::keep(
        events
            .iter()
            .zip(users)
            .map(|(event, user_id)| PendingEvent {
                event: event.clone(),
                user_id,
                signs_out: signs_out(event),
            }),
    );
    Ok(events)
}

/// Whether an event written by this version asks its user to sign out.
fn signs_out(event: &change_event::Model) -> bool {
    event
        .kind_code
        .and_then(ChangeKind::from_code)
        .is_some_and(ChangeKind::sign_out_required)
}

/// Deletes up to [`PURGE_CHUNK`] events with a sequence at most `through`, and records how far
/// the history is purged; returns how many went.
pub(crate) struct PurgeChanges {
    pub through: i64,
}

impl Mutation for PurgeChanges {
    type Output = u64;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, u64> {
        Box::pin(purge_changes(txn, self.through))
    }
}

async fn purge_changes(txn: &DatabaseTransaction, through: i64) -> Result<u64> {
    let backend = txn.get_database_backend();
    // The oldest chunk first, so that `purged_through` always describes a gap-free prefix.
    let chunk_end = change_event::Entity::find()
        .select_only()
        .column(change_event::Column::Sequence)
        .filter(change_event::Column::Sequence.lte(through))
        .order_by_asc(change_event::Column::Sequence)
        .offset((PURGE_CHUNK - 1) as u64)
        .limit(1)
        .into_tuple::<i64>()
        .one(txn)
        .await?
        .unwrap_or(through);
    let deleted = change_event::Entity::delete_many()
        .filter(change_event::Column::Sequence.lte(chunk_end))
        .exec(txn)
        .await?
        .rows_affected;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            DbBackend::Postgres => {
                "UPDATE change_log SET purged_through = GREATEST(purged_through, $1) WHERE id = 1"
            }
            _ => "UPDATE change_log SET purged_through = MAX(purged_through, ?) WHERE id = 1",
        },
        [chunk_end.into()],
    ))
    .await?;
    Ok(deleted)
}

/// The newest event that occurred before `cutoff`, read on a reader: usually there is nothing
/// to purge. Ordered by the index on (occur_time, sequence) (migration m0006), this reads one
/// entry of it, never the retained log (a MAX(sequence) would walk the primary key back through
/// it). Events of one log occur in sequence order up to clock differences between replicas, so
/// a purge through it ends at most a few milliseconds' worth of events off the cutoff.
pub(crate) async fn newest_before(
    conn: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
) -> Result<Option<i64>> {
    Ok(change_event::Entity::find()
        .select_only()
        .column(change_event::Column::Sequence)
        .filter(change_event::Column::OccurTime.lt(cutoff))
        .order_by_desc(change_event::Column::OccurTime)
        .order_by_desc(change_event::Column::Sequence)
        .limit(1)
        .into_tuple::<i64>()
        .one(conn)
        .await?)
}

/// Events deleted per [`PurgeChanges`]: fewer means the purge is done.
pub(crate) const PURGE_CHUNK_EVENTS: u64 = PURGE_CHUNK as u64;

/// The newest sequence of the log, as this transaction sees it.
pub(crate) async fn newest_sequence(txn: &DatabaseTransaction) -> Result<u64> {
    let row = change_log::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?;
    Ok(row.last_sequence.max(0) as u64)
}
