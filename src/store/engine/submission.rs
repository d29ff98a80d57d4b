//! A submitted mutation with its reply channel, type-erased for the writer's queue
//! ([`Queued`]), and what answering with its events' sequences needs of it once committed ([`Awaiting`]).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use sea_orm::DatabaseTransaction;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::mutation::Mutation;
use super::sequencer::Awaiting;
use crate::domain::DomainError;
use crate::error::{Error, Result};

/// Times a mutation that lost a race on PostgreSQL is run again before it is answered ABORTED.
const MAX_ATTEMPTS: u32 = 3;
/// A submitted mutation with its reply channel, type-erased for the queue.
pub(super) trait Queued: Send {
    /// Runs the mutation in `txn` and keeps the outcome; true when it succeeded.
    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    /// Whether the kept failure was a lost race worth running again.
    fn should_retry(&self) -> bool;
    /// Its transaction lost a race after it ran (the batch's numbering did): its kept outcome
    /// no longer stands, and becomes that conflict.
    fn lost_race(&mut self);
    fn appends_changes(&self) -> bool;
    /// Whether the caller has gone away (cancelled, or past its deadline).
    fn abandoned(&self) -> bool;
    /// Sends the kept outcome.
    fn answer(self: Box<Self>);
    /// Sends `error` instead of the kept outcome.
    fn fail(self: Box<Self>, error: Error);
    /// The use case's span, a child of the caller's.
    fn span(&self) -> &Span;
    /// For answering with the real sequences once the batch's events are numbered.
    fn into_awaiting(self: Box<Self>) -> Box<dyn Awaiting>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Whether `other` can run with this one ([`Mutation::joins`]).
    fn joins(&self, other: &dyn Queued) -> bool;
    /// Whether it may still join others (not after a joined run of it failed as a whole).
    fn joinable(&self) -> bool;
    /// From now on it runs on its own.
    fn stop_joining(&mut self);
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

pub(super) struct Submission<M: Mutation> {
    mutation: M,
    outcome: Option<Result<M::Output>>,
    attempts: u32,
    joinable: bool,
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

    fn lost_race(&mut self) {
        self.span.record("outcome", "error");
        self.outcome = Some(Err(Error::conflict()));
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
        self.joinable
            && other.joinable()
            && other
                .as_any()
                .downcast_ref::<Self>()
                .is_some_and(|other| self.mutation.joins(&other.mutation))
    }

    fn joinable(&self) -> bool {
        self.joinable
    }

    fn stop_joining(&mut self) {
        self.joinable = false;
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
    pub(super) fn new(mutation: M, reply: oneshot::Sender<Result<M::Output>>, span: Span) -> Self {
        Self {
            mutation,
            outcome: None,
            attempts: 0,
            joinable: true,
            reply,
            span,
        }
    }

    /// The use case's type name without its module path, e.g. `AssignNumbers`.
    pub(super) fn use_case_name() -> &'static str {
        let name = std::any::type_name::<M>();
        name.rsplit("::").next().unwrap_or(name)
    }

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
