//! Webhooks: their configuration with their delivery state, and how many matching events wait.
//! A webhook and its delivery row are created and deleted together, by mutations of the writer;
//! a new webhook starts after the last committed event.
//!
//! Signing secrets are sealed (`secrets_key`) before they are stored, bound to their webhook's
//! id, and opened only for a delivery: no read model carries them.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use tokio::sync::Notify;

use crate::domain::DomainError;
use crate::domain::ids::WebhookId;
use crate::domain::webhook::EventFilter;
use crate::error::{Error, Result};
use crate::secrets_key::{SecretsKeyring, is_sealed, open_stored};
use crate::store::db::deliveries::{announce, new_delivery, webhook_sink};
use crate::store::db::entities::enums::{self, kinds_to_db};
use crate::store::db::entities::{change_event, change_log, delivery, webhook};
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::views::{WebhookConfig, WebhookSecrets, WebhookView};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};

/// What to store for a new webhook.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub description: String,
    pub filter: EventFilter,
    pub secret: String,
}

/// Fields of a webhook to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub description: Option<String>,
    pub filter: Option<EventFilter>,
    /// `false` resumes delivery and clears the failure streak.
    pub paused: Option<bool>,
}

fn webhook_not_found(id: &WebhookId) -> DomainError {
    DomainError::NotFound {
        resource: "webhook",
        name: id.to_string(),
    }
}

/// How many stored secrets a [`Webhooks::reseal`] sealed anew, and how many it could not open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    pub sealed: u64,
    /// Sealed with a key the key file lacks: left as they are.
    pub unreadable: u64,
}

/// Webhooks: the store's surface for them.
pub struct Webhooks<'a> {
    engine: &'a Engine,
    /// Woken when a delivery may have become claimable, so that it starts at once.
    claimable: &'a Notify,
    secrets: Option<&'a SecretsKeyring>,
}

