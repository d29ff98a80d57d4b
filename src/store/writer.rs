//! The group-commit writer: the one task per process that writes to the database.
//!
//! Mutations are submitted through a channel. The writer takes the first one waiting, then
//! whatever else is already queued (up to a bound), opens ONE transaction (IMMEDIATE on SQLite),
//! runs each mutation in a savepoint of its own, commits once and then answers every caller.
//! A mutation that fails rolls back its savepoint alone and gets its own error; the others of
//! the batch still commit. One commit (one WAL sync) pays for the whole batch.
//!
//! On PostgreSQL the events of a committed batch are numbered afterwards, by the sequencer
//! (`store::sequencer`), and its callers are answered once that is done.
//!
//! On PostgreSQL a mutation can lose a race with another replica (deadlock or serialization
//! failure). Its savepoint is rolled back, so the rest of the batch is unharmed, and it is run
//! again in the next batch, a few times at most, before it is answered ABORTED.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use super::sequencer::{Awaiting, Sequencer};
use crate::domain::DomainError;
use crate::error::{Error, Result, classify_db_error, is_conflict};

/// A boxed future borrowing the transaction it runs in.
pub(crate) type TxnFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One write use case with its validated input: run by the writer inside a savepoint.
pub(crate) trait Mutation: Send + Sync + 'static {
    type Output: Send + 'static;

    /// Whether the mutation may append change events (watchers are woken after the commit).
    const APPENDS_CHANGES: bool;

    /// Runs the use case in `txn`. It may run more than once (after losing a race on
    /// PostgreSQL), each time in a fresh savepoint.
    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Self::Output>;

    /// Visits every change-event sequence in `output`: on PostgreSQL, those of events written
    /// by the mutation are provisional until the sequencer numbers them (`store::sequencer`).
    fn visit_sequences(_output: &mut Self::Output, _visit: &mut dyn FnMut(&mut u64)) {}

    /// Whether `other`, waiting in the same batch, can run with this one in one call of
    /// [`Mutation::run_together`]: e.g. single assignments by the same caller, which one set
    /// run decides and writes in a few statements instead of a few each.
    fn joins(&self, _other: &Self) -> bool {
        false
    }

    /// Runs `all` (each joining the first) as one, in order: each one's outcome, a failed one
    /// having changed nothing. `Err` when the run as a whole failed; the writer then rolls it
    /// back and runs each alone.
    fn run_together<'a>(
        _all: Vec<&'a Self>,
        _txn: &'a DatabaseTransaction,
    ) -> TxnFuture<'a, Vec<Result<Self::Output>>> {
        Box::pin(async { Err(Error::Internal("this use case does not run joined".into())) })
    }
}

/// How the writer gathers batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// The most mutations in one transaction.
    pub max_batch: usize,
    /// How long the writer waits after the first mutation for others to join its batch
    /// (zero: take only those already waiting).
    pub gather: Duration,
}

/// Counters of the writer's work, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct WriteStats {
    batches: AtomicU64,
    mutations: AtomicU64,
    largest_batch: AtomicU64,
    shared_batches: AtomicU64,
    mixed_batches: AtomicU64,
    joined_runs: AtomicU64,
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

    fn record(&self, size: usize, failed: usize, committed: bool) {
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

/// Times a mutation that lost a race on PostgreSQL is run again before it is answered ABORTED.
const MAX_ATTEMPTS: u32 = 3;

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
        // On PostgreSQL events are numbered after commit, by a task of their own.
        let sequencer = (db.get_database_backend() == DbBackend::Postgres)
            .then(|| Sequencer::start(db.clone(), committed.clone()));
        let task = tokio::spawn(
            WriterTask {
                db,
                incoming,
                max_batch,
                gather: options.gather,
                committed,
                sequencer,
                stats: stats.clone(),
                carried: Vec::new(),
            }
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
            use_case = use_case_name::<M>(),
            outcome = tracing::field::Empty,
        );
        let queued = Box::new(Submission {
            mutation,
            outcome: None,
            attempts: 0,
            reply,
            span,
        });
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

/// A submitted mutation with its reply channel, type-erased for the queue.
trait Queued: Send {
    /// Runs the mutation in `txn` and keeps the outcome; true when it succeeded.
    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    /// Whether the kept failure was a lost race worth running again.
    fn should_retry(&self) -> bool;
    fn appends_changes(&self) -> bool;
    /// Whether the caller has gone away (cancelled, or past its deadline).
    fn abandoned(&self) -> bool;
    /// Sends the kept outcome.
    fn answer(self: Box<Self>);
    /// Sends `error` instead of the kept outcome.
    fn fail(self: Box<Self>, error: Error);
    /// The use case's span, a child of the caller's.
    fn span(&self) -> &Span;
    /// For the sequencer, which answers once the mutation's events are numbered.
    fn into_awaiting(self: Box<Self>) -> Box<dyn Awaiting>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Whether `other` can run with this one ([`Mutation::joins`]).
    fn joins(&self, other: &dyn Queued) -> bool;
    /// Runs this one and `others` (all joining it) as one, keeping each one's outcome; `Err`
    /// when the run as a whole failed (nothing is kept).
    fn run_together<'a>(
        &'a mut self,
        others: &'a mut [Box<dyn Queued>],
        txn: &'a DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
    /// Whether the kept outcome is a success.
    fn succeeded(&self) -> bool;
}

/// The use case's type name without its module path, e.g. `AssignPhoneNumber`.
fn use_case_name<M>() -> &'static str {
    let name = std::any::type_name::<M>();
    name.rsplit("::").next().unwrap_or(name)
}

