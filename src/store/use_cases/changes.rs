//! The change feed, read side: events in sequence order (for watchers and the audit trail) and
//! the bounds of the retained history. Events are written by the engine's outbox
//! (`engine::outbox`).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::domain::DomainError;
use crate::domain::change::ChangeEvent;
use crate::domain::ids::{AccountId, UserId};
use crate::error::{Error, Result};
use crate::store::db::entities::{change_event, change_log, delivery};
use crate::store::db::page::{Page, PageRequest};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};
use crate::store::engine::sequencer::number_staged;

/// Which events a reader wants; `None` means no filter on that field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub account_id: Option<AccountId>,
    pub user_id: Option<UserId>,
}

impl ChangeFilter {
    pub fn matches(&self, event: &ChangeEvent) -> bool {
        self.account_id
            .as_ref()
            .is_none_or(|a| a == &event.account_id)
            && self.user_id.as_ref().is_none_or(|u| u == &event.user_id)
    }

    fn apply<Q: QueryFilter>(&self, mut query: Q) -> Q {
        if let Some(account_id) = &self.account_id {
            query = query.filter(change_event::Column::AccountId.eq(account_id.as_str()));
        }
        if let Some(user_id) = &self.user_id {
            query = query.filter(change_event::Column::UserId.eq(user_id.as_str()));
        }
        query
    }
}

/// The bounds of the retained history, and which log it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeLogState {
    /// The log's identity (see `ChangeEvent.log_id`).
    pub log_id: String,
    /// The last committed sequence (0 before the first event).
    pub last_sequence: u64,
    /// Every event up to this sequence has been purged.
    pub purged_through: u64,
}

/// The change log, read side: the store's surface for it.
pub struct Changes<'a> {
    engine: &'a Engine,
    /// Admits as many change-log state reads at a time as there are reader connections.
    state_reads: &'a Semaphore,
    /// How long a read waits for a connection before failing.
    acquire_timeout: Duration,
}

impl<'a> Changes<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        state_reads: &'a Semaphore,
        acquire_timeout: Duration,
    ) -> Self {
        Self {
            engine,
            state_reads,
            acquire_timeout,
        }
    }

    /// Which log this is and the bounds of its retained history, on a reader.
    ///
    /// Every watch stream opened reads it, so thousands may ask at once. Each SeaORM query
    /// allocates ~15 KiB (its boxed future) before it waits for a connection, and memory freed
    /// after such a burst stays resident: past the pool's size, callers wait for a cheap permit
    /// instead. The pool's acquire timeout bounds that wait likewise.
    pub async fn state(&self) -> Result<ChangeLogState> {
        let _permit = tokio::time::timeout(self.acquire_timeout, self.state_reads.acquire())
            .await
            .map_err(|_| {
                Error::Database(sea_orm::DbErr::ConnectionAcquire(
                    sea_orm::ConnAcquireErr::Timeout,
                ))
            })?
            .map_err(|_| Error::Internal("the change-log read gate is closed".into()))?;
        let row = change_log::Entity::find_by_id(1)
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?;
        Ok(ChangeLogState {
            log_id: row.log_id,
            last_sequence: row.last_sequence.max(0) as u64,
            purged_through: row.purged_through.max(0) as u64,
        })
    }

    /// Up to `limit` events with a sequence above `after` (and at most `up_to`, if given),
    /// matching `filter`, in order.
    pub async fn after(
        &self,
        after: u64,
        up_to: Option<u64>,
        filter: &ChangeFilter,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>> {
        let mut query = change_event::Entity::find()
            .filter(change_event::Column::Sequence.gt(to_db_sequence(after)))
            .order_by_asc(change_event::Column::Sequence)
            .limit(limit);
        if let Some(up_to) = up_to {
            query = query.filter(change_event::Column::Sequence.lte(to_db_sequence(up_to)));
        }
        Ok(filter
            .apply(query)
            .all(self.engine.reader())
            .await?
            .into_iter()
            .map(ChangeEvent::from)
            .collect())
    }

    /// Numbers the events that a process of an earlier version, which numbered after its
    /// commits, left staged when it died in between (PostgreSQL; SQLite numbers events as it
    /// writes them). The engine's sweep would number them too, within its interval.
    pub async fn number_leftovers(&self) -> Result<usize> {
        let db = self.engine.reader();
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(0);
        }
        Ok(number_staged(db).await?.len())
    }

    /// Gives the change log a new identity (after a restore; see [`LogReplaced`]).
    pub async fn replace_log_identity(&self) -> Result<LogReplaced> {
        self.engine.write(ReplaceLogIdentity).await
    }

    /// The history as pages, for the audit trail.
    pub async fn list(
        &self,
        filter: &ChangeFilter,
        after_sequence: u64,
        page: &PageRequest,
    ) -> Result<Page<ChangeEvent>> {
        let after = match &page.after {
            Some(key) => key.parse::<u64>().map_err(|_| {
                DomainError::invalid("page_token", "is not a page token of this list")
            })?,
            None => after_sequence,
        };
        let rows = self.after(after, None, filter, page.fetch_limit()).await?;
        Ok(page.finish(rows, |e| e.sequence.to_string()))
    }
}

/// What giving the change log a new identity did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReplaced {
    pub previous_log_id: String,
    pub log_id: String,
    /// The log's last event: deliveries resume after it.
    pub last_sequence: u64,
    /// Webhook and mail deliveries whose cursors were moved to it.
    pub deliveries_reset: u64,
}

/// Gives the change log a new identity, after the database was restored from a backup: every
/// consumer resuming with the old `log_id` is told (CHANGE_LOG_REPLACED) instead of silently
/// resuming against a log that lost events. Push deliveries resume after the restored log's
/// last event, and their `last_error` says so; their leases are released.
struct ReplaceLogIdentity;

impl Mutation for ReplaceLogIdentity {
    type Output = LogReplaced;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, LogReplaced> {
        Box::pin(replace_log_identity(txn))
    }
}

async fn replace_log_identity(txn: &DatabaseTransaction) -> Result<LogReplaced> {
    let log = change_log::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?;
    let log_id = uuid::Uuid::new_v4().to_string();
    let mut replaced: change_log::ActiveModel = log.clone().into();
    replaced.log_id = Set(log_id.clone());
    replaced.update(txn).await?;
    let last_sequence = log.last_sequence.max(0);
    let note = format!(
        "the change log was replaced after a restore (log {log_id}); delivery resumes after its last event, {last_sequence}: events between the backup and the restore were lost"
    );
    let reset = delivery::Entity::update_many()
        .col_expr(delivery::Column::Cursor, Expr::value(last_sequence))
        .col_expr(delivery::Column::LastError, Expr::value(note))
        .col_expr(
            delivery::Column::LastErrorTime,
            Expr::value(crate::store::db::now()),
        )
        .col_expr(
            delivery::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            delivery::Column::LeaseExpireTime,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .exec(txn)
        .await?;
    Ok(LogReplaced {
        previous_log_id: log.log_id,
        log_id,
        last_sequence: last_sequence as u64,
        deliveries_reset: reset.rows_affected,
    })
}

fn to_db_sequence(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}
