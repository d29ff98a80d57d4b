//! `WebhookService`: webhooks and their delivery state. Only organisation admin keys may call it:
//! a webhook sees every account's changes (or one account's, chosen by whoever may see them all).

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::{ApiContext, convert, optional};
use crate::delivery::http_client::check_target;
use crate::delivery::signature::generate_secret;
use crate::domain::DomainError;
use crate::domain::change::ChangeKind;
use crate::domain::error::Violations;
use crate::domain::ids::{AccountId, WebhookId};
use crate::domain::webhook::{EventFilter, TargetPolicy, parse_description, parse_webhook_url};
use crate::error::Result;
use crate::proto::{self, webhook_service_server::WebhookService};
use crate::store::{NewWebhook, WebhookUpdate, WebhookView};

/// How long the previous secret keeps signing after a rotation.
const PREVIOUS_SECRET_VALIDITY: chrono::Duration = chrono::Duration::hours(24);

pub struct WebhookApi {
    pub context: Arc<ApiContext>,
    pub policy: TargetPolicy,
}

impl WebhookApi {
    async fn authorise<T>(&self, request: &Request<T>) -> Result<Caller> {
        let caller = self.context.auth.authenticate(request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        Ok(caller)
    }

    /// A URL the server may call: syntax and scheme, then every address its host resolves to.
    async fn url(&self, raw: &str) -> Result<String> {
        let url = parse_webhook_url("url", raw, self.policy)?;
        check_target("url", &url, self.policy).await?;
        Ok(url.url.to_string())
    }

    async fn filter(&self, filter: Option<&proto::WebhookFilter>) -> Result<EventFilter> {
        let Some(filter) = filter else {
            return Ok(EventFilter::default());
        };
        let mut violations = Violations::new();
        let account_id = violations
            .check(
                optional(&filter.account_id, |v| {
                    AccountId::parse("filter.account_id", v)
                })
                .map_err(into_domain),
            )
            .flatten();
        let mut kinds = Vec::new();
        for (i, raw) in filter.kinds.iter().enumerate() {
            match change_kind(*raw) {
                Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                Some(_) => {}
                None => violations.push(
                    format!("filter.kinds[{i}]"),
                    format!("{raw} is not a change kind"),
                ),
            }
        }
        violations.finish()?;
        if let Some(account_id) = &account_id {
            // Refuse a filter that can never match.
            self.context.store.accounts().get(account_id).await?;
        }
        Ok(EventFilter { account_id, kinds })
    }

    async fn view(&self, view: WebhookView) -> Result<proto::Webhook> {
        let pending = self
            .context
            .store
            .webhooks()
            .count_matching_changes(view.delivery.cursor, &view.filter())
            .await?;
        Ok(webhook(view, pending))
    }
}

fn into_domain(e: crate::error::Error) -> DomainError {
    match e {
        crate::error::Error::Domain(d) => d,
        other => DomainError::invalid("request", other.to_string()),
    }
}

fn change_kind(raw: i32) -> Option<ChangeKind> {
    Some(match proto::ChangeKind::try_from(raw).ok()? {
        proto::ChangeKind::Unspecified => return None,
        proto::ChangeKind::PhoneNumberAssigned => ChangeKind::PhoneNumberAssigned,
        proto::ChangeKind::PhoneNumberUnassigned => ChangeKind::PhoneNumberUnassigned,
        proto::ChangeKind::TelephonySettingsUpdated => ChangeKind::TelephonySettingsUpdated,
        proto::ChangeKind::UserSignOutRequested => ChangeKind::UserSignOutRequested,
        proto::ChangeKind::UserDeleted => ChangeKind::UserDeleted,
        proto::ChangeKind::SignOutAcknowledged => ChangeKind::SignOutAcknowledged,
        proto::ChangeKind::EmergencyLocationUpdated => ChangeKind::EmergencyLocationUpdated,
    })
}

fn webhook(view: WebhookView, pending: u64) -> proto::Webhook {
    let filter = view.filter();
    let WebhookView { webhook, delivery } = view;
    proto::Webhook {
        webhook_id: webhook.id.into(),
        url: webhook.url,
        description: webhook.description,
        filter: Some(proto::WebhookFilter {
            account_id: filter.account_id.map(String::from).unwrap_or_default(),
            kinds: filter
                .kinds
                .into_iter()
                .map(|k| convert::change_kind(k) as i32)
                .collect(),
        }),
        state: if delivery.paused {
            proto::WebhookState::Paused
        } else {
            proto::WebhookState::Active
        } as i32,
        last_delivered_sequence: delivery.last_delivered,
        delivered_through_sequence: delivery.cursor,
        pending_events: pending,
        last_error: delivery.last_error.unwrap_or_default(),
        last_error_time: delivery.last_error_time.map(convert::timestamp),
        failing_since: delivery.failing_since.map(convert::timestamp),
        create_time: Some(convert::timestamp(webhook.create_time)),
        update_time: Some(convert::timestamp(webhook.update_time)),
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_webhook(
        &self,
        request: Request<proto::CreateWebhookRequest>,
    ) -> Result<Response<proto::CreateWebhookResponse>, Status> {
        let caller = self.authorise(&request).await?;
        let req = request.get_ref();
        let description = parse_description("description", &req.description)?;
        let url = self.url(&req.url).await?;
        let filter = self.filter(req.filter.as_ref()).await?;
        let secret = generate_secret();
        let view = self
            .context
            .store
            .webhooks()
            .create(NewWebhook {
                url,
                description,
                filter,
                secret: secret.clone(),
            })
            .await?;
        tracing::info!(webhook_id = %view.webhook.id, url = %view.webhook.url, actor = %caller.key_id, "webhook created");
        Ok(Response::new(proto::CreateWebhookResponse {
            webhook: Some(self.view(view).await?),
            secret,
        }))
    }

    async fn get_webhook(
        &self,
        request: Request<proto::GetWebhookRequest>,
    ) -> Result<Response<proto::Webhook>, Status> {
        self.authorise(&request).await?;
        let id = WebhookId::parse("webhook_id", &request.get_ref().webhook_id)?;
        let view = self.context.store.webhooks().get(&id).await?;
        Ok(Response::new(self.view(view).await?))
    }

    async fn list_webhooks(
        &self,
        request: Request<proto::ListWebhooksRequest>,
    ) -> Result<Response<proto::ListWebhooksResponse>, Status> {
        self.authorise(&request).await?;
        let req = request.get_ref();
        let page = self
            .context
            .page(req.page_size, &req.page_token, "webhooks")?;
        let views = self.context.store.webhooks().list(&page).await?;
        let mut webhooks = Vec::with_capacity(views.items.len());
        for view in views.items {
            webhooks.push(self.view(view).await?);
        }
        Ok(Response::new(proto::ListWebhooksResponse {
            webhooks,
            next_page_token: views.next_page_token,
        }))
    }

    async fn update_webhook(
        &self,
        request: Request<proto::UpdateWebhookRequest>,
    ) -> Result<Response<proto::Webhook>, Status> {
        let caller = self.authorise(&request).await?;
        let req = request.get_ref();
        let id = WebhookId::parse("webhook_id", &req.webhook_id)?;
        let paths = convert::mask_paths(
            "update_mask",
            req.update_mask.as_ref(),
            &["url", "description", "filter", "paused"],
        )?;
        let wants = |path: &str| paths.is_empty() || paths.contains(&path);
        let description = if wants("description") {
            Some(parse_description("description", &req.description)?)
        } else {
            None
        };
        let url = if wants("url") {
            Some(self.url(&req.url).await?)
        } else {
            None
        };
        let filter = if wants("filter") {
            Some(self.filter(req.filter.as_ref()).await?)
        } else {
            None
        };
        let update = WebhookUpdate {
            url,
            description,
            filter,
            paused: wants("paused").then_some(req.paused),
        };
        let view = self.context.store.webhooks().update(&id, update).await?;
        tracing::info!(webhook_id = %id, paused = view.delivery.paused, actor = %caller.key_id, "webhook updated");
        Ok(Response::new(self.view(view).await?))
    }

    async fn delete_webhook(
        &self,
        request: Request<proto::DeleteWebhookRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.authorise(&request).await?;
        let id = WebhookId::parse("webhook_id", &request.get_ref().webhook_id)?;
        self.context.store.webhooks().delete(&id).await?;
        tracing::info!(webhook_id = %id, actor = %caller.key_id, "webhook deleted");
        Ok(Response::new(()))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<proto::RotateWebhookSecretRequest>,
    ) -> Result<Response<proto::RotateWebhookSecretResponse>, Status> {
        let caller = self.authorise(&request).await?;
        let id = WebhookId::parse("webhook_id", &request.get_ref().webhook_id)?;
        let secret = generate_secret();
        let view = self
            .context
            .store
            .webhooks()
            .rotate_secret(&id, secret.clone(), Utc::now() + PREVIOUS_SECRET_VALIDITY)
            .await?;
        tracing::info!(webhook_id = %id, actor = %caller.key_id, "webhook secret rotated");
        Ok(Response::new(proto::RotateWebhookSecretResponse {
            webhook: Some(self.view(view).await?),
            secret,
        }))
    }
}