struct Submission<M: Mutation> {
    mutation: M,
    outcome: Option<Result<M::Output>>,
    attempts: u32,
    reply: oneshot::Sender<Result<M::Output>>,
    span: Span,
}

impl<M: Mutation> Queued for Submission<M> {
    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let outcome = self.mutation.run(txn).instrument(self.span.clone()).await;
            let ok = outcome.is_ok();
            self.keep(Some(outcome));
            ok
        })
    }

    fn should_retry(&self) -> bool {
        self.attempts < MAX_ATTEMPTS
            && matches!(
                self.outcome,
                Some(Err(Error::Domain(DomainError::Aborted(_))))
            )
    }

    fn appends_changes(&self) -> bool {
        M::APPENDS_CHANGES
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn answer(self: Box<Self>) {
        let outcome = self.outcome.unwrap_or_else(|| {
            Err(Error::Internal(
                "a mutation was answered before it ran".into(),
            ))
        });
        // The caller may have gone away; the mutation's effect stands either way.
        let _ = self.reply.send(outcome);
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
    }

    fn span(&self) -> &Span {
        &self.span
    }

    fn into_awaiting(self: Box<Self>) -> Box<dyn Awaiting> {
        self
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn joins(&self, other: &dyn Queued) -> bool {
        other
            .as_any()
            .downcast_ref::<Self>()
            .is_some_and(|other| self.mutation.joins(&other.mutation))
    }

    fn run_together<'a>(
        &'a mut self,
        others: &'a mut [Box<dyn Queued>],
        txn: &'a DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let mut all = vec![&self.mutation];
            for other in others.iter() {
                let other = other.as_any().downcast_ref::<Self>().ok_or_else(|| {
                    Error::Internal("mutations of different kinds were joined".into())
                })?;
                all.push(&other.mutation);
            }
            let outcomes = M::run_together(all, txn)
                .instrument(self.span.clone())
                .await?;
            if outcomes.len() != others.len() + 1 {
                return Err(Error::Internal(
                    "a joined run answered another number of outcomes".into(),
                ));
            }
            let mut outcomes = outcomes.into_iter();
            self.keep(outcomes.next());
            for (other, outcome) in others.iter_mut().zip(outcomes) {
                if let Some(other) = other.as_any_mut().downcast_mut::<Self>() {
                    other.keep(Some(outcome));
                }
            }
            Ok(())
        })
    }

    fn succeeded(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }
}

impl<M: Mutation> Submission<M> {
    fn keep(&mut self, outcome: Option<Result<M::Output>>) {
        self.attempts += 1;
        let ok = matches!(outcome, Some(Ok(_)));
        self.span.record("outcome", if ok { "ok" } else { "error" });
        self.outcome = outcome;
    }
}

impl<M: Mutation> Awaiting for Submission<M> {
    fn visit_sequences(&mut self, visit: &mut dyn FnMut(&mut u64)) {
        if let Some(Ok(output)) = &mut self.outcome {
            M::visit_sequences(output, visit);
        }
    }

    fn answer(self: Box<Self>) {
        Queued::answer(self);
    }

    fn fail(self: Box<Self>, error: Error) {
        Queued::fail(self, error);
    }
}

