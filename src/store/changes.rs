//! The change outbox: appending events inside a use case's transaction, reading them back in
//! sequence order, and purging those past retention.
//!
//! Sequences come from the single `change_log` row, incremented by each appending transaction.
//! The row stays locked until that transaction commits, so sequence N+1 cannot be handed out
//! before N is committed or rolled back: readers always see a gap-free prefix, in order.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use super::Store;
use super::entities::{change_event, change_log};
use super::page::{Page, PageRequest};
use crate::domain::DomainError;
use crate::domain::change::NewChange;
use crate::error::{Error, Result};

/// The PostgreSQL NOTIFY channel that tells other replicas a change was committed.
pub const NOTIFY_CHANNEL: &str = "telephony_admin_changes";

/// Which events a reader wants; `None` means no filter on that field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub account_id: Option<String>,
    pub user_id: Option<String>,
}

impl ChangeFilter {
    pub fn matches(&self, event: &change_event::Model) -> bool {
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
    /// Writes one change event in `txn` and returns it with its sequence.
    pub(super) async fn append_change(
        &self,
        txn: &DatabaseTransaction,
        change: NewChange,
    ) -> Result<change_event::Model> {
        let backend = self.backend();
        let row = txn
            .query_one_raw(Statement::from_string(
                backend,
                "UPDATE change_log SET last_sequence = last_sequence + 1 WHERE id = 1 RETURNING last_sequence",
            ))
            .await?
            .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?;
        let sequence: i64 = row.try_get_by_index(0)?;
        let notice = change.notice();
        let event = change_event::ActiveModel {
            sequence: Set(sequence),
            event_id: Set(uuid::Uuid::new_v4().to_string()),
            account_id: Set(change.account_id),
            user_id: Set(change.user_id),
            kind: Set(change.kind.as_str().to_owned()),
            e164: Set(change.e164_phone_number),
            inbound_calling: Set(change.settings.inbound_calling),
            outbound_calling: Set(change.settings.outbound_calling),
            sms: Set(change.settings.sms),
            notice: Set(notice),
            actor: Set(change.actor),
            occur_time: Set(Utc::now()),
        }
        .insert(txn)
        .await?;
        if self.is_postgres() {
            // Delivered to listeners on commit, never for a rolled-back transaction.
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_notify($1, $2)",
                [NOTIFY_CHANNEL.into(), sequence.to_string().into()],
            ))
            .await?;
        }
        crate::metrics::record_event_written(event.sequence.max(0) as u64);
        Ok(event)
    }

    pub async fn change_log_state(&self) -> Result<ChangeLogState> {
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
    ) -> Result<Vec<change_event::Model>> {
        let mut query = change_event::Entity::find()
            .filter(change_event::Column::Sequence.gt(to_db_sequence(after)))
            .order_by_asc(change_event::Column::Sequence)
            .limit(limit);
        if let Some(up_to) = up_to {
            query = query.filter(change_event::Column::Sequence.lte(to_db_sequence(up_to)));
        }
        Ok(filter.apply(query).all(self.connection()).await?)
    }

    /// The history as pages, for the audit trail.
    pub async fn list_changes(
        &self,
        filter: &ChangeFilter,
        after_sequence: u64,
        page: &PageRequest,
    ) -> Result<Page<change_event::Model>> {
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

    /// Deletes events that occurred before `cutoff`; returns how many went.
    pub async fn purge_changes_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        // Look first without the write lock: usually there is nothing to purge.
        let newest_expired = change_event::Entity::find()
            .filter(change_event::Column::OccurTime.lt(cutoff))
            .order_by_desc(change_event::Column::Sequence)
            .one(self.connection())
            .await?;
        let Some(newest_expired) = newest_expired else {
            return Ok(0);
        };
        let through = newest_expired.sequence;
        let txn = self.begin_write().await?;
        let deleted = change_event::Entity::delete_many()
            .filter(change_event::Column::Sequence.lte(through))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.execute_raw(Statement::from_sql_and_values(
            self.backend(),
            match self.backend() {
                sea_orm::DbBackend::Postgres => {
                    "UPDATE change_log SET purged_through = GREATEST(purged_through, $1) WHERE id = 1"
                }
                _ => "UPDATE change_log SET purged_through = MAX(purged_through, ?) WHERE id = 1",
            },
            [through.into()],
        ))
        .await?;
        self.commit(txn, false).await?;
        Ok(deleted)
    }
}

fn to_db_sequence(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}