impl<'a> Webhooks<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        claimable: &'a Notify,
        secrets: Option<&'a SecretsKeyring>,
    ) -> Self {
        Self {
            engine,
            claimable,
            secrets,
        }
    }

    /// The keys to seal with; a server without them stores no new secret.
    fn sealing_keys(&self) -> Result<&'a SecretsKeyring> {
        self.secrets.ok_or_else(|| {
            DomainError::precondition(
                "SECRETS_KEY_MISSING",
                "webhook",
                "this server has no secrets key to seal webhook secrets with: start it with --secrets-key-file (docs/operations.md)",
            )
            .into()
        })
    }

    pub async fn create(&self, mut new: NewWebhook) -> Result<WebhookView> {
        let id = WebhookId::from_stored(crate::domain::account::new_id());
        new.secret = self.sealing_keys()?.seal(&new.secret, id.as_str());
        let created = self.engine.write(CreateWebhook { id, new }).await?;
        self.claimable.notify_one();
        Ok(created)
    }

    pub async fn get(&self, id: &WebhookId) -> Result<WebhookView> {
        let webhook = webhook::Entity::find_by_id(id.as_str())
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        self.with_delivery(webhook).await
    }

    /// The webhook's configuration and its opened secrets (or why they cannot be opened: a
    /// delivery failure, not a database error), for its delivery; `None` once deleted.
    pub async fn find(
        &self,
        id: &WebhookId,
    ) -> Result<Option<(WebhookConfig, Result<WebhookSecrets, String>)>> {
        let Some(row) = webhook::Entity::find_by_id(id.as_str())
            .one(self.engine.reader())
            .await?
        else {
            return Ok(None);
        };
        let open = |stored: &str| open_stored(self.secrets, stored, id.as_str());
        let secrets = open(&row.secret)
            .map(|current| WebhookSecrets {
                current,
                // One that cannot be opened (its key was lost) no longer signs; the current
                // one does.
                previous: match (&row.previous_secret, row.previous_secret_expire_time) {
                    (Some(previous), Some(expiry)) => open(previous)
                        .inspect_err(|error| {
                            tracing::warn!(webhook_id = %id, %error, "the previous secret is left out")
                        })
                        .ok()
                        .map(|previous| (previous, expiry)),
                    _ => None,
                },
            })
            .map_err(|error| format!("cannot sign: {error}"));
        Ok(Some((WebhookConfig::from(row), secrets)))
    }

    /// How many webhooks exist.
    pub async fn count(&self) -> Result<u64> {
        Ok(webhook::Entity::find().count(self.engine.reader()).await?)
    }

    /// Seals every stored secret with `keys`' first key, in one transaction: `all` for a
    /// rotation, else only those stored in the clear (by an older version).
    pub async fn reseal(
        &self,
        keys: std::sync::Arc<SecretsKeyring>,
        all: bool,
    ) -> Result<Resealed> {
        self.engine.write(ResealSecrets { keys, all }).await
    }

    async fn with_delivery(&self, webhook: webhook::Model) -> Result<WebhookView> {
        let delivery = delivery::Entity::find_by_id(webhook_sink(&webhook.id))
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| {
                Error::Internal(format!("webhook {} has no delivery row", webhook.id))
            })?;
        Ok(WebhookView::new(webhook, delivery))
    }

    /// Webhooks in creation order (their ids are time-ordered).
    pub async fn list(&self, page: &PageRequest) -> Result<Page<WebhookView>> {
        let mut query = webhook::Entity::find().order_by_asc(webhook::Column::Id);
        if let Some(after) = &page.after {
            query = query.filter(webhook::Column::Id.gt(after.as_str()));
        }
        let webhooks = query
            .limit(page.fetch_limit())
            .all(self.engine.reader())
            .await?;
        let sinks: Vec<String> = webhooks.iter().map(|w| webhook_sink(&w.id)).collect();
        let mut deliveries: std::collections::HashMap<String, delivery::Model> =
            delivery::Entity::find()
                .filter(delivery::Column::Sink.is_in(sinks))
                .all(self.engine.reader())
                .await?
                .into_iter()
                .map(|d| (d.sink.clone(), d))
                .collect();
        let mut views = Vec::with_capacity(webhooks.len());
        for webhook in webhooks {
            let delivery = deliveries
                .remove(&webhook_sink(&webhook.id))
                .ok_or_else(|| {
                    Error::Internal(format!("webhook {} has no delivery row", webhook.id))
                })?;
            views.push(WebhookView::new(webhook, delivery));
        }
        Ok(page.finish(views, |v| v.webhook.id.to_string()))
    }

    pub async fn update(&self, id: &WebhookId, update: WebhookUpdate) -> Result<WebhookView> {
        let resumes = update.paused == Some(false);
        let updated = self
            .engine
            .write(UpdateWebhook {
                id: id.clone(),
                update,
            })
            .await?;
        if resumes {
            self.claimable.notify_one();
        }
        Ok(updated)
    }

    pub async fn delete(&self, id: &WebhookId) -> Result<()> {
        self.engine.write(DeleteWebhook { id: id.clone() }).await
    }

    /// Replaces the secret; the old one keeps signing until `previous_expire_time`.
    pub async fn rotate_secret(
        &self,
        id: &WebhookId,
        secret: String,
        previous_expire_time: DateTime<Utc>,
    ) -> Result<WebhookView> {
        let secret = self.sealing_keys()?.seal(&secret, id.as_str());
        self.engine
            .write(RotateWebhookSecret {
                id: id.clone(),
                secret,
                previous_expire_time,
            })
            .await
    }

    /// How many events after `after` match `filter`.
    pub async fn count_matching_changes(&self, after: u64, filter: &EventFilter) -> Result<u64> {
        let mut query = change_event::Entity::find()
            .filter(change_event::Column::Sequence.gt(i64::try_from(after).unwrap_or(i64::MAX)));
        if let Some(account_id) = &filter.account_id {
            query = query.filter(change_event::Column::AccountId.eq(account_id.as_str()));
        }
        if !filter.kinds.is_empty() {
            query = query.filter(
                change_event::Column::Kind
                    .is_in(filter.kinds.iter().map(|k| enums::ChangeKind::from(*k))),
            );
        }
        Ok(query.count(self.engine.reader()).await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Use cases, each run by the writer inside a savepoint.
// ---------------------------------------------------------------------------------------------

/// The delivery row of webhook `id`, in `txn`.
async fn delivery_of(txn: &DatabaseTransaction, id: &WebhookId) -> Result<delivery::Model> {
    delivery::Entity::find_by_id(webhook_sink(id.as_str()))
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal(format!("webhook {id} has no delivery row")))
}

/// The webhook's row, locked until the transaction ends.
async fn lock_webhook(txn: &DatabaseTransaction, id: &WebhookId) -> Result<webhook::Model> {
    Ok(webhook::Entity::find_by_id(id.as_str())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| webhook_not_found(id))?)
}

struct CreateWebhook {
    id: WebhookId,
    /// With its secret sealed.
    new: NewWebhook,
}

impl Mutation for CreateWebhook {
    type Output = WebhookView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, WebhookView> {
        Box::pin(async move {
            let new = self.new.clone();
            // The log's end as this transaction sees it: nothing committed before the webhook
            // is delivered to it, nothing after is skipped.
            let start_after = change_log::Entity::find_by_id(1)
                .one(txn)
                .await?
                .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?
                .last_sequence
                .max(0) as u64;
            let now = crate::store::db::now();
            let webhook = webhook::ActiveModel {
                id: Set(self.id.to_string()),
                url: Set(new.url),
                description: Set(new.description),
                account_id: Set(new.filter.account_id.clone().map(String::from)),
                kinds: Set(kinds_to_db(&new.filter.kinds)),
                secret: Set(new.secret),
                previous_secret: Set(None),
                previous_secret_expire_time: Set(None),
                create_time: Set(now),
                update_time: Set(now),
            }
            .insert(txn)
            .await?;
            let delivery = new_delivery(&webhook_sink(&webhook.id), start_after)
                .insert(txn)
                .await?;
            announce(txn, &delivery.sink).await?;
            Ok(WebhookView::new(webhook, delivery))
        })
    }
}

