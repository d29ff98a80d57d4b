//! A write use case as the writer runs it: the [`Mutation`] trait.

use std::future::Future;
use std::pin::Pin;

use sea_orm::DatabaseTransaction;

use crate::error::{Error, Result};

/// A boxed future borrowing the transaction it runs in.
pub(crate) type TxnFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One write use case with its validated input: run by the writer inside a savepoint.
pub(crate) trait Mutation: Send + Sync + 'static {
    type Output: Send + 'static;

    /// Whether the mutation may append change events (watchers are woken after the commit).
    const APPENDS_CHANGES: bool;

    /// Runs the use case in `txn`. It may run more than once (after losing a race on
    /// PostgreSQL), each time in a fresh savepoint (or transaction, when it is its batch's only
    /// mutation).
    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Self::Output>;

    /// Visits every change-event sequence in `output`: on PostgreSQL, those of events written
    /// by the mutation are provisional until the batch numbers them (`store::engine::sequencer`).
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
