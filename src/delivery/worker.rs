//! The delivery loop shared by every sink: read the events after the cursor, hand each wanted one
//! to the sink until it is delivered (retrying with backoff), move the cursor, and wait for new
//! commits. It runs only while this replica holds the delivery's lease, and stops when the lease
//! is lost, the delivery is paused or deleted, or the server shuts down.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::monitor::Monitor;
use super::source;
use super::{DeliverySettings, lease::Lease};
use crate::domain::change::ChangeEvent;
use crate::domain::ids::AccountId;
use crate::error::Result;
use crate::store::Store;

/// Events read from the log at a time.
const BATCH: u64 = 200;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Given up for good (the recipient can never take it); the cursor moves past it.
    Skipped(String),
}

/// One destination of events.
pub trait Sink: Send + 'static {
    /// Reloads the configuration; `false` when the destination no longer exists.
    fn refresh(&mut self, store: &Store) -> impl Future<Output = Result<bool>> + Send;
    /// Events of other accounts are not even read.
    fn account_filter(&self) -> Option<AccountId>;
    fn wants(&self, event: &ChangeEvent) -> bool;
    /// One attempt; `Err` is retried with backoff.
    fn deliver(
        &mut self,
        event: &ChangeEvent,
    ) -> impl Future<Output = Result<Outcome, String>> + Send;
    /// How long deliveries may fail continuously before the delivery is paused (`None`: never).
    fn pause_after(&self) -> Option<Duration>;
}

/// What a worker shares with the rest of the process.
#[derive(Clone)]
pub struct WorkerContext {
    pub store: Store,
    pub head: watch::Receiver<u64>,
    pub settings: Arc<DeliverySettings>,
    pub monitor: Arc<Monitor>,
    pub shutdown: CancellationToken,
}

/// Runs `sink` while `lease` is held, then releases the lease.
pub async fn run<S: Sink>(sink: &mut S, mut lease: Lease, mut context: WorkerContext) {
    let key = lease.sink().to_owned();
    tracing::info!(delivery = %key, "delivery started on this replica");
    match drive(sink, &mut lease, &mut context).await {
        Ok(why) => tracing::info!(delivery = %key, "delivery stopped on this replica: {why}"),
        Err(e) => {
            tracing::warn!(delivery = %key, error = %e, "delivery stopped on a database error; it will be taken up again")
        }
    }
    context.monitor.forget(&key);
    if let Err(e) = context
        .store
        .deliveries()
        .release_lease(&key, lease.owner())
        .await
    {
        tracing::warn!(delivery = %key, error = %e, "could not release the delivery lease; it expires by itself");
    }
}

async fn drive<S: Sink>(
    sink: &mut S,
    lease: &mut Lease,
    context: &mut WorkerContext,
) -> Result<&'static str> {
    let store = context.store.clone();
    let settings = context.settings.clone();
    let key = lease.sink().to_owned();
    // Time an attempt may take, plus a margin for writing its outcome, must remain on the lease.
    let budget = settings.attempt_timeout + Duration::from_secs(1);
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max);
    loop {
        if context.shutdown.is_cancelled() {
            return Ok("shutting down");
        }
        if !lease.keep(&store, budget).await? {
            return Ok("lease lost or delivery paused");
        }
        let Some(state) = store.deliveries().state(&key).await? else {
            return Ok("deleted");
        };
        if state.paused {
            return Ok("paused");
        }
        if !sink.refresh(&store).await? {
            return Ok("deleted");
        }
        let mut cursor = state.cursor;
        let log = source::log_state(&store).await?;
        if log.purged_through > cursor {
            let message = format!(
                "events {} to {} were removed by retention before they could be delivered",
                cursor + 1,
                log.purged_through
            );
            tracing::warn!(delivery = %key, "{message}");
            if !store
                .deliveries()
                .skip_event(&key, lease.owner(), log.purged_through, &message)
                .await?
            {
                return Ok("lease lost");
            }
            cursor = log.purged_through;
        }
        context.monitor.progress(&key, cursor, log.last_sequence);
        // Mark the head seen before reading, so that a commit after the read wakes us.
        context.head.borrow_and_update();
        let events =
            source::events_after(&store, cursor, sink.account_filter().as_ref(), BATCH).await?;
        if events.is_empty() {
            tokio::select! {
                _ = context.shutdown.cancelled() => return Ok("shutting down"),
                changed = context.head.changed() => {
                    if changed.is_err() {
                        return Ok("the change hub stopped");
                    }
                }
                _ = tokio::time::sleep_until(lease.renew_at().into()) => {}
            }
            continue;
        }
        let mut scanned_past = None;
        for event in &events {
            let sequence = event.sequence;
            if !sink.wants(event) {
                scanned_past = Some(sequence);
                continue;
            }
            scanned_past = None;
            match deliver_one(sink, lease, context, &mut backoff, event, budget).await? {
                Step::Next => {}
                Step::Stop(why) => return Ok(why),
            }
        }
        if let Some(sequence) = scanned_past
            && !store
                .deliveries()
                .advance(&key, lease.owner(), sequence, None)
                .await?
        {
            return Ok("lease lost");
        }
    }
}

