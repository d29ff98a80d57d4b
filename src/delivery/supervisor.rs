//! One task per replica that hands deliveries out: it looks for deliveries that are not paused and
//! whose lease is free (new webhooks, resumed ones, ones whose replica died), takes their lease,
//! and starts a worker for each. It looks when the store signals a new or resumed webhook (here,
//! or on PostgreSQL on another replica) and when a worker ends, and else every scan interval, for
//! leases that expired. On shutdown it waits for its workers to release their leases.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::time::Instant;

use tokio::task::JoinHandle;

use super::http_client::HttpClient;
use super::lease::Lease;
use super::mail::MailSink;
use super::webhook::WebhookSink;
use super::worker::{self, WorkerContext};
use crate::domain::ids::WebhookId;
use crate::domain::webhook::TargetPolicy;
use crate::error::Result;
use crate::store::MAIL_SINK;
use crate::tasks::BackgroundTasks;

/// The least time between two looks, so that a burst of signals costs one scan.
const MIN_SCAN_GAP: Duration = Duration::from_millis(100);

pub(super) struct Supervisor {
    pub context: WorkerContext,
    /// Where the workers run, so that shutdown waits for them.
    pub tasks: BackgroundTasks,
    pub owner: String,
    pub http: Arc<HttpClient>,
    pub policy: TargetPolicy,
    /// Taken by the worker that delivers mail, if mail is configured.
    pub mail: Option<MailSink>,
    pub workers: HashMap<String, JoinHandle<Option<MailSink>>>,
}

impl Supervisor {
    pub async fn run(mut self) {
        let scan_every = self.context.settings.scan_interval();
        let claimable = self.context.store.signals().deliveries.clone();
        loop {
            let scanned = Instant::now();
            if let Err(e) = self.scan().await {
                tracing::warn!(error = %e, "looking for deliveries to take failed; retrying");
            }
            tokio::select! {
                _ = self.context.shutdown.cancelled() => break,
                _ = claimable.notified() => tokio::time::sleep_until(scanned + MIN_SCAN_GAP).await,
                _ = tokio::time::sleep(scan_every) => {}
            }
        }
        let grace = self.context.settings.attempt_timeout + Duration::from_secs(2);
        for (_, worker) in self.workers.drain() {
            let _ = tokio::time::timeout(grace, worker).await;
        }
    }

    async fn scan(&mut self) -> Result<()> {
        let finished: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| w.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            if let Some(worker) = self.workers.remove(&key)
                && let Ok(Some(mail)) = worker.await
            {
                self.mail = Some(mail);
            }
        }
        let store = self.context.store.clone();
        for sink in store.deliveries().claimable(&self.owner).await? {
            if self.workers.contains_key(&sink) || self.context.shutdown.is_cancelled() {
                continue;
            }
            let is_mail = sink == MAIL_SINK;
            if is_mail && self.mail.is_none() {
                continue;
            }
            let Some(webhook_id) = sink
                .strip_prefix("webhook:")
                .map(|id| WebhookId::from_stored(id.to_owned()))
                .or(is_mail.then(|| WebhookId::from_stored(String::new())))
            else {
                continue;
            };
            let Some(lease) =
                Lease::acquire(&store, &sink, &self.owner, self.context.settings.lease_ttl).await?
            else {
                continue;
            };
            let context = self.context.clone();
            // A worker that ends (paused, deleted, lease lost) wakes the supervisor: a webhook
            // resumed while its worker was still winding down is then taken at once.
            let ended = self.context.store.signals().deliveries.clone();
            let worker = if let (true, Some(mail)) = (is_mail, self.mail.take()) {
                self.tasks.spawn(async move {
                    let mut mail = mail;
                    worker::run(&mut mail, lease, context).await;
                    ended.notify_one();
                    Some(mail)
                })
            } else {
                let sink = WebhookSink::new(
                    webhook_id,
                    self.http.clone(),
                    self.policy,
                    self.context.settings.pause_after,
                );
                self.tasks.spawn(async move {
                    let mut sink = sink;
                    worker::run(&mut sink, lease, context).await;
                    ended.notify_one();
                    None
                })
            };
            self.workers.insert(sink, worker);
        }
        Ok(())
    }
}
