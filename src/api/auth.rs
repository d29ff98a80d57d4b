//! Authentication and authorisation of every RPC (health and reflection excepted).
//!
//! A request carries `authorization: Bearer <secret>`. The secret is hashed and looked up in the
//! database on every call, so a revoked key fails at once. Open watch streams re-check their key
//! before each new event; the answer is shared by all streams of a key for that event (and for
//! at most [`CACHE_TTL`] while idle), so a thousand streams cost one lookup per event.
//! Scope checks compare the request's account with the key's before anything is read, so a key
//! outside its scope gets the same PERMISSION_DENIED whether or not the target exists.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::Request;

use crate::error::{Error, Result};
use crate::keys::{Role, Scope, hash_secret};
use crate::store::Store;

/// How long an idle stream trusts its key's last check.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; the cache is cleared when full.
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
}

pub fn outside_scope() -> Error {
    Error::PermissionDenied("the target is outside this API key's account".into())
}

#[derive(Clone)]
struct Cached {
    valid: bool,
    /// The change sequence the check was made for.
    sequence: u64,
    checked: Instant,
}

/// Checks keys against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// One lookup at a time per key: the streams an event wakes together wait for the first
    /// one's answer instead of each querying the database.
    lookups: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(HashMap::new())),
            lookups: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller> {
        let secret = bearer(request)?;
        self.store
            .find_api_key_by_hash(&hash_secret(secret))
            .await?
            .and_then(to_caller)
            .ok_or_else(|| {
                crate::metrics::record_auth_failure(crate::metrics::AuthFailure::UnknownKey);
                Error::Unauthenticated("the API key is unknown or revoked".into())
            })
    }

    /// Whether the key may still watch, checked for the change at `sequence`: one database
    /// lookup per key and sequence, whatever the number of streams.
    pub async fn still_valid(&self, key_id: &str, sequence: u64) -> Result<()> {
        if let Some(valid) = self.cached_validity(key_id, sequence) {
            return still_valid_verdict(valid);
        }
        let gate = {
            let mut lookups = self.lookups.lock().unwrap_or_else(|e| e.into_inner());
            if lookups.len() >= CACHE_CAPACITY {
                lookups.clear();
            }
            lookups.entry(key_id.to_owned()).or_default().clone()
        };
        let _one_lookup_at_a_time = gate.lock().await;
        if let Some(valid) = self.cached_validity(key_id, sequence) {
            return still_valid_verdict(valid);
        }
        let valid = self
            .store
            .get_api_key(key_id)
            .await?
            .and_then(to_caller)
            .is_some();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(
            key_id.to_owned(),
            Cached {
                valid,
                sequence,
                checked: Instant::now(),
            },
        );
        still_valid_verdict(valid)
    }

    /// The cached answer for `key_id`, if it was checked for `sequence` or later, recently.
    fn cached_validity(&self, key_id: &str, sequence: u64) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key_id)
            .filter(|c| c.sequence >= sequence && c.checked.elapsed() < CACHE_TTL)
            .map(|c| c.valid)
    }
}

fn still_valid_verdict(valid: bool) -> Result<()> {
    if valid {
        Ok(())
    } else {
        crate::metrics::record_auth_failure(crate::metrics::AuthFailure::Revoked);
        Err(Error::Unauthenticated(
            "the API key has been revoked".into(),
        ))
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
