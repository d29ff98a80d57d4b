//! API keys: creation (the secret is returned once, only its hash is kept), lookup by secret,
//! listing and revocation.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::Store;
use super::entities::api_key;
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

impl Store {
    pub async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord> {
        let model = api_key::ActiveModel {
            id: Set(new_id()),
            name: Set(key.name),
            role: Set(key.role),
            account_id: Set(key.account_id),
            secret_hash: Set(key.secret_hash),
            create_time: Set(Utc::now()),
            revoke_time: Set(None),
        }
        .insert(self.connection())
        .await?;
        Ok(model.into())
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
        let existing = api_key::Entity::find_by_id(id)
            .one(self.connection())
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
        Ok(model.update(self.connection()).await?.into())
    }
}
