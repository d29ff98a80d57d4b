//! Background housekeeping: purge change events past retention and numbers whose time in the
//! deletion queue is over. Runs on every replica; the deletes are idempotent, so replicas
//! running them at once do no harm.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

pub fn spawn(
    store: Store,
    event_retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let retention =
            chrono::Duration::from_std(event_retention).unwrap_or(chrono::Duration::MAX);
        loop {
            run_once(&store, retention).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

async fn run_once(store: &Store, retention: chrono::Duration) {
    let now = Utc::now();
    if let Some(cutoff) = now.checked_sub_signed(retention) {
        match store.purge_changes_before(cutoff).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "change events past retention purged"),
            Err(e) => tracing::warn!(error = %e, "could not purge change events"),
        }
    }
    match store.purge_deleted_numbers(now).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "phone numbers purged from the deletion queue"),
        Err(e) => tracing::warn!(error = %e, "could not purge the deletion queue"),
    }
}
