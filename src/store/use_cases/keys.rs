//! API keys: creation (the secret is returned once, only its hash is kept), lookup by secret,
//! listing and revocation.
//!
//! Revocations are numbered: every revocation bumps the one-row counter `api_key_generation` in
//! its own transaction and stamps the new generation on the key. The counter row stays locked
//! until commit, so generations become visible in order, and a server that has seen generation
//! N learns of every later revocation with one indexed query ([`Keys::revocations_after`]).
//! On PostgreSQL the revocation is also announced on `KEYS_CHANNEL` when it commits.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use tokio::sync::Notify;

use crate::domain::account::new_id;
use crate::domain::ids::{AccountId, KeyId};
use crate::domain::role::Role;
use crate::error::{Error, Result};
use crate::store::db::entities::api_key;
use crate::store::db::keys::{ApiKeyRecord, revoke_key};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};

/// In-process news of revocations: how many were heard of (revoked through this store, or on
/// PostgreSQL announced by another process), and a wake-up for whoever caches keys.
#[derive(Debug, Default)]
pub struct RevocationSignal {
    heard: AtomicU64,
    wake: Notify,
}

impl RevocationSignal {
    /// A key has (probably) just been revoked.
    pub fn heard(&self) {
        self.heard.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// How many revocations were heard of so far: a cache that has not caught up with this
    /// count must not be trusted.
    pub fn count(&self) -> u64 {
        self.heard.load(Ordering::SeqCst)
    }

    /// Waits for the next [`RevocationSignal::heard`] (or returns at once if one came unseen).
    pub async fn notified(&self) {
        self.wake.notified().await;
    }
}

/// One revoked key, with the generation it was revoked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub generation: u64,
    pub key_id: KeyId,
}

/// What to store for a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub account_id: Option<AccountId>,
    pub secret_hash: String,
}

impl Mutation for NewApiKey {
    type Output = ApiKeyRecord;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ApiKeyRecord> {
        Box::pin(async move {
            let model = api_key::ActiveModel {
                id: Set(new_id()),
                name: Set(self.name.clone()),
                role: Set(self.role.into()),
                account_id: Set(self.account_id.clone().map(String::from)),
                secret_hash: Set(self.secret_hash.clone()),
                create_time: Set(Utc::now()),
                revoke_time: Set(None),
                revoke_generation: Set(None),
            }
            .insert(txn)
            .await?;
            Ok(model.into())
        })
    }
}

struct RevokeApiKey {
    id: KeyId,
}

impl Mutation for RevokeApiKey {
    type Output = ApiKeyRecord;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ApiKeyRecord> {
        Box::pin(revoke_key(txn, &self.id))
    }
}

/// API keys: the store's surface for them.
pub struct Keys<'a> {
    engine: &'a Engine,
    revoked: &'a RevocationSignal,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(engine: &'a Engine, revoked: &'a RevocationSignal) -> Self {
        Self { engine, revoked }
    }

    pub async fn create(&self, key: NewApiKey) -> Result<ApiKeyRecord> {
        self.engine.write(key).await
    }

    /// The key with this secret hash, revoked or not.
    pub async fn find_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::SecretHash.eq(secret_hash))
            .one(self.engine.reader())
            .await?
            .map(Into::into))
    }

    pub async fn get(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>> {
        Ok(api_key::Entity::find_by_id(id.as_str())
            .one(self.engine.reader())
            .await?
            .map(Into::into))
    }

    pub async fn list(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(api_key::Entity::find()
            .order_by_asc(api_key::Column::Id)
            .all(self.engine.reader())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn count(&self) -> Result<u64> {
        Ok(api_key::Entity::find().count(self.engine.reader()).await?)
    }

    /// Revokes the key; revoking a revoked key changes nothing. This process's servers hear of
    /// it at once, other processes through [`Keys::revocations_after`] (and NOTIFY).
    pub async fn revoke(&self, id: &KeyId) -> Result<ApiKeyRecord> {
        let revoked = self.engine.write(RevokeApiKey { id: id.clone() }).await?;
        self.revoked.heard();
        Ok(revoked)
    }

    /// The latest revocation generation: every revocation so far has this one or a lower one.
    pub async fn generation(&self) -> Result<u64> {
        let row = self
            .engine
            .reader()
            .query_one_raw(Statement::from_string(
                self.engine.reader().get_database_backend(),
                "SELECT generation FROM api_key_generation WHERE id = 1",
            ))
            .await?
            .ok_or_else(|| Error::Internal("the api_key_generation row is missing".into()))?;
        let generation: i64 = row.try_get_by_index(0)?;
        Ok(generation.max(0) as u64)
    }

    /// Keys revoked in a generation after `generation`, oldest first.
    pub async fn revocations_after(&self, generation: u64) -> Result<Vec<Revocation>> {
        let rows: Vec<(String, Option<i64>)> = api_key::Entity::find()
            .select_only()
            .column(api_key::Column::Id)
            .column(api_key::Column::RevokeGeneration)
            .filter(api_key::Column::RevokeGeneration.gt(generation.min(i64::MAX as u64) as i64))
            .order_by_asc(api_key::Column::RevokeGeneration)
            .into_tuple()
            .all(self.engine.reader())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(key_id, generation)| Revocation {
                generation: generation.unwrap_or_default().max(0) as u64,
                key_id: KeyId::from_stored(key_id),
            })
            .collect())
    }
}
