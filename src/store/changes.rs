//! The change feed, read side: events in sequence order (for watchers and the audit trail) and
//! the bounds of the retained history. Events are written by [`super::outbox`].

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use super::entities::{change_event, change_log};
use super::page::{Page, PageRequest};
use crate::domain::DomainError;
use crate::domain::change::ChangeEvent;
use crate::error::{Error, Result};

/// Which events a reader wants; `None` means no filter on that field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub account_id: Option<String>,
    pub user_id: Option<String>,
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

impl Store {
    ///
    /// Every watch stream opened reads it, so thousands may ask at once. Each SeaORM query
    /// allocates ~15 KiB (its boxed future) before it waits for a connection, and memory freed
    /// after such a burst stays resident: past the pool's size, callers wait for a cheap permit
    /// instead. The pool's acquire timeout bounds that wait likewise.
    pub async fn change_log_state(&self) -> Result<ChangeLogState> {
        let _permit =
            tokio::time::timeout(self.options.acquire_timeout, self.state_reads.acquire())
                .await
                .map_err(|_| {
                    Error::Database(sea_orm::DbErr::ConnectionAcquire(
                        sea_orm::ConnAcquireErr::Timeout,
                    ))
                })?
                .map_err(|_| Error::Internal("the change-log read gate is closed".into()))?;
        let row = change_log::Entity::find_by_id(1)
            .one(self.connection())
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
    pub async fn changes_after(
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
            .all(self.connection())
            .await?
            .into_iter()
            .map(ChangeEvent::from)
            .collect())
    }

    /// The history as pages, for the audit trail.
    pub async fn list_changes(
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
        let rows = self
            .changes_after(after, None, filter, page.fetch_limit())
            .await?;
        Ok(page.finish(rows, |e| e.sequence.to_string()))
    }
}

fn to_db_sequence(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}
