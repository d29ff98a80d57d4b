//! One `WatchChanges` stream: replay what the consumer missed, then follow the hub, with
//! checkpoints. It runs as its own task and writes into a small bounded channel; when the
//! consumer stops reading, the task simply waits (and later resumes from the database), and when
//! the consumer goes away or the server shuts down, the task ends at once, without waiting for
//! room in the channel.
//!
//! A resume point must belong to this log (the consumer may send the `log_id` it came from) and
//! lie within the retained history: not compacted, not beyond the newest event.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hub::{ChangeHub, Event};
use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::store::{ChangeFilter, Store};
use crate::tasks::BackgroundTasks;

/// Events read per step, from the ring or the database.
const BATCH: usize = 256;
/// Items buffered per watcher: the bound on a slow consumer's memory.
const CHANNEL_CAPACITY: usize = 64;
/// While a batch is being sent to a slow consumer, the key is checked again this often.
const REVALIDATE_INTERVAL: Duration = Duration::from_secs(1);

/// `google.rpc.ErrorInfo` reasons of refused resume points.
pub const RESUME_POINT_AHEAD_OF_LOG: &str = "RESUME_POINT_AHEAD_OF_LOG";
pub const CHANGE_LOG_REPLACED: &str = "CHANGE_LOG_REPLACED";

/// What a watcher sends.
#[derive(Debug, Clone)]
pub enum WatchItem {
    Event(Event),
    /// Everything up to this sequence has been sent.
    Checkpoint(u64),
}

/// Checks, before each batch of events (given the batch's last sequence), at least every
/// [`REVALIDATE_INTERVAL`] while a batch is being sent, and before each idle checkpoint, that the
/// consumer may still watch (e.g. its key is not revoked).
pub type Revalidate =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

pub struct WatchOptions {
    pub filter: ChangeFilter,
    /// Resume after this sequence; `None` for live events only.
    pub after_sequence: Option<u64>,
    /// The log the consumer's resume point came from; `None` when it does not say.
    pub log_id: Option<String>,
    pub checkpoint_interval: Duration,
    pub revalidate: Option<Revalidate>,
}

/// What the channel carries: the error is boxed so that every slot stays small (tokio allocates
/// the slots in blocks, one block per idle watcher at least).
pub type WatchResult = std::result::Result<WatchItem, Box<Error>>;

/// An open watch: the log it reads and the items a background task feeds it.
pub struct Watch {
    pub log_id: String,
    pub items: mpsc::Receiver<WatchResult>,
}

/// Opens a watch: checks the resume point now (so that the refusal is the RPC's answer), then
/// returns the receiving end of a stream fed by a background task.
pub async fn watch(
    store: Store,
    hub: Arc<ChangeHub>,
    options: WatchOptions,
    tasks: &BackgroundTasks,
) -> Result<Watch> {
    let shutdown = tasks.shutdown_token();
    let state = store.changes().state().await?;
    if let Some(expected) = &options.log_id {
        check_same_log(expected, &state.log_id)?;
    }
    let cursor = match options.after_sequence {
        Some(after) => {
            check_retained(after, state.purged_through)?;
            check_not_ahead(after, state.last_sequence)?;
            after
        }
        None => state.last_sequence,
    };
    let log_id = state.log_id;
    let committed = state.last_sequence;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let task_log_id = log_id.clone();
    tasks.spawn(async move {
        let _open = crate::metrics::watch_stream_opened();
        let ended = Watcher {
            store,
            hub,
            options,
            log_id: task_log_id,
            tx: tx.clone(),
            cursor,
            committed,
        }
        .run(shutdown.clone())
        .await;
        if let Err(error) = ended {
            if matches!(error, Error::ShuttingDown) {
                // Never wait for room at shutdown: a consumer that is not reading must not hold
                // the server up (the API ends its stream with the same error anyway).
                let _ = tx.try_send(Err(Box::new(error)));
            } else {
                // The consumer may be gone already; nothing else to do then.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tx.send(Err(Box::new(error))) => {}
                }
            }
        }
    });
    Ok(Watch { log_id, items: rx })
}

fn check_same_log(expected: &str, actual: &str) -> Result<()> {
    if expected != actual {
        return Err(DomainError::precondition(
            CHANGE_LOG_REPLACED,
            "log_id",
            format!(
                "the resume point belongs to change log {expected}, but this service now serves change log {actual}: the database was restored or replaced, so sequences are not comparable; re-read the current state you need, then watch without after_sequence (or from a sequence of the new log)"
            ),
        )
        .into());
    }
    Ok(())
}

