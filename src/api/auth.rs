//! Authentication and authorisation of every RPC (health and reflection excepted).
//!
//! A request carries `authorization: Bearer <secret>`. The secret is hashed and looked up; a
//! short cache keeps lookups off the database without delaying revocation by more than
//! [`CACHE_TTL`]. Scope checks compare the request's account with the key's before anything is
//! read, so a key outside its scope gets the same PERMISSION_DENIED whether or not the target
//! exists.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::Request;

use crate::error::{Error, Result};
use crate::keys::{Role, Scope, hash_secret};
use crate::store::Store;

/// How long a looked-up key is trusted before it is checked again.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; the cache is cleared when full (keys are few, attackers' guesses many).
const CACHE_CAPACITY: usize = 10_000;

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
            Role::Viewer => Err(Error::PermissionDenied(
                "this API key has the viewer role and may only read".into(),
            )),
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
}

pub fn outside_scope() -> Error {
    Error::PermissionDenied("the target is outside this API key's account".into())
}

#[derive(Clone)]
struct Cached {
    caller: Option<Caller>,
    checked: Instant,
}

/// Checks keys against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller> {
        let secret = bearer(request)?;
        self.caller_for_hash(&hash_secret(secret))
            .await?
            .ok_or_else(|| Error::Unauthenticated("the API key is unknown or revoked".into()))
    }

    /// Whether the key is still valid (for long-lived streams).
    pub async fn still_valid(&self, key_id: &str) -> Result<()> {
        let cache_key = format!("id:{key_id}");
        if let Some(hit) = self.cached(&cache_key) {
            return hit
                .map(|_| ())
                .ok_or_else(|| Error::Unauthenticated("the API key has been revoked".into()));
        }
        let record = self.store.get_api_key(key_id).await?;
        let caller = record.and_then(to_caller);
        let valid = caller.is_some();
        self.remember(cache_key, caller);
        if valid {
            Ok(())
        } else {
            Err(Error::Unauthenticated(
                "the API key has been revoked".into(),
            ))
        }
    }

    async fn caller_for_hash(&self, hash: &str) -> Result<Option<Caller>> {
        if let Some(hit) = self.cached(hash) {
            return Ok(hit);
        }
        let caller = self
            .store
            .find_api_key_by_hash(hash)
            .await?
            .and_then(to_caller);
        self.remember(hash.to_owned(), caller.clone());
        Ok(caller)
    }

    fn cached(&self, key: &str) -> Option<Option<Caller>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|c| c.checked.elapsed() < CACHE_TTL)
            .map(|c| c.caller.clone())
    }

    fn remember(&self, key: String, caller: Option<Caller>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(
            key,
            Cached {
                caller,
                checked: Instant::now(),
            },
        );
    }
}

fn to_caller(record: crate::store::ApiKeyRecord) -> Option<Caller> {
    if record.revoke_time.is_some() {
        return None;
    }
    Some(Caller {
        key_id: record.id,
        role: Role::parse(&record.role)?,
        scope: match record.account_id {
            Some(id) => Scope::Account(id),
            None => Scope::Organisation,
        },
    })
}

fn bearer<T>(request: &Request<T>) -> Result<&str> {
    let missing = || {
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
