//! Background housekeeping: purge change events past retention, numbers whose time in the
//! deletion queue is over, and idempotency records past their window; count the users who lack
//! a required emergency location (a gauge). Runs on every replica; the deletes are idempotent,
//! so replicas running them at once do no harm.

use std::time::Duration;

use chrono::Utc;

use crate::metrics::{self, PurgeKind};
use crate::store::Store;
use crate::tasks::BackgroundTasks;

/// How long things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events: Duration,
    /// How long a `request_id` keeps returning its first result.
    pub idempotency: Duration,
}

pub fn spawn(
    store: Store,
    retention: Retention,
    interval: Duration,
    tasks: &BackgroundTasks,
) -> tokio::task::JoinHandle<()> {
    let shutdown = tasks.shutdown_token();
    let as_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let events = as_chrono(retention.events);
    let idempotency = as_chrono(retention.idempotency);
    tasks.spawn(async move {
        loop {
            run_once(&store, events, idempotency).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

async fn run_once(store: &Store, events: chrono::Duration, idempotency: chrono::Duration) {
    let now = Utc::now();
    metrics::record_purge_run();
    match store.users().count_lacking_emergency_location().await {
        Ok(count) => metrics::record_users_missing_emergency_location(count),
        Err(e) => {
            tracing::warn!(error = %e, "could not count the users lacking an emergency location")
        }
    }
    if let Some(cutoff) = now.checked_sub_signed(events) {
        match store.retention().purge_changes_before(cutoff).await {
            Ok(0) => {}
            Ok(purged) => {
                metrics::record_purged(PurgeKind::ChangeEvents, purged);
                tracing::info!(purged, "change events past retention purged");
            }
            Err(e) => tracing::warn!(error = %e, "could not purge change events"),
        }
    }
    if let Some(cutoff) = now.checked_sub_signed(idempotency) {
        match store.retention().purge_answers_before(cutoff).await {
            Ok(0) => {}
            Ok(purged) => {
                metrics::record_purged(PurgeKind::IdempotencyRecords, purged);
                tracing::info!(purged, "expired idempotency records purged");
            }
            Err(e) => tracing::warn!(error = %e, "could not purge idempotency records"),
        }
    }
    match store.inventory().purge_deleted(now).await {
        Ok(0) => {}
        Ok(purged) => {
            metrics::record_purged(PurgeKind::DeletedNumbers, purged);
            tracing::info!(purged, "phone numbers purged from the deletion queue");
        }
        Err(e) => tracing::warn!(error = %e, "could not purge the deletion queue"),
    }
}