struct UpdateWebhook {
    id: WebhookId,
    update: WebhookUpdate,
}

impl Mutation for UpdateWebhook {
    type Output = WebhookView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, WebhookView> {
        Box::pin(async move {
            let (id, update) = (&self.id, self.update.clone());
            let mut model: webhook::ActiveModel = lock_webhook(txn, id).await?.into();
            if let Some(url) = update.url {
                model.url = Set(url);
            }
            if let Some(description) = update.description {
                model.description = Set(description);
            }
            if let Some(filter) = update.filter {
                model.account_id = Set(filter.account_id.clone().map(String::from));
                model.kinds = Set(kinds_to_db(&filter.kinds));
            }
            model.update_time = Set(crate::store::db::now());
            let webhook = model.update(txn).await?;
            let state = delivery_of(txn, id).await?;
            let delivery = match update.paused {
                Some(paused) if paused != state.paused => {
                    let mut model: delivery::ActiveModel = state.into();
                    model.paused = Set(paused);
                    if !paused {
                        // Resuming starts a new streak: the pause timer counts from the next
                        // failure.
                        model.failing_since = Set(None);
                        announce(txn, &webhook_sink(id.as_str())).await?;
                    }
                    model.update(txn).await?
                }
                _ => state,
            };
            Ok(WebhookView::new(webhook, delivery))
        })
    }
}

struct DeleteWebhook {
    id: WebhookId,
}

impl Mutation for DeleteWebhook {
    type Output = ();
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(async move {
            let id = &self.id;
            let deleted = webhook::Entity::delete_by_id(id.as_str()).exec(txn).await?;
            if deleted.rows_affected == 0 {
                return Err(webhook_not_found(id).into());
            }
            delivery::Entity::delete_by_id(webhook_sink(id.as_str()))
                .exec(txn)
                .await?;
            Ok(())
        })
    }
}

struct RotateWebhookSecret {
    id: WebhookId,
    /// Sealed.
    secret: String,
    previous_expire_time: DateTime<Utc>,
}

impl Mutation for RotateWebhookSecret {
    type Output = WebhookView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, WebhookView> {
        Box::pin(async move {
            let existing = lock_webhook(txn, &self.id).await?;
            let previous = existing.secret.clone();
            let mut model: webhook::ActiveModel = existing.into();
            model.previous_secret = Set(Some(previous));
            model.previous_secret_expire_time = Set(Some(self.previous_expire_time));
            model.secret = Set(self.secret.clone());
            model.update_time = Set(crate::store::db::now());
            let webhook = model.update(txn).await?;
            let delivery = delivery_of(txn, &self.id).await?;
            Ok(WebhookView::new(webhook, delivery))
        })
    }
}

struct ResealSecrets {
    keys: std::sync::Arc<SecretsKeyring>,
    all: bool,
}

impl ResealSecrets {
    /// `stored` sealed with the first key, if it is to be; `None` to leave it.
    fn reseal(&self, stored: &str, id: &str, counts: &mut Resealed) -> Option<String> {
        if !self.all && is_sealed(stored) {
            return None;
        }
        match self.keys.open(stored, id) {
            Ok(secret) => {
                counts.sealed += 1;
                Some(self.keys.seal(&secret, id))
            }
            Err(error) => {
                tracing::warn!(webhook_id = id, %error, "a webhook secret could not be opened to be sealed again");
                counts.unreadable += 1;
                None
            }
        }
    }
}

impl Mutation for ResealSecrets {
    type Output = Resealed;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Resealed> {
        Box::pin(async move {
            let mut counts = Resealed::default();
            for row in webhook::Entity::find().lock_exclusive().all(txn).await? {
                let current = self.reseal(&row.secret, &row.id, &mut counts);
                let previous = row
                    .previous_secret
                    .as_deref()
                    .and_then(|p| self.reseal(p, &row.id, &mut counts));
                if current.is_none() && previous.is_none() {
                    continue;
                }
                let mut model: webhook::ActiveModel = row.into();
                if let Some(current) = current {
                    model.secret = Set(current);
                }
                if let Some(previous) = previous {
                    model.previous_secret = Set(Some(previous));
                }
                model.update(txn).await?;
            }
            Ok(counts)
        })
    }
}
