//! The webhook sink: each wanted event is POSTed as JSON to the webhook's URL with the Standard
//! Webhooks headers. The configuration (URL, filter, secrets) is re-read before every batch and
//! every retry, so changes through the API apply to the next attempt.

use std::{sync::Arc, time::Duration};

use chrono::Utc;

use super::http_client::HttpClient;
use super::payload::webhook_body;
use super::signature::signature_header;
use super::worker::{Outcome, Sink};
use crate::domain::change::ChangeEvent;
use crate::domain::ids::{AccountId, WebhookId};
use crate::domain::webhook::{EventFilter, TargetPolicy, WebhookUrl, parse_webhook_url};
use crate::error::Result;
use crate::store::Store;
use crate::store::{WebhookConfig, WebhookSecrets};

pub struct WebhookSink {
    id: WebhookId,
    client: Arc<HttpClient>,
    policy: TargetPolicy,
    pause_after: Duration,
    config: Option<Config>,
    /// The change log's identity, sent with every event.
    log_id: String,
}

struct Config {
    /// The URL, or why it may not be called (e.g. the server's policy became stricter).
    target: Result<WebhookUrl, String>,
    filter: EventFilter,
    /// The current secret, then the previous one while it is still valid; or why they cannot
    /// be opened (e.g. the secrets key file lacks their key), a failure of every attempt.
    secrets: Result<Vec<String>, String>,
}

impl WebhookSink {
    pub fn new(
        id: WebhookId,
        client: Arc<HttpClient>,
        policy: TargetPolicy,
        pause_after: Duration,
    ) -> Self {
        Self {
            id,
            client,
            policy,
            pause_after,
            config: None,
            log_id: String::new(),
        }
    }

    fn configure(&self, webhook: WebhookConfig, signing: Result<WebhookSecrets, String>) -> Config {
        let secrets = signing.map(|signing| {
            let mut secrets = vec![signing.current];
            if let Some((previous, expiry)) = signing.previous
                && expiry > Utc::now()
            {
                secrets.push(previous);
            }
            secrets
        });
        Config {
            target: parse_webhook_url("url", &webhook.url, self.policy).map_err(|e| e.to_string()),
            filter: webhook.filter,
            secrets,
        }
    }
}

impl Sink for WebhookSink {
    async fn refresh(&mut self, store: &Store) -> Result<bool> {
        match store.webhooks().find(&self.id).await? {
            Some((webhook, secrets)) => {
                self.config = Some(self.configure(webhook, secrets));
                if self.log_id.is_empty() {
                    self.log_id = super::source::log_state(store).await?.log_id;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn account_filter(&self) -> Option<AccountId> {
        self.config.as_ref()?.filter.account_id.clone()
    }

    fn wants(&self, event: &ChangeEvent) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.filter.matches(&event.account_id, &event.kind))
    }

    async fn deliver(&mut self, event: &ChangeEvent) -> Result<Outcome, String> {
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| "the webhook's configuration is not loaded".to_owned())?;
        let target = config.target.as_ref().map_err(Clone::clone)?;
        let timestamp = Utc::now().timestamp();
        let body = webhook_body(event, &self.log_id);
        let secrets: Vec<&str> = config
            .secrets
            .as_ref()
            .map_err(Clone::clone)?
            .iter()
            .map(String::as_str)
            .collect();
        let signature = signature_header(&secrets, &event.event_id, timestamp, &body);
        let headers = [
            ("webhook-id", event.event_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        self.client.post(target, &headers, body).await?;
        Ok(Outcome::Delivered)
    }

    fn pause_after(&self) -> Option<Duration> {
        Some(self.pause_after)
    }
}
