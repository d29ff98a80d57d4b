//! The group-commit writer: the one task per process that writes to the database.
//!
//! Mutations are submitted through a channel. The writer takes the first one waiting, then
//! whatever else is already queued (up to a bound), opens ONE transaction (IMMEDIATE on SQLite),
//! runs each mutation in a savepoint of its own (a batch of one needs none), commits once and
//! then answers every caller. A mutation that fails rolls back its savepoint alone and gets its
//! own error; the others of the batch still commit. One commit (one WAL sync) pays for the whole
//! batch.
//!
//! On PostgreSQL the events a batch staged are numbered just before its commit, in the same
//! transaction ([`super::sequencer`]).
//!
//! On PostgreSQL a mutation can lose a race with another replica (deadlock or serialization
//! failure). Its savepoint is rolled back, so the rest of the batch is unharmed, and it is run
//! again in the next batch, a few times at most, before it is answered ABORTED.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::group_commit::WriterTask;
use super::mutation::Mutation;
use super::sequencer::Sweeper;
use super::submission::{Queued, Submission};
use super::write_stats::WriteStats;
use crate::error::{Error, Result};

/// How the writer gathers batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// The most mutations in one transaction.
    pub max_batch: usize,
    /// How long the writer waits after the first mutation for others to join its batch
    /// (zero: take only those already waiting).
    pub gather: Duration,
}

/// The handle through which mutations reach the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Queued>>,
    stop: CancellationToken,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    stats: Arc<WriteStats>,
}

impl Writer {
    /// Starts the writer task on `db` (on SQLite: a pool of one connection used by nothing
    /// else). `committed` is signalled after each commit that may have written change events.
    pub fn start(db: DatabaseConnection, options: WriterOptions, committed: Arc<Notify>) -> Self {
        let max_batch = options.max_batch.max(1);
        let (queue, incoming) = mpsc::channel(max_batch.saturating_mul(8));
        let stop = CancellationToken::new();
        let stats = Arc::new(WriteStats::default());
        // On PostgreSQL, events left staged are numbered by a task of their own.
        let sweeper = (db.get_database_backend() == DbBackend::Postgres)
            .then(|| Sweeper::start(db.clone(), committed.clone()));
        let task = tokio::spawn(
            WriterTask::new(
                db,
                incoming,
                max_batch,
                options.gather,
                committed,
                sweeper,
                stats.clone(),
            )
            .run(stop.clone()),
        );
        Self {
            queue,
            stop,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
            stats,
        }
    }

    /// Queues `mutation` and waits for its outcome (after its batch has committed).
    pub async fn submit<M: Mutation>(&self, mutation: M) -> Result<M::Output> {
        let (reply, answer) = oneshot::channel();
        // A child of the caller's span (the RPC's), though it runs on the writer's task.
        let span = tracing::info_span!(
            "store.use_case",
            use_case = Submission::<M>::use_case_name(),
            outcome = tracing::field::Empty,
        );
        let queued = Box::new(Submission::new(mutation, reply, span));
        if self.queue.send(queued).await.is_err() {
            return Err(Error::ShuttingDown);
        }
        answer.await.unwrap_or(Err(Error::ShuttingDown))
    }

    pub fn stats(&self) -> Arc<WriteStats> {
        self.stats.clone()
    }

    /// Stops taking mutations, runs those already queued, and waits for the task to end.
    pub async fn close(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the database writer task failed");
        }
    }
}
