//! The gRPC API: one tonic service per module. Each handler decodes and validates its request
//! (the parts a batch shares in [`requests`]), authorises the caller, calls the store, and converts
//! the answer; every error goes through [`status`]. A service's batch RPCs are in its `batch`
//! submodule, on the shared machinery of [`batch`].

pub mod accounts;
pub mod auth;
pub mod batch;
pub mod caller;
pub mod changes;
pub mod convert;
pub mod emergency_locations;
pub mod in_flight;
pub mod inventory;
pub mod key_cache;
pub mod limits;
pub mod phone_numbers;
pub mod rate_limit;
pub mod requests;
pub mod status;
pub mod telephony;
pub mod users;
pub mod webhooks;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::domain::DomainError;
use crate::domain::ids::{AccountId, KeyId, RequestId, UserId};
use crate::error::{Error, Result};
use crate::events::ChangeHub;
use crate::store::Store;
use crate::store::page::PageRequest;
use crate::tasks::BackgroundTasks;
use auth::Authenticator;
use rate_limit::RateQuotas;

/// What the handlers share.
pub struct ApiContext {
    pub store: Store,
    pub auth: Authenticator,
    pub hub: Arc<ChangeHub>,
    pub limits: Limits,
    /// Fired on shutdown: open streams end.
    pub shutdown: CancellationToken,
    /// Where watch streams' tasks run, so that shutdown waits for them.
    pub tasks: BackgroundTasks,
    watchers: Mutex<HashMap<KeyId, usize>>,
}

/// Per-request limits that the handlers enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_page_size: u64,
    pub max_watchers_per_key: usize,
    pub checkpoint_interval: Duration,
    /// Numbers accepted in one order.
    pub max_order_numbers: usize,
    /// Items accepted in one batch request.
    pub max_batch_items: usize,
    /// Each API key's rate limits.
    pub rate: RateQuotas,
}

impl ApiContext {
    pub fn new(
        store: Store,
        hub: Arc<ChangeHub>,
        limits: Limits,
        tasks: BackgroundTasks,
    ) -> Arc<Self> {
        Arc::new(Self {
            auth: Authenticator::start(store.clone(), limits.rate, &tasks),
            store,
            hub,
            limits,
            shutdown: tasks.shutdown_token(),
            tasks,
            watchers: Mutex::new(HashMap::new()),
        })
    }

    pub fn page(&self, page_size: i32, page_token: &str, filters: &str) -> Result<PageRequest> {
        Ok(PageRequest::parse(
            page_size,
            page_token,
            filters,
            self.limits.max_page_size,
        )?)
    }

    /// Counts an open watch against its key's cap; the slot is released when the guard drops.
    pub fn open_watch_slot(self: &Arc<Self>, key_id: &KeyId) -> Result<WatchSlot> {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        let open = watchers.entry(key_id.clone()).or_default();
        if *open >= self.limits.max_watchers_per_key {
            return Err(Error::ResourceExhausted(format!(
                "this API key already has {open} open WatchChanges streams (the limit); close one first"
            )));
        }
        *open += 1;
        Ok(WatchSlot {
            context: self.clone(),
            key_id: key_id.clone(),
        })
    }
}

/// One open watch of a key; dropping it frees the slot.
pub struct WatchSlot {
    context: Arc<ApiContext>,
    key_id: KeyId,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut watchers = self
            .context
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(open) = watchers.get_mut(&self.key_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                watchers.remove(&self.key_id);
            }
        }
    }
}

/// What a request does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading what only readers may read (e.g. the user's telephony settings).
    Read,
    /// Reading the user: every role.
    ReadUser,
    Write,
    /// Acknowledging the user's sign-out: admins and session services.
    AcknowledgeSignOut,
}

/// A user named by a request: validated identifiers.
#[derive(Debug, Clone)]
pub struct UserTarget {
    pub account_id: AccountId,
    pub user_id: UserId,
}

impl ApiContext {
    /// Authenticates the caller, checks the role for `access`, validates the account and user
    /// ids, and checks the key covers the account — in that order, so that scope is decided
    /// before anything is read.
    pub async fn authorise_user<T>(
        &self,
        request: &tonic::Request<T>,
        access: Access,
        account_id: &str,
        user_id: &str,
    ) -> Result<(auth::Caller, UserTarget)> {
        let caller = self.auth.authenticate(request).await?;
        let target = authorise_target(&caller, access, account_id, user_id)?;
        Ok((caller, target))
    }
}

/// What [`ApiContext::authorise_user`] checks once the caller is known: the role, the ids and
/// the key's scope. A batch checks each of its items with it.
pub fn authorise_target(
    caller: &auth::Caller,
    access: Access,
    account_id: &str,
    user_id: &str,
) -> Result<UserTarget> {
    match access {
        Access::Read => caller.require_reader()?,
        Access::ReadUser => {}
        Access::Write => caller.require_admin()?,
        Access::AcknowledgeSignOut => caller.require_sign_out_acknowledger()?,
    }
    let account_id = AccountId::parse("account_id", account_id)?;
    caller.require_account(&account_id)?;
    let user_id = UserId::parse("user_id", user_id)?;
    Ok(UserTarget {
        account_id,
        user_id,
    })
}

/// An optional field (empty = none), parsed when given.
pub fn optional<T>(
    value: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, DomainError>,
) -> Result<Option<T>> {
    if value.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parse(value)?))
    }
}

/// An optional idempotency key: empty, or a UUID.
pub fn request_id(value: &str) -> Result<Option<RequestId>> {
    if value.is_empty() {
        return Ok(None);
    }
    RequestId::parse("request_id", value)
        .map(Some)
        .map_err(|_| DomainError::invalid("request_id", "must be a UUID when given").into())
}