fn check_not_ahead(after: u64, last_sequence: u64) -> Result<()> {
    if after > last_sequence {
        return Err(DomainError::precondition(
            RESUME_POINT_AHEAD_OF_LOG,
            "after_sequence",
            format!(
                "after_sequence {after} is beyond the newest event ({last_sequence}): the database was restored or failed over and lost events you saw; re-read the current state you need, then watch without after_sequence (or from a sequence of this log)"
            ),
        )
        .into());
    }
    Ok(())
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
    log_id: String,
    tx: mpsc::Sender<WatchResult>,
    /// Everything up to here has been sent (or did not match the filter).
    cursor: u64,
    /// The last sequence committed when the watch opened: the replay goes at least this far
    /// before the caught-up checkpoint, even if this process's hub has not loaded it yet.
    committed: u64,
}

impl Watcher {
    async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let mut head = self.hub.subscribe();
        let mut caught_up = false;
        let mut last_sent = Instant::now();
        loop {
            let target = (*head.borrow_and_update()).max(self.committed);
            if self.cursor < target {
                let (events, covered) = self.next_batch(target).await?;
                let sent_any = !events.is_empty();
                // One key check for the batch, before its first event; again only if sending
                // to a slow consumer takes long.
                let mut checked: Option<Instant> = None;
                let batch_end = events.last().map_or(covered, |e| e.sequence);
                for event in events {
                    if checked.is_none_or(|at| at.elapsed() >= REVALIDATE_INTERVAL) {
                        if let Some(revalidate) = &self.options.revalidate {
                            revalidate(batch_end).await?;
                        }
                        checked = Some(Instant::now());
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
        // The ring serves only what the hub has loaded.
        if target <= self.hub.head()
            && let Some(found) = self
                .hub
                .read_after(self.cursor, &self.options.filter, BATCH)
                .await
        {
            return Ok(found);
        }
        crate::metrics::record_ring_fallback();
        // Boxed: the database read's future is large, and inline it would grow every watcher
        // task, idle ones included, by its size.
        Box::pin(self.read_database(target)).await
    }

    /// The events after the cursor from the database, when the ring no longer holds them.
    async fn read_database(&self, target: u64) -> Result<(Vec<Event>, u64)> {
        let events = self
            .store
            .changes()
            .after(
                self.cursor,
                Some(target),
                &self.options.filter,
                BATCH as u64,
            )
            .await?;
        // Events purged while we were behind would be skipped silently, and a database replaced
        // under us would renumber them: refuse instead.
        let state = self.store.changes().state().await?;
        check_same_log(&self.log_id, &state.log_id)?;
        check_retained(self.cursor, state.purged_through)?;
        let covered = if events.len() == BATCH {
            events.last().map_or(target, |e| e.sequence)
        } else {
            target
        };
        Ok((events.into_iter().map(Arc::new).collect(), covered))
    }

    /// Sends one item: `Ok(false)` when the consumer is gone; a shutdown while waiting for a
    /// slow consumer ends the stream with the shutdown error.
    async fn send(&self, item: WatchItem, shutdown: &CancellationToken) -> Result<bool> {
        // Room in the channel (the usual case): no need to watch for shutdown meanwhile.
        let item = match self.tx.try_send(Ok(item)) {
            Ok(()) => return Ok(true),
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(false),
            Err(mpsc::error::TrySendError::Full(item)) => item,
        };
        tokio::select! {
            _ = shutdown.cancelled() => Err(Error::ShuttingDown),
            sent = self.tx.send(item) => Ok(sent.is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// Every idle watcher keeps its task's future in memory: it must stay small (the database
    /// fallback is boxed for that).
    #[tokio::test]
    async fn an_idle_watcher_task_stays_small() {
        let store = Store::connect("sqlite::memory:", StoreOptions::default())
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let shutdown = CancellationToken::new();
        let tasks = BackgroundTasks::new(shutdown.clone());
        let hub = ChangeHub::start(store.clone(), 16, Duration::from_secs(60), &tasks)
            .await
            .expect("hub");
        let (tx, _rx) = mpsc::channel(CHANNEL_CAPACITY);
        let watcher = Watcher {
            store,
            hub,
            options: WatchOptions {
                filter: ChangeFilter::default(),
                after_sequence: None,
                log_id: None,
                checkpoint_interval: Duration::from_secs(30),
                revalidate: None,
            },
            log_id: String::new(),
            tx,
            cursor: 0,
            committed: 0,
        };
        let running = watcher.run(shutdown.clone());
        let size = std::mem::size_of_val(&running);
        assert!(size <= 1536, "the watcher future takes {size} bytes");
        assert!(
            std::mem::size_of::<WatchResult>() <= 16,
            "a channel slot takes {} bytes",
            std::mem::size_of::<WatchResult>()
        );
        drop(running);
        shutdown.cancel();
        tasks.shut_down().await;
    }
}
