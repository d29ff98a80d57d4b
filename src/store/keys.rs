//! API keys: creation (the secret is returned once, only its hash is kept), lookup by secret,
//! listing and revocation.
//!
//! Revocations are numbered: every revocation bumps the one-row counter `api_key_generation` in
//! its own transaction and stamps the new generation on the key. The counter row stays locked
//! until commit, so generations become visible in order, and a server that has seen generation
//! N learns of every later revocation with one indexed query ([`Store::revocations_after`]).
//! On PostgreSQL the revocation is also announced on [`KEYS_CHANNEL`] when it commits.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use tokio::sync::Notify;

use super::Store;
use super::entities::api_key;
use super::writer::{Mutation, TxnFuture};
use crate::domain::role::Role;
use crate::domain::{DomainError, account::new_id};
use crate::error::{Error, Result};

/// The PostgreSQL channel on which revocations are announced (the payload is the key id).
pub const KEYS_CHANNEL: &str = "telephony_admin_keys";

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
    pub key_id: String,
}

/// A key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub account_id: Option<String>,
    pub create_time: DateTime<Utc>,
    pub revoke_time: Option<DateTime<Utc>>,
}

/// What to store for a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub account_id: Option<String>,
    pub secret_hash: String,
}

impl From<api_key::Model> for ApiKeyRecord {
    fn from(m: api_key::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            role: m.role.into(),
            account_id: m.account_id,
            create_time: m.create_time,
            revoke_time: m.revoke_time,
        }
    }
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
                account_id: Set(self.account_id.clone()),
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
    id: String,
}

impl Mutation for RevokeApiKey {
    type Output = ApiKeyRecord;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ApiKeyRecord> {
        Box::pin(revoke_api_key_in(txn, &self.id))
    }
}

impl Store {
    pub async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord> {
        self.write(key).await
    }

    /// The key with this secret hash, revoked or not.
    pub async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::SecretHash.eq(secret_hash))
            .one(self.connection())
            .await?
            .map(Into::into))
    }

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(api_key::Entity::find_by_id(id)
            .one(self.connection())
            .await?
            .map(Into::into))
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(api_key::Entity::find()
            .order_by_asc(api_key::Column::Id)
            .all(self.connection())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn count_api_keys(&self) -> Result<u64> {
        Ok(api_key::Entity::find().count(self.connection()).await?)
    }

    /// Revokes the key; revoking a revoked key changes nothing. This process's servers hear of
    /// it at once, other processes through [`Store::revocations_after`] (and NOTIFY).
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyRecord> {
        let revoked = self.write(RevokeApiKey { id: id.to_owned() }).await?;
        self.revocation_signal().heard();
        Ok(revoked)
    }

    /// The latest revocation generation: every revocation so far has this one or a lower one.
    pub async fn revocation_generation(&self) -> Result<u64> {
        let row = self
            .connection()
            .query_one_raw(Statement::from_string(
                self.backend(),
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
            .all(self.connection())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(key_id, generation)| Revocation {
                generation: generation.unwrap_or_default().max(0) as u64,
                key_id,
            })
            .collect())
    }
}

/// Revokes the key in `txn`: stamps the next revocation generation on it and, on PostgreSQL,
/// announces it on commit. A revoked key stays as it is.
pub(super) async fn revoke_api_key_in(txn: &DatabaseTransaction, id: &str) -> Result<ApiKeyRecord> {
    let existing = api_key::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound {
            resource: "API key",
            name: id.to_owned(),
        })?;
    if existing.revoke_time.is_some() {
        return Ok(existing.into());
    }
    let backend = txn.get_database_backend();
    let row = txn
        .query_one_raw(Statement::from_string(
            backend,
            "UPDATE api_key_generation SET generation = generation + 1 WHERE id = 1 RETURNING generation",
        ))
        .await?
        .ok_or_else(|| Error::Internal("the api_key_generation row is missing".into()))?;
    let generation: i64 = row.try_get_by_index(0)?;
    let mut model: api_key::ActiveModel = existing.into();
    model.revoke_time = Set(Some(Utc::now()));
    model.revoke_generation = Set(Some(generation));
    let revoked = model.update(txn).await?;
    if backend == sea_orm::DbBackend::Postgres {
        // Delivered to listeners on commit, never for a rolled-back transaction.
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_notify($1, $2)",
            [KEYS_CHANNEL.into(), revoked.id.clone().into()],
        ))
        .await?;
    }
    Ok(revoked.into())
}
