//! `ChangeService`: the change-event stream and its history.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, ready};

use futures::Stream;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::{ApiContext, convert, optional};
use crate::domain::ids::{AccountId, UserId};
use crate::error::{Error, Result};
use crate::events::{self, WatchItem, WatchOptions};
use crate::proto::{self, change_service_server::ChangeService, watch_changes_response::Kind};
use crate::store::ChangeFilter;

pub struct ChangeApi {
    pub context: Arc<ApiContext>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::WatchChangesResponse, Status>> + Send>>;

/// The filter a caller may use: an account-scoped key sees its own account only (an empty
/// account filter means its own account).
fn scoped_filter(caller: &Caller, account_id: &str, user_id: &str) -> Result<ChangeFilter> {
    let mut account_id = optional(account_id, |v| AccountId::parse("account_id", v))?;
    if let Some(own) = caller.account() {
        match &account_id {
            None => account_id = Some(own.clone()),
            Some(requested) => caller.require_account(requested)?,
        }
    }
    Ok(ChangeFilter {
        account_id,
        user_id: optional(user_id, |v| UserId::parse("user_id", v))?,
    })
}

/// Ends the stream with UNAVAILABLE as soon as the server shuts down, dropping what is buffered
/// for a consumer that is not reading (it resumes from the last item it received).
fn end_at_shutdown(
    items: impl Stream<Item = Result<proto::WatchChangesResponse, Status>> + Send + 'static,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<proto::WatchChangesResponse, Status>> + Send + 'static {
    let mut items = Box::pin(items);
    // One shutdown future for the stream's life, not one per item.
    let mut shutdown = Some(Box::pin(shutdown.cancelled_owned()));
    futures::stream::poll_fn(move |cx| {
        // `None`: the stream has ended (an error was the last item).
        let Some(cancelled) = shutdown.as_mut() else {
            return Poll::Ready(None);
        };
        if cancelled.as_mut().poll(cx).is_ready() {
            shutdown = None;
            return Poll::Ready(Some(Err(Status::from(Error::ShuttingDown))));
        }
        let item = ready!(items.as_mut().poll_next(cx));
        if !matches!(item, Some(Ok(_))) {
            shutdown = None;
        }
        Poll::Ready(item)
    })
}

#[tonic::async_trait]
impl ChangeService for ChangeApi {
    type WatchChangesStream = WatchStream;

    async fn watch_changes(
        &self,
        request: Request<proto::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        let req = request.get_ref();
        let filter = scoped_filter(&caller, &req.account_id, &req.user_id)?;
        self.context.auth.charge_watch_open(&caller)?;
        let slot = self.context.open_watch_slot(&caller.key_id)?;
        let auth = self.context.auth.clone();
        let key_id = caller.key_id.clone();
        let revalidate: events::watcher::Revalidate = Arc::new(move |_sequence| {
            let auth = auth.clone();
            let key_id = key_id.clone();
            Box::pin(async move { auth.still_valid(&key_id).await })
        });
        let watch = events::watch(
            self.context.store.clone(),
            self.context.hub.clone(),
            WatchOptions {
                filter: filter.clone(),
                after_sequence: req.after_sequence,
                log_id: (!req.log_id.is_empty()).then(|| req.log_id.clone()),
                checkpoint_interval: self.context.limits.checkpoint_interval,
                revalidate: Some(revalidate),
            },
            &self.context.tasks,
        )
        .await?;
        tracing::info!(
            account_id = filter.account_id.as_ref().map_or("*", AccountId::as_str),
            user_id = filter.user_id.as_ref().map_or("*", UserId::as_str),
            after_sequence = ?req.after_sequence,
            actor = %caller.key_id,
            "watch opened"
        );
        let log_id = watch.log_id;
        let items = ReceiverStream::new(watch.items).map(move |item| {
            // The slot lives as long as the stream: dropped when the client goes away.
            let _slot = &slot;
            match item {
                Ok(WatchItem::Event(event)) => Ok(proto::WatchChangesResponse {
                    kind: Some(Kind::Event(convert::change_event(&event, &log_id))),
                }),
                Ok(WatchItem::Checkpoint(sequence)) => Ok(proto::WatchChangesResponse {
                    kind: Some(Kind::Checkpoint(proto::Checkpoint {
                        sequence,
                        log_id: log_id.clone(),
                    })),
                }),
                Err(error) => Err(Status::from(*error)),
            }
        });
        // An idle stream ends too, as soon as this process learns its key was revoked.
        let revoked = {
            let auth = self.context.auth.clone();
            let key_id = caller.key_id.clone();
            async move {
                auth.revoked(&key_id).await;
                Err(Status::from(Error::Unauthenticated(
                    "the API key has been revoked".into(),
                )))
            }
        };
        let items = futures::stream::select(items, futures::stream::once(revoked));
        Ok(Response::new(Box::pin(end_at_shutdown(
            items,
            self.context.shutdown.clone(),
        ))))
    }

    async fn list_changes(
        &self,
        request: Request<proto::ListChangesRequest>,
    ) -> Result<Response<proto::ListChangesResponse>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        let req = request.get_ref();
        let filter = scoped_filter(&caller, &req.account_id, &req.user_id)?;
        let page = self.context.page(
            req.page_size,
            &req.page_token,
            &format!(
                "account={};user={};after={}",
                filter.account_id.as_ref().map_or("", AccountId::as_str),
                filter.user_id.as_ref().map_or("", UserId::as_str),
                req.after_sequence
            ),
        )?;
        let events = self
            .context
            .store
            .changes()
            .list(&filter, req.after_sequence, &page)
            .await?;
        let log_id = self.context.store.changes().state().await?.log_id;
        Ok(Response::new(proto::ListChangesResponse {
            events: events
                .items
                .iter()
                .map(|e| convert::change_event(e, &log_id))
                .collect(),
            next_page_token: events.next_page_token,
        }))
    }
}
