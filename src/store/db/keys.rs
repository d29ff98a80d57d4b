//! The `api_keys` table's rows as the store answers them ([`ApiKeyRecord`]), and revoking one
//! inside a transaction, which account deletion does for every key of the account.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QuerySelect, Set,
    Statement,
};

use super::entities::api_key;
use crate::domain::DomainError;
use crate::domain::ids::{AccountId, KeyId};
use crate::domain::role::Role;
use crate::error::{Error, Result};

/// The PostgreSQL channel on which revocations are announced (the payload is the key id).
pub const KEYS_CHANNEL: &str = "telephony_admin_keys";

/// A key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub name: String,
    pub role: Role,
    pub account_id: Option<AccountId>,
    pub create_time: DateTime<Utc>,
    pub revoke_time: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKeyRecord {
    fn from(m: api_key::Model) -> Self {
        Self {
            id: KeyId::from_stored(m.id),
            name: m.name,
            role: m.role.into(),
            account_id: m.account_id.map(AccountId::from_stored),
            create_time: m.create_time,
            revoke_time: m.revoke_time,
        }
    }
}
/// Revokes the key in `txn`: stamps the next revocation generation on it and, on PostgreSQL,
/// announces it on commit. A revoked key stays as it is.
pub(crate) async fn revoke_key(txn: &DatabaseTransaction, id: &KeyId) -> Result<ApiKeyRecord> {
    let existing = api_key::Entity::find_by_id(id.as_str())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DomainError::NotFound {
            resource: "API key",
            name: id.to_string(),
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
