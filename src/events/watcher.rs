//! One `WatchChanges` stream: replay what the consumer missed, then follow the hub, with
//! checkpoints. It runs as its own task and writes into a small bounded channel; when the
//! consumer stops reading, the task simply waits (and later resumes from the database), and when
//! the consumer goes away or the server shuts down, the task ends at once.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hub::{ChangeHub, Event};
use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::store::{ChangeFilter, Store};

/// Events read per step, from the ring or the database.
const BATCH: usize = 256;
/// Items buffered per watcher: the bound on a slow consumer's memory.
const CHANNEL_CAPACITY: usize = 64;

/// What a watcher sends.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Event(Event),
    /// Everything up to this sequence has been sent.
    Checkpoint(u64),
}

/// Checks, before each event (given its sequence) and each idle checkpoint, that the consumer
/// may still watch (e.g. its key is not revoked).
pub type Revalidate =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

pub struct WatchOptions {
    pub filter: ChangeFilter,
    /// Resume after this sequence; `None` for live events only.
    pub after_sequence: Option<u64>,
    pub checkpoint_interval: Duration,
    pub revalidate: Option<Revalidate>,
}

/// Opens a watch: checks the resume point now (so that OUT_OF_RANGE is the RPC's answer), then
/// returns the receiving end of a stream fed by a background task.
pub async fn watch(
    store: Store,
    hub: Arc<ChangeHub>,
    options: WatchOptions,
    shutdown: CancellationToken,
) -> Result<mpsc::Receiver<Result<WatchItem>>> {
    let state = store.change_log_state().await?;
    let cursor = match options.after_sequence {
        Some(after) => {
            check_retained(after, state.purged_through)?;
            after
        }
        None => state.last_sequence,
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let _open = crate::metrics::watch_stream_opened();
        let ended = Watcher {
            store,
            hub,
            options,
            tx: tx.clone(),
            cursor,
        }
        .run(shutdown)
        .await;
        if let Err(error) = ended {
            // The consumer may be gone already; nothing else to do then.
            let _ = tx.send(Err(error)).await;
        }
    });
    Ok(rx)
}

fn check_retained(after: u64, purged_through: u64) -> Result<()> {
    if after < purged_through {
        return Err(DomainError::OutOfRange(format!(
            "sequence {after} has been compacted: the oldest retained sequence is {}; resume from the current state (omit after_sequence) and re-read what you need",
            purged_through + 1
        ))
        .into());
    }
    Ok(())
}

struct Watcher {
    store: Store,
    hub: Arc<ChangeHub>,
    options: WatchOptions,
    tx: mpsc::Sender<Result<WatchItem>>,
    /// Everything up to here has been sent (or did not match the filter).
    cursor: u64,
}

impl Watcher {
    async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let mut head = self.hub.subscribe();
        let mut caught_up = false;
        let mut last_sent = Instant::now();
        loop {
            let target = *head.borrow_and_update();
            if self.cursor < target {
                let (events, covered) = self.next_batch(target).await?;
                let sent_any = !events.is_empty();
                for event in events {
                    if let Some(revalidate) = &self.options.revalidate {
                        revalidate(event.sequence as u64).await?;
                    }
                    if !self.send(WatchItem::Event(event), &shutdown).await? {
                        return Ok(());
                    }
                }
                self.cursor = covered;
                // Only what reached the consumer resets the idle timer: a filtered stream whose
                // events all go to others must still get its checkpoints (and key re-checks).
                if sent_any {
                    last_sent = Instant::now();
                }
                continue;
            }
            if !caught_up {
                caught_up = true;
                if !self
                    .send(WatchItem::Checkpoint(self.cursor), &shutdown)
                    .await?
                {
                    return Ok(());
                }
                last_sent = Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Err(Error::ShuttingDown),
                _ = self.tx.closed() => return Ok(()),
                changed = head.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(last_sent + self.options.checkpoint_interval) => {
                    if let Some(revalidate) = &self.options.revalidate {
                        revalidate(self.cursor).await?;
                    }
                    if !self.send(WatchItem::Checkpoint(self.cursor), &shutdown).await? {
                        return Ok(());
                    }
                    last_sent = Instant::now();
                }
            }
        }
    }

    /// The next events after the cursor, up to `target`, from the ring if it still holds them,
    /// else from the database; and the sequence they cover.
    async fn next_batch(&self, target: u64) -> Result<(Vec<Event>, u64)> {
        if let Some(found) = self
            .hub
            .read_after(self.cursor, &self.options.filter, BATCH)
            .await
        {
            return Ok(found);
        }
        crate::metrics::record_ring_fallback();
        let events = self
            .store
            .changes_after(
                self.cursor,
                Some(target),
                &self.options.filter,
                BATCH as u64,
            )
            .await?;
        // Events purged while we were behind would be skipped silently: refuse instead.
        let state = self.store.change_log_state().await?;
        check_retained(self.cursor, state.purged_through)?;
        let covered = if events.len() == BATCH {
            events.last().map_or(target, |e| e.sequence as u64)
        } else {
            target
        };
        Ok((events.into_iter().map(Arc::new).collect(), covered))
    }

    /// Sends one item: `Ok(false)` when the consumer is gone; a shutdown while waiting for a
    /// slow consumer ends the stream with the shutdown error.
    async fn send(&self, item: WatchItem, shutdown: &CancellationToken) -> Result<bool> {
        tokio::select! {
            _ = shutdown.cancelled() => Err(Error::ShuttingDown),
            sent = self.tx.send(Ok(item)) => Ok(sent.is_ok()),
        }
    }
}
