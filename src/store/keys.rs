//! API keys: creation (the secret is returned once, only its hash is kept), lookup by secret,
//! listing and revocation.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};

use super::Store;
use super::entities::api_key;
use super::writer::{Mutation, TxnFuture};
use crate::domain::{DomainError, account::new_id};
use crate::error::Result;

/// A key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub account_id: Option<String>,
    pub create_time: DateTime<Utc>,
    pub revoke_time: Option<DateTime<Utc>>,
}

/// What to store for a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: String,
    pub account_id: Option<String>,
    pub secret_hash: String,
}

impl From<api_key::Model> for ApiKeyRecord {
    fn from(m: api_key::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            role: m.role,
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
                role: Set(self.role.clone()),
                account_id: Set(self.account_id.clone()),
                secret_hash: Set(self.secret_hash.clone()),
                create_time: Set(Utc::now()),
                revoke_time: Set(None),
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
        Box::pin(revoke_api_key(txn, &self.id))
    }
}

/// Revokes the key; revoking a revoked key changes nothing.
async fn revoke_api_key(txn: &DatabaseTransaction, id: &str) -> Result<ApiKeyRecord> {
    let existing = api_key::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound {
            resource: "API key",
            name: id.to_owned(),
        })?;
    if existing.revoke_time.is_some() {
        return Ok(existing.into());
    }
    let mut model: api_key::ActiveModel = existing.into();
    model.revoke_time = Set(Some(Utc::now()));
    Ok(model.update(txn).await?.into())
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

    /// Revokes the key; revoking a revoked key changes nothing.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyRecord> {
        self.write(RevokeApiKey { id: id.to_owned() }).await
    }
}
