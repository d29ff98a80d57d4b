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

use std::sync::Arc;

use tonic::Request;

use super::key_cache::KeyCache;
use crate::error::{Error, Result};
use crate::keys::{Role, Scope, secret_digest};
use crate::store::{Requester, Store};
use crate::tasks::BackgroundTasks;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    pub fn require_admin(&self) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(viewer_may_only_read()),
            Role::SessionService => Err(session_service_may_not()),
        }
    }

    /// Reads of anything but users and changes (accounts, numbers, orders, settings): every
    /// role but the session service's.
    pub fn require_reader(&self) -> Result<()> {
        match self.role {
            Role::Admin | Role::Viewer => Ok(()),
            Role::SessionService => Err(session_service_may_not()),
        }
    }

    /// Acknowledging a user's sign-out: admins and session services.
    pub fn require_sign_out_acknowledger(&self) -> Result<()> {
        match self.role {
            Role::Admin | Role::SessionService => Ok(()),
            Role::Viewer => Err(viewer_may_only_read()),
        }
    }

    pub fn require_organisation(&self) -> Result<()> {
        match &self.scope {
            Scope::Organisation => Ok(()),
            Scope::Account(_) => Err(Error::PermissionDenied(
                "this API key is scoped to one account; this operation needs an organisation key"
                    .into(),
            )),
        }
    }

    /// The request names `account_id`; the key must cover it.
    pub fn require_account(&self, account_id: &str) -> Result<()> {
        crate::telemetry::record_account_id(account_id);
        match &self.scope {
            Scope::Organisation => Ok(()),
            Scope::Account(own) if own == account_id => Ok(()),
            Scope::Account(_) => Err(outside_scope()),
        }
    }

    /// The key's own account, for account-scoped keys.
    pub fn account(&self) -> Option<&str> {
        match &self.scope {
            Scope::Organisation => None,
            Scope::Account(id) => Some(id),
        }
    }

    /// The key as the store records who asked: the actor of changes and the idempotency scope.
    pub fn requester(&self) -> Requester<'_> {
        Requester {
            key_id: &self.key_id,
            account: self.account(),
        }
    }
}

fn viewer_may_only_read() -> Error {
    Error::PermissionDenied("this API key has the viewer role and may only read".into())
}

fn session_service_may_not() -> Error {
    Error::PermissionDenied(
        "this API key has the session-service role and may only watch and list changes, read users and acknowledge sign-outs".into(),
    )
}

pub fn outside_scope() -> Error {
    Error::outside_scope()
}

/// Checks keys: from memory when the [`KeyCache`] is fresh, else against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<KeyCache>,
}

impl Authenticator {
    /// An authenticator over `store`'s keys, with the task that keeps its cache fresh until
    /// `shutdown`. Must be called within a Tokio runtime.
    pub fn start(store: Store, tasks: &BackgroundTasks) -> Self {
        Self {
            cache: KeyCache::start(store.clone(), tasks),
            store,
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller> {
        let digest = secret_digest(bearer(request)?);
        if let Some(caller) = self.cache.get(&digest) {
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
            self.cache.insert(ticket, digest, caller.clone());
        }
        Ok(caller)
    }

    /// Whether the key may still watch: a memory lookup while the cache is fresh, else the
    /// database's answer.
    pub async fn still_valid(&self, key_id: &str) -> Result<()> {
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
    pub async fn revoked(&self, key_id: &str) {
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
