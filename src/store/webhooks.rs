//! Webhooks: their configuration with their delivery state, and how many matching events wait.
//! A webhook and its delivery row are created and deleted together; a new webhook starts after
//! the last committed event.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use super::Store;
use super::deliveries::{new_delivery, webhook_sink};
use super::entities::enums::{self, kinds_to_db};
use super::entities::{change_event, change_log, delivery, webhook};
use super::page::{Page, PageRequest};
use super::views::{WebhookConfig, WebhookView};
use crate::domain::DomainError;
use crate::domain::webhook::EventFilter;
use crate::error::{Error, Result};

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

/// A write transaction of its own (webhook changes write no change events, so they need not
/// join the change writer's batches): IMMEDIATE on SQLite, so that it queues for the write lock.
async fn begin_immediate(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

fn webhook_not_found(id: &str) -> DomainError {
    DomainError::NotFound {
        resource: "webhook",
        name: id.to_owned(),
    }
}

impl Store {
    pub async fn create_webhook(&self, new: NewWebhook) -> Result<WebhookView> {
        let txn = begin_immediate(self.connection()).await?;
        let start_after = change_log::Entity::find_by_id(1)
            .one(&txn)
            .await?
            .ok_or_else(|| Error::Internal("the change_log row is missing".into()))?
            .last_sequence
            .max(0) as u64;
        let now = Utc::now();
        let webhook = webhook::ActiveModel {
            id: Set(crate::domain::account::new_id()),
            url: Set(new.url),
            description: Set(new.description),
            account_id: Set(new.filter.account_id.clone()),
            kinds: Set(kinds_to_db(&new.filter.kinds)),
            secret: Set(new.secret),
            previous_secret: Set(None),
            previous_secret_expire_time: Set(None),
            create_time: Set(now),
            update_time: Set(now),
        }
        .insert(&txn)
        .await?;
        let delivery = new_delivery(&webhook_sink(&webhook.id), start_after)
            .insert(&txn)
            .await?;
        txn.commit().await?;
        Ok(WebhookView::new(webhook, delivery))
    }

    pub async fn get_webhook(&self, id: &str) -> Result<WebhookView> {
        let webhook = webhook::Entity::find_by_id(id)
            .one(self.connection())
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        self.with_delivery(webhook).await
    }

    /// The webhook's configuration only, for its delivery; `None` once deleted.
    pub async fn find_webhook(&self, id: &str) -> Result<Option<WebhookConfig>> {
        Ok(webhook::Entity::find_by_id(id)
            .one(self.connection())
            .await?
            .map(WebhookConfig::from))
    }

    async fn with_delivery(&self, webhook: webhook::Model) -> Result<WebhookView> {
        let delivery = delivery::Entity::find_by_id(webhook_sink(&webhook.id))
            .one(self.connection())
            .await?
            .ok_or_else(|| {
                Error::Internal(format!("webhook {} has no delivery row", webhook.id))
            })?;
        Ok(WebhookView::new(webhook, delivery))
    }

    /// Webhooks in creation order (their ids are time-ordered).
    pub async fn list_webhooks(&self, page: &PageRequest) -> Result<Page<WebhookView>> {
        let mut query = webhook::Entity::find().order_by_asc(webhook::Column::Id);
        if let Some(after) = &page.after {
            query = query.filter(webhook::Column::Id.gt(after.as_str()));
        }
        let webhooks = query
            .limit(page.fetch_limit())
            .all(self.connection())
            .await?;
        let sinks: Vec<String> = webhooks.iter().map(|w| webhook_sink(&w.id)).collect();
        let mut deliveries: std::collections::HashMap<String, delivery::Model> =
            delivery::Entity::find()
                .filter(delivery::Column::Sink.is_in(sinks))
                .all(self.connection())
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
        Ok(page.finish(views, |v| v.webhook.id.clone()))
    }

    pub async fn update_webhook(&self, id: &str, update: WebhookUpdate) -> Result<WebhookView> {
        let txn = begin_immediate(self.connection()).await?;
        let existing = webhook::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        let mut model: webhook::ActiveModel = existing.into();
        if let Some(url) = update.url {
            model.url = Set(url);
        }
        if let Some(description) = update.description {
            model.description = Set(description);
        }
        if let Some(filter) = update.filter {
            model.account_id = Set(filter.account_id.clone());
            model.kinds = Set(kinds_to_db(&filter.kinds));
        }
        model.update_time = Set(Utc::now());
        let webhook = model.update(&txn).await?;
        let sink = webhook_sink(id);
        let state = delivery::Entity::find_by_id(sink.as_str())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::Internal(format!("webhook {id} has no delivery row")))?;
        let delivery = match update.paused {
            Some(paused) if paused != state.paused => {
                let mut model: delivery::ActiveModel = state.into();
                model.paused = Set(paused);
                if !paused {
                    // Resuming starts a new streak: the pause timer counts from the next failure.
                    model.failing_since = Set(None);
                }
                model.update(&txn).await?
            }
            _ => state,
        };
        txn.commit().await?;
        Ok(WebhookView::new(webhook, delivery))
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let txn = begin_immediate(self.connection()).await?;
        let deleted = webhook::Entity::delete_by_id(id).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(webhook_not_found(id).into());
        }
        delivery::Entity::delete_by_id(webhook_sink(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Replaces the secret; the old one keeps signing until `previous_expire_time`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: String,
        previous_expire_time: DateTime<Utc>,
    ) -> Result<WebhookView> {
        let txn = begin_immediate(self.connection()).await?;
        let existing = webhook::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| webhook_not_found(id))?;
        let previous = existing.secret.clone();
        let mut model: webhook::ActiveModel = existing.into();
        model.previous_secret = Set(Some(previous));
        model.previous_secret_expire_time = Set(Some(previous_expire_time));
        model.secret = Set(secret);
        model.update_time = Set(Utc::now());
        let webhook = model.update(&txn).await?;
        txn.commit().await?;
        self.with_delivery(webhook).await
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
        Ok(query.count(self.connection()).await?)
    }
}
