//! The writer task: group commit. It takes the first mutation waiting, then whatever else is
//! already queued (up to a bound), opens ONE transaction (IMMEDIATE on SQLite), runs each
//! mutation in a savepoint of its own (or joined ones in one run of their set use case; a batch
//! of one mutation runs in the transaction itself), commits once and then answers every caller.
//! On PostgreSQL it numbers the batch's staged change events just before the commit
//! ([`super::sequencer`]), and answers with their sequences.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::batch_events::{self, ReservedIds};
use super::sequencer::{Staged, Sweeper, answer_numbered, number_in, record_written};
use super::submission::Queued;
use super::write_stats::WriteStats;
use crate::error::{Error, classify_db_error, is_conflict};

pub(super) struct WriterTask {
    db: DatabaseConnection,
    incoming: mpsc::Receiver<Box<dyn Queued>>,
    max_batch: usize,
    gather: Duration,
    committed: Arc<Notify>,
    /// PostgreSQL only (where a batch numbers the events it staged before committing): the task
    /// that numbers events left staged, closed with the writer.
    sweeper: Option<Sweeper>,
    stats: Arc<WriteStats>,
    /// Mutations that lost a race in the last batch, run first in the next.
    carried: Vec<Box<dyn Queued>>,
    /// PostgreSQL: staged ids for the events of batches to come.
    reserved: ReservedIds,
}

impl WriterTask {
    pub(super) fn new(
        db: DatabaseConnection,
        incoming: mpsc::Receiver<Box<dyn Queued>>,
        max_batch: usize,
        gather: Duration,
        committed: Arc<Notify>,
        sweeper: Option<Sweeper>,
        stats: Arc<WriteStats>,
    ) -> Self {
        Self {
            db,
            incoming,
            max_batch,
            gather,
            committed,
            sweeper,
            stats,
            carried: Vec::new(),
            reserved: ReservedIds::default(),
        }
    }

