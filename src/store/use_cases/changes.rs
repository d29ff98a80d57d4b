//! The change feed, read side: events in sequence order (for watchers and the audit trail) and
//! the bounds of the retained history. Events are written by the engine's outbox
//! (`engine::outbox`).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::domain::DomainError;
use crate::domain::change::ChangeEvent;
use crate::domain::ids::{AccountId, UserId};
use crate::error::{Error, Result};
use crate::store::db::entities::{change_event, change_log};
use crate::store::db::page::{Page, PageRequest};
use crate::store::engine::Engine;

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

fn to_db_sequence(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}
