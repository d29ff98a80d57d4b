//! Counters of the writer's work (batches, their sizes, joined runs), for logs, metrics and
//! tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the writer's work, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct WriteStats {
    batches: AtomicU64,
    mutations: AtomicU64,
    largest_batch: AtomicU64,
    shared_batches: AtomicU64,
    mixed_batches: AtomicU64,
    pub(super) joined_runs: AtomicU64,
}

impl WriteStats {
    /// Committed transactions.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Mutations run (committed or failed).
    pub fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::Relaxed)
    }

    /// The most mutations one batch held.
    pub fn largest_batch(&self) -> u64 {
        self.largest_batch.load(Ordering::Relaxed)
    }

    /// Committed batches that held more than one mutation.
    pub fn shared_batches(&self) -> u64 {
        self.shared_batches.load(Ordering::Relaxed)
    }

    /// Committed batches in which at least one mutation failed and at least one succeeded.
    pub fn mixed_batches(&self) -> u64 {
        self.mixed_batches.load(Ordering::Relaxed)
    }

    /// Runs of one set use case that joined several single requests (committed or not).
    pub fn joined_runs(&self) -> u64 {
        self.joined_runs.load(Ordering::Relaxed)
    }

    pub(super) fn record(&self, size: usize, failed: usize, committed: bool) {
        if committed {
            crate::metrics::record_write_batch(size);
        }
        let size = size as u64;
        self.mutations.fetch_add(size, Ordering::Relaxed);
        self.largest_batch.fetch_max(size, Ordering::Relaxed);
        if committed {
            self.batches.fetch_add(1, Ordering::Relaxed);
            if size > 1 {
                self.shared_batches.fetch_add(1, Ordering::Relaxed);
            }
            if failed > 0 && (failed as u64) < size {
                self.mixed_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