enum Step {
    Next,
    Stop(&'static str),
}

/// Delivers one event, retrying until it is delivered, given up, or the worker must stop.
async fn deliver_one<S: Sink>(
    sink: &mut S,
    lease: &mut Lease,
    context: &WorkerContext,
    backoff: &mut Backoff,
    event: &ChangeEvent,
    budget: Duration,
) -> Result<Step> {
    let store = &context.store;
    let key = lease.sink().to_owned();
    let sequence = event.sequence;
    loop {
        if !lease.keep(store, budget).await? {
            return Ok(Step::Stop("lease lost or delivery paused"));
        }
        let started = Instant::now();
        let attempt = tokio::time::timeout(context.settings.attempt_timeout, sink.deliver(event))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}",
                    humantime::format_duration(context.settings.attempt_timeout)
                ))
            });
        match attempt {
            Ok(Outcome::Delivered) => {
                backoff.reset();
                if !store
                    .deliveries()
                    .advance(&key, lease.owner(), sequence, Some(sequence))
                    .await?
                {
                    return Ok(Step::Stop("lease lost"));
                }
                context.monitor.delivered(&key, event, started.elapsed());
                return Ok(Step::Next);
            }
            Ok(Outcome::Skipped(why)) => {
                tracing::warn!(delivery = %key, sequence, event_id = %event.event_id, "event not delivered: {why}");
                if !store
                    .deliveries()
                    .skip_event(&key, lease.owner(), sequence, &why)
                    .await?
                {
                    return Ok(Step::Stop("lease lost"));
                }
                return Ok(Step::Next);
            }
            Err(error) => {
                let wait = backoff.next_wait();
                tracing::info!(delivery = %key, sequence, retry_in = ?wait, "delivery attempt failed: {error}");
                match store
                    .deliveries()
                    .record_failure(&key, lease.owner(), &error, sink.pause_after())
                    .await?
                {
                    None => return Ok(Step::Stop("lease lost")),
                    Some(true) => {
                        tracing::warn!(delivery = %key, sequence, "delivery paused after failing continuously: {error}");
                        return Ok(Step::Stop("paused after failing continuously"));
                    }
                    Some(false) => {}
                }
                context.monitor.failed(&key);
                tokio::select! {
                    _ = context.shutdown.cancelled() => return Ok(Step::Stop("shutting down")),
                    _ = tokio::time::sleep(wait) => {}
                }
                // The webhook may have been paused, deleted or changed in the meantime.
                match store.deliveries().state(&key).await? {
                    None => return Ok(Step::Stop("deleted")),
                    Some(state) if state.paused => return Ok(Step::Stop("paused")),
                    Some(_) => {}
                }
                if !sink.refresh(store).await? {
                    return Ok(Step::Stop("deleted"));
                }
                if !sink.wants(event) {
                    return Ok(Step::Next);
                }
            }
        }
    }
}
