//! Authentication and authorisation of every RPC (health and reflection excepted).
//!
//! A request carries `authorization: Bearer <secret>`. The secret's SHA-256 digest is looked up
//! in the [`KeyCache`] of verified keys, and in the database only when it is not there (or the
//! cache is not fresh). A key revoked through this process's store, or announced by PostgreSQL
//! NOTIFY, fails at once; one revoked by another process on SQLite within
//! [`FRESHNESS`](super::key_cache::FRESHNESS). Open watch streams check their key in memory
//! before each event and end as soon as this process learns of the revocation, idle or not.
//! Scope checks compare the request's account with the key's before anything is read, so a key
//! outside its scope gets the same PERMISSION_DENIED whether or not the target exists.
//!
//! Every authenticated call is charged to its key's rate limit ([`RateLimits`]): one token, or
//! for a batch, once its size is checked, one per item ([`Authenticator::identify`] then
//! [`Authenticator::charge`]). A call without a valid key is charged to nobody.

use std::sync::Arc;

use tonic::Request;

pub use super::caller::Caller;
use super::key_cache::KeyCache;
use super::rate_limit::{EVICT_EVERY, RateLimits, RateQuotas};
use crate::domain::ids::KeyId;
use crate::error::{Error, Result};
use crate::keys::{Scope, secret_digest};
use crate::store::Store;
use crate::tasks::BackgroundTasks;

pub fn outside_scope() -> Error {
    Error::outside_scope()
}

/// Checks keys: from memory when the [`KeyCache`] is fresh, else against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<KeyCache>,
    rate: Arc<RateLimits>,
}

impl Authenticator {
    /// An authenticator over `store`'s keys, with the tasks that keep its cache fresh and its
    /// rate limits small until `shutdown`. Must be called within a Tokio runtime.
    pub fn start(store: Store, quotas: RateQuotas, tasks: &BackgroundTasks) -> Self {
        let rate = Arc::new(RateLimits::new(quotas));
        let shutdown = tasks.shutdown_token();
        let evicting = rate.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(EVICT_EVERY) => evicting.evict_idle(),
                }
            }
        });
        Self {
            cache: KeyCache::start(store.clone(), tasks),
            store,
            rate,
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED; the call is charged one token of its key's
    /// rate limit (RESOURCE_EXHAUSTED when none is left).
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller> {
        let caller = self.identify(request).await?;
        self.rate.charge(&caller, 1, "")?;
        Ok(caller)
    }

    /// Takes `cells` tokens of the caller's rate limit: a batch's items, `field` naming them.
    pub fn charge(&self, caller: &Caller, cells: usize, field: &str) -> Result<()> {
        self.rate.charge(caller, cells, field)
    }

    /// Takes one WatchChanges open of the caller's rate limit.
    pub fn charge_watch_open(&self, caller: &Caller) -> Result<()> {
        self.rate.charge_watch_open(caller)
    }

    /// The caller of `request`, or UNAUTHENTICATED, charging nothing: for a batch, which is
    /// charged its item count once that is checked ([`Authenticator::charge`]).
    pub async fn identify<T>(&self, request: &Request<T>) -> Result<Caller> {
        let digest = secret_digest(bearer(request)?);
        if let Some(caller) = self.cache.get(&digest).await {
            return Ok(caller);
        }
        let ticket = self.cache.ticket();
        let caller = self
            .store
            .keys()
            .find_by_hash(&hex::encode(digest))
            .await?
            .and_then(to_caller)
            .ok_or_else(|| {
                crate::metrics::record_auth_failure(crate::metrics::AuthFailure::UnknownKey);
                Error::Unauthenticated("the API key is unknown or revoked".into())
            })?;
        if let Some(ticket) = ticket {
            self.cache.insert(ticket, digest, caller.clone()).await;
        }
        Ok(caller)
    }

    /// Whether the key may still watch: a memory lookup while the cache is fresh, else the
    /// database's answer.
    pub async fn still_valid(&self, key_id: &KeyId) -> Result<()> {
        let revoked = match self.cache.is_revoked(key_id) {
            Some(revoked) => revoked,
            None => self
                .store
                .keys()
                .get(key_id)
                .await?
                .and_then(to_caller)
                .is_none(),
        };
        if revoked {
            crate::metrics::record_auth_failure(crate::metrics::AuthFailure::Revoked);
            Err(Error::Unauthenticated(
                "the API key has been revoked".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Resolves once this process knows the key is revoked: at once for a revocation through
    /// this process's store or announced by PostgreSQL, else within
    /// [`FRESHNESS`](super::key_cache::FRESHNESS).
    pub async fn revoked(&self, key_id: &KeyId) {
        self.cache.revoked(key_id).await
    }
}

fn to_caller(record: crate::store::ApiKeyRecord) -> Option<Caller> {
    if record.revoke_time.is_some() {
        return None;
    }
    Some(Caller {
        key_id: record.id,
        role: record.role,
        scope: match record.account_id {
            Some(id) => Scope::Account(id),
            None => Scope::Organisation,
        },
    })
}

fn bearer<T>(request: &Request<T>) -> Result<&str> {
    let missing = || {
        crate::metrics::record_auth_failure(crate::metrics::AuthFailure::MissingCredentials);
        Error::Unauthenticated(
            "missing credentials: send the metadata 'authorization: Bearer <API key>'".into(),
        )
    };
    let value = request
        .metadata()
        .get("authorization")
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(missing)?
        .trim();
    if secret.is_empty() || secret.len() > 256 {
        return Err(missing());
    }
    Ok(secret)
}
