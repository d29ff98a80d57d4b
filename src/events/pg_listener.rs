//! PostgreSQL LISTEN: another replica's commits wake this process's hub, another process's key
//! revocations reach this process's key cache, and a webhook created or resumed elsewhere wakes
//! this process's delivery supervisor. Notifications sent while the listener was disconnected
//! are lost, so every (re)connection also wakes all three, which then re-read.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::store::{DELIVERIES_CHANNEL, KEYS_CHANNEL, NOTIFY_CHANNEL, Store};
use crate::tasks::BackgroundTasks;

pub fn spawn(store: Store, tasks: &BackgroundTasks) -> tokio::task::JoinHandle<()> {
    let shutdown = tasks.shutdown_token();
    tasks.spawn(async move {
        let wake = store.signals().committed.clone();
        let mut backoff = Duration::from_millis(100);
        loop {
            let connected = async {
                let mut listener =
                    PgListener::connect_with(store.connection().get_postgres_connection_pool())
                        .await?;
                listener
                    .listen_all([NOTIFY_CHANNEL, KEYS_CHANNEL, DELIVERIES_CHANNEL])
                    .await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = connected => match result {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not LISTEN for changes; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(100);
            let wake_all = || {
                wake.notify_one();
                store.signals().revoked.heard();
                store.signals().deliveries.notify_one();
            };
            wake_all();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(n)) if n.channel() == KEYS_CHANNEL => store.signals().revoked.heard(),
                        Ok(Some(n)) if n.channel() == DELIVERIES_CHANNEL => store.signals().deliveries.notify_one(),
                        Ok(Some(_)) => wake.notify_one(),
                        // The connection dropped and was re-established: anything may have been missed.
                        Ok(None) => wake_all(),
                        Err(e) => {
                            tracing::warn!(error = %e, "change listener failed; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    })
}