    pub(super) async fn run(mut self, stop: CancellationToken) {
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
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.close().await;
        }
        tracing::debug!("the database writer stopped");
    }

    /// Runs `batch`, keeping the change events it appends for its numbering.
    async fn run_batch(&mut self, batch: Vec<Box<dyn Queued>>) {
        let reserved = self.reserved.clone();
        batch_events::collecting(reserved, self.run_in_transaction(batch)).await;
    }

    async fn run_in_transaction(&mut self, batch: Vec<Box<dyn Queued>>) {
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
        // A batch of one mutation (or of one joined run) needs no savepoint: its failure is the
        // whole batch's.
        let alone = pending.len() == 1;
        while let Some(group) = pending.pop_front() {
            let result = match group {
                Group::One(mutation) if alone => {
                    self.run_alone(&txn, mutation, &mut succeeded, &mut failed)
                        .await;
                    Ok(())
                }
                Group::One(mutation) => {
                    self.run_one(&txn, mutation, &mut succeeded, &mut failed)
                        .await
                }
                Group::Joined(members) => match self.run_joined(&txn, members, alone).await {
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
                    // Nothing to go back to but the transaction's start: each runs on its own
                    // in the next batch.
                    Ok(Joined::Failed(members)) if alone => {
                        let _ = txn.rollback().await;
                        self.stats.record(size, failed, false);
                        for mut mutation in members {
                            mutation.stop_joining();
                            self.carried.push(mutation);
                        }
                        return;
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
        let appended = succeeded.iter().any(|m| m.appends_changes());
        // PostgreSQL: the staged events are numbered by this transaction, as its last step.
        let numbered = match &self.sweeper {
            Some(_) if appended => match number_in(&txn, Staged::ByBatch)
                .instrument(commit_span.clone())
                .await
            {
                Ok(numbered) => Some(numbered),
                // A deadlock with another replica's numbering (possible only while a replica of
                // an earlier version leaves events staged): the batch runs again.
                Err(e) if is_conflict(&e) => {
                    tracing::info!(error = %e, size, "a batch's numbering lost a race; running it again");
                    let _ = txn.rollback().await;
                    self.stats.record(size, size, false);
                    for mut mutation in succeeded {
                        mutation.lost_race();
                        self.retry_or_answer(mutation);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, size, "cannot number a batch's change events; rolling back the batch");
                    let _ = txn.rollback().await;
                    self.stats.record(size, size, false);
                    fail_all(succeeded, &e);
                    return;
                }
            },
            _ => None,
        };
        match txn.commit().instrument(commit_span).await {
            Ok(()) => {
                self.stats.record(size, failed, true);
                tracing::trace!(size, failed, "write batch committed");
                if appended {
                    self.committed.notify_one();
                }
                match numbered {
                    Some(numbered) => {
                        record_written(&numbered);
                        let waiting = succeeded.into_iter().map(|m| m.into_awaiting()).collect();
                        answer_numbered(&self.db, waiting, numbered.into_iter().collect()).await;
                    }
                    None => {
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
    /// A mutation whose run did not stand: carried to the next batch after a lost race (a few
    /// times at most), else answered with its failure now. A failed mutation changed nothing,
    /// so its answer need not wait for the commit.
    fn retry_or_answer(&mut self, mutation: Box<dyn Queued>) {
        if mutation.should_retry() {
            self.carried.push(mutation);
        } else {
            mutation.answer();
        }
    }

    /// Runs `mutation`, the batch's only one, straight in `txn`: kept in `succeeded`, or
    /// answered with its failure (or carried to the next batch after a lost race), the
    /// transaction then being rolled back with nothing kept.
    async fn run_alone(
        &mut self,
        txn: &DatabaseTransaction,
        mut mutation: Box<dyn Queued>,
        succeeded: &mut Vec<Box<dyn Queued>>,
        failed: &mut usize,
    ) {
        // Given up while it ran: undone, as if its transaction had been dropped.
        if mutation.run(txn).await && !mutation.abandoned() {
            succeeded.push(mutation);
            return;
        }
        *failed += 1;
        self.retry_or_answer(mutation);
    }

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
        let appended = batch_events::mark();
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
        batch_events::forget_since(appended);
        if let Err(e) = savepoint.rollback().await {
            mutation.answer();
            return Err(e);
        }
        self.retry_or_answer(mutation);
        Ok(())
    }

    /// Runs `members` (single requests of one set use case) as one run of it, in one
    /// savepoint, or in `txn` itself when they are its batch's `alone` group (a failed run then
    /// leaves the transaction to be rolled back). `Err` when the transaction broke; the members
    /// have been answered.
    async fn run_joined(
        &mut self,
        txn: &DatabaseTransaction,
        mut members: Vec<Box<dyn Queued>>,
        alone: bool,
    ) -> std::result::Result<Joined, DbErr> {
        let savepoint = if alone {
            None
        } else {
            match txn.begin().await {
                Ok(savepoint) => Some(savepoint),
                Err(e) => {
                    fail_all(members, &e);
                    return Err(e);
                }
            }
        };
        let appended = batch_events::mark();
        let (first, others) = members
            .split_first_mut()
            .expect("a joined group is never empty");
        let ran = first
            .run_together(others, savepoint.as_ref().unwrap_or(txn))
            .await;
        let (ended, outcome) = match ran {
            Ok(()) => {
                self.stats.joined_runs.fetch_add(1, Ordering::Relaxed);
                let ended = match savepoint {
                    Some(savepoint) => savepoint.commit().await,
                    None => Ok(()),
                };
                (ended, Joined::Ran(members))
            }
            Err(error) => {
                tracing::debug!(%error, size = members.len(), "a joined run failed; running its members one by one");
                batch_events::forget_since(appended);
                let ended = match savepoint {
                    Some(savepoint) => savepoint.rollback().await,
                    None => Ok(()),
                };
                (ended, Joined::Failed(members))
            }
        };
        ended
            .map(|()| outcome)
            .inspect_err(|e| tracing::warn!(error = %e, "a joined run broke the transaction"))
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
