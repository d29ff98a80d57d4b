//! The shared fan-out: one loader task per process reads new events from the outbox and keeps
//! the most recent ones in memory for every watcher.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::sync::{RwLock, watch};
use tokio_util::sync::CancellationToken;

use crate::domain::change::ChangeEvent;
use crate::domain::change::EventKind;
use crate::store::{ChangeFilter, Store};
use crate::tasks::BackgroundTasks;

/// How many events one outbox read takes.
const LOAD_BATCH: u64 = 1000;

pub type Event = Arc<ChangeEvent>;

pub struct ChangeHub {
    /// The highest sequence loaded into the ring; watchers wait for it to move.
    head: watch::Sender<u64>,
    /// The newest events, contiguous in sequence, oldest first.
    ring: RwLock<VecDeque<Event>>,
    capacity: usize,
}

impl ChangeHub {
    /// Starts the loader at the current end of the log; it stops when `shutdown` fires.
    pub async fn start(
        store: Store,
        capacity: usize,
        poll_interval: Duration,
        tasks: &BackgroundTasks,
    ) -> crate::error::Result<Arc<Self>> {
        let last = store.changes().state().await?.last_sequence;
        let hub = Arc::new(Self {
            head: watch::Sender::new(last),
            ring: RwLock::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
        });
        tasks.spawn(
            hub.clone()
                .load_loop(store, poll_interval, tasks.shutdown_token()),
        );
        Ok(hub)
    }

    /// The highest sequence this process has loaded.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Events after `after` that match `filter`, scanning at most `max_scan` events of the ring,
    /// and the sequence the scan covered. `None` when the ring no longer holds `after + 1`: the
    /// caller must read the database.
    pub async fn read_after(
        &self,
        after: u64,
        filter: &ChangeFilter,
        max_scan: usize,
    ) -> Option<(Vec<Event>, u64)> {
        let ring = self.ring.read().await;
        let head = ring.back().map(|e| e.sequence).unwrap_or(self.head());
        if after >= head {
            return Some((Vec::new(), after));
        }
        let first = ring.front()?.sequence;
        if after + 1 < first {
            return None;
        }
        let start = (after + 1 - first) as usize;
        let mut covered = after;
        let mut matched = Vec::new();
        for event in ring.iter().skip(start).take(max_scan) {
            covered = event.sequence;
            if filter.matches(event) {
                matched.push(event.clone());
            }
        }
        Some((matched, covered))
    }

    async fn load_loop(
        self: Arc<Self>,
        store: Store,
        poll_interval: Duration,
        shutdown: CancellationToken,
    ) {
        let wake = store.signals().committed.clone();
        let everything = ChangeFilter::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll_interval) => {}
            }
            loop {
                let head = self.head();
                let events = match store
                    .changes()
                    .after(head, None, &everything, LOAD_BATCH)
                    .await
                {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "change hub could not read the outbox; retrying");
                        break;
                    }
                };
                let Some(last) = events.last().map(|e| e.sequence) else {
                    break;
                };
                let full = events.len() as u64 == LOAD_BATCH;
                for event in &events {
                    if let EventKind::Unknown { code, name } = &event.kind {
                        crate::metrics::record_unknown_change_kind();
                        tracing::warn!(
                            sequence = event.sequence,
                            code,
                            name,
                            "change event of a kind this version does not know (a newer one wrote it): passed on as written, not mailed"
                        );
                    }
                }
                {
                    let mut ring = self.ring.write().await;
                    // The ring must stay contiguous: drop it if the log moved on without us.
                    if ring.back().is_some_and(|b| b.sequence != head) {
                        ring.clear();
                    }
                    for event in events {
                        if ring.len() == self.capacity {
                            ring.pop_front();
                        }
                        ring.push_back(Arc::new(event));
                    }
                }
                self.head.send_replace(last);
                crate::metrics::record_hub_sequence(last);
                if !full {
                    break;
                }
            }
        }
    }
}