struct WriterTask {
    db: DatabaseConnection,
    incoming: mpsc::Receiver<Box<dyn Queued>>,
    max_batch: usize,
    gather: Duration,
    committed: Arc<Notify>,
    /// PostgreSQL: numbers the events of each committed batch, then answers its callers.
    sequencer: Option<Sequencer>,
    stats: Arc<WriteStats>,
    /// Mutations that lost a race in the last batch, run first in the next.
    carried: Vec<Box<dyn Queued>>,
}

impl WriterTask {
    async fn run(mut self, stop: CancellationToken) {
        loop {
            let mut batch = std::mem::take(&mut self.carried);
            if batch.is_empty() {
                tokio::select! {
                    biased;
                    next = self.incoming.recv() => match next {
                        Some(first) => batch.push(first),
                        None => break,
                    },
                    _ = stop.cancelled() => break,
                }
                if !self.gather.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(self.gather) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            while batch.len() < self.max_batch {
                match self.incoming.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.run_batch(batch).await;
        }
        // Closing: refuse new mutations, finish those already queued.
        self.incoming.close();
        loop {
            let mut batch = std::mem::take(&mut self.carried);
            while batch.len() < self.max_batch {
                match self.incoming.recv().await {
                    Some(next) => batch.push(next),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.run_batch(batch).await;
        }
        if let Some(sequencer) = self.sequencer.take() {
            sequencer.close().await;
        }
        tracing::debug!("the database writer stopped");
    }

    async fn run_batch(&mut self, batch: Vec<Box<dyn Queued>>) {
        let size = batch.len();
        let txn = match self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        {
            Ok(txn) => txn,
            Err(e) => {
                tracing::warn!(error = %e, size, "cannot begin a write transaction");
                fail_all(batch, &e);
                self.stats.record(size, size, false);
                return;
            }
        };
        let mut succeeded: Vec<Box<dyn Queued>> = Vec::with_capacity(size);
        let mut failed = 0;
        // A request given up before its turn is not run, as a dropped transaction was never
        // committed.
        let (runnable, abandoned): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|mutation| !mutation.abandoned());
        failed += abandoned.len();
        let mut pending: VecDeque<Group> = joined(runnable).into();
        let mut broken: Option<DbErr> = None;
        while let Some(group) = pending.pop_front() {
            let result = match group {
                Group::One(mutation) => {
                    self.run_one(&txn, mutation, &mut succeeded, &mut failed)
                        .await
                }
                Group::Joined(members) => match self.run_joined(&txn, members).await {
                    Ok(Joined::Ran(outcomes)) => {
                        for mutation in outcomes {
                            if mutation.succeeded() {
                                succeeded.push(mutation);
                            } else {
                                failed += 1;
                                mutation.answer();
                            }
                        }
                        Ok(())
                    }
                    // Each on its own, in a savepoint of its own: one failure stays its own.
                    Ok(Joined::Failed(members)) => {
                        for mutation in members.into_iter().rev() {
                            pending.push_front(Group::One(mutation));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                broken = Some(e);
                break;
            }
        }
        if let Some(e) = broken {
            // The transaction itself is unusable: nothing of this batch commits.
            tracing::warn!(error = %e, size, "a write transaction broke; rolling back the batch");
            let _ = txn.rollback().await;
            fail_all(succeeded, &e);
            for group in pending {
                match group {
                    Group::One(mutation) => mutation.fail(copy_err(&e)),
                    Group::Joined(members) => fail_all(members, &e),
                }
            }
            self.stats.record(size, size, false);
            return;
        }
        if succeeded.is_empty() {
            // Nothing to keep (a rollback costs no sync).
            let _ = txn.rollback().await;
            self.stats.record(size, failed, false);
            return;
        }
        // One commit for many use cases: a child of the first, linked to the others.
        let commit_span = tracing::info_span!(
            parent: succeeded[0].span(),
            "store.commit",
            batch_size = size,
            failed,
        );
        for mutation in &succeeded[1..] {
            commit_span.follows_from(mutation.span());
        }
        match txn.commit().instrument(commit_span).await {
            Ok(()) => {
                self.stats.record(size, failed, true);
                tracing::trace!(size, failed, "write batch committed");
                let appended = succeeded.iter().any(|m| m.appends_changes());
                match &self.sequencer {
                    Some(sequencer) if appended => sequencer
                        .hand_over(succeeded.into_iter().map(|m| m.into_awaiting()).collect()),
                    _ => {
                        if appended {
                            self.committed.notify_one();
                        }
                        for mutation in succeeded {
                            mutation.answer();
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, size, "a write batch failed to commit");
                self.stats.record(size, size, false);
                fail_all(succeeded, &e);
            }
        }
    }
}

impl WriterTask {
    /// Runs `mutation` in a savepoint of its own: kept in `succeeded`, or answered with its
    /// failure (or carried to the next batch after a lost race). `Err` when the transaction
    /// broke; the mutation has been answered.
    async fn run_one(
        &mut self,
        txn: &DatabaseTransaction,
        mut mutation: Box<dyn Queued>,
        succeeded: &mut Vec<Box<dyn Queued>>,
        failed: &mut usize,
    ) -> std::result::Result<(), DbErr> {
        let savepoint = match txn.begin().await {
            Ok(savepoint) => savepoint,
            Err(e) => {
                mutation.fail(copy_err(&e));
                return Err(e);
            }
        };
        // Given up while it ran: undone, as if its transaction had been dropped.
        if mutation.run(&savepoint).await && !mutation.abandoned() {
            return match savepoint.commit().await {
                Ok(()) => {
                    succeeded.push(mutation);
                    Ok(())
                }
                Err(e) => {
                    mutation.fail(copy_err(&e));
                    Err(e)
                }
            };
        }
        *failed += 1;
        if let Err(e) = savepoint.rollback().await {
            mutation.answer();
            return Err(e);
        }
        if mutation.should_retry() {
            self.carried.push(mutation);
        } else {
            // A failed mutation changed nothing: its answer need not wait for the commit.
            mutation.answer();
        }
        Ok(())
    }

    /// Runs `members` (single requests of one set use case) as one run of it, in one
    /// savepoint. `Err` when the transaction broke; the members have been answered.
    async fn run_joined(
        &mut self,
        txn: &DatabaseTransaction,
        mut members: Vec<Box<dyn Queued>>,
    ) -> std::result::Result<Joined, DbErr> {
        let savepoint = match txn.begin().await {
            Ok(savepoint) => savepoint,
            Err(e) => {
                fail_all(members, &e);
                return Err(e);
            }
        };
        let (first, others) = members
            .split_first_mut()
            .expect("a joined group is never empty");
        let ran = first.run_together(others, &savepoint).await;
        let outcome = match ran {
            Ok(()) => {
                self.stats.joined_runs.fetch_add(1, Ordering::Relaxed);
                savepoint.commit().await.map(|()| Joined::Ran(members))
            }
            Err(error) => {
                tracing::debug!(%error, size = members.len(), "a joined run failed; running its members one by one");
                savepoint.rollback().await.map(|()| Joined::Failed(members))
            }
        };
        outcome.inspect_err(|e| tracing::warn!(error = %e, "a joined run broke the transaction"))
    }
}

/// What the writer runs at once: one mutation in its own savepoint, or single requests of one
/// set use case joined into one run of it (see [`Mutation::joins`]).
enum Group {
    One(Box<dyn Queued>),
    Joined(Vec<Box<dyn Queued>>),
}

/// How a joined run went (the transaction still usable).
enum Joined {
    /// Each member keeps its own outcome.
    Ran(Vec<Box<dyn Queued>>),
    /// The run as a whole failed and was rolled back: the members are to run one by one.
    Failed(Vec<Box<dyn Queued>>),
}

/// The batch in groups: each mutation joins the first group whose first member it can run
/// with, so that a group keeps its members' order. Mutations of a batch were all waiting at
/// once, so any order among them is one they could have run in; joined ones in one set run
/// are decided in their order, one against the state the earlier ones left.
fn joined(batch: Vec<Box<dyn Queued>>) -> Vec<Group> {
    let mut groups: Vec<Vec<Box<dyn Queued>>> = Vec::new();
    for mutation in batch {
        match groups
            .iter_mut()
            .find(|group| group[0].joins(mutation.as_ref()))
        {
            Some(group) => group.push(mutation),
            None => groups.push(vec![mutation]),
        }
    }
    groups
        .into_iter()
        .map(|mut group| {
            if group.len() == 1 {
                Group::One(group.remove(0))
            } else {
                Group::Joined(group)
            }
        })
        .collect()
}

fn fail_all(mutations: Vec<Box<dyn Queued>>, error: &DbErr) {
    for mutation in mutations {
        mutation.fail(copy_err(error));
    }
}

/// `DbErr` is not `Clone`: every caller of a failed batch gets an error of the same kind (a
/// conflict stays a conflict, ABORTED; the rest stay database errors).
fn copy_err(error: &DbErr) -> Error {
    if is_conflict(error) {
        return Error::conflict();
    }
    Error::DatabaseBatch {
        failure: classify_db_error(error),
        message: error.to_string(),
    }
}
