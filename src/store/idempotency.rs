//! Idempotent mutations: the first result of a request that carried a `request_id` is kept in
//! the same transaction as its change, and a retry with that id gets it back unchanged.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Set, Statement,
};
use serde::{Serialize, de::DeserializeOwned};

use super::Store;
use super::entities::idempotency_key;
use crate::domain::DomainError;
use crate::error::{Error, Result};

/// What identifies one idempotent request: its id, the operation and the request's content.
pub(super) struct IdempotencyKey<'a> {
    pub request_id: &'a str,
    pub operation: &'static str,
    pub fingerprint: String,
}

impl Store {
    /// Inside `txn`: the stored result of an earlier request with the same id, if any. On
    /// PostgreSQL the id is locked first so that concurrent retries wait for the first one.
    pub(super) async fn replay<T: DeserializeOwned>(
        &self,
        txn: &DatabaseTransaction,
        key: Option<&IdempotencyKey<'_>>,
    ) -> Result<Option<T>> {
        let Some(key) = key else { return Ok(None) };
        if self.is_postgres() {
            txn.execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [key.request_id.into()],
            ))
            .await?;
        }
        let Some(stored) = idempotency_key::Entity::find_by_id(key.request_id)
            .one(txn)
            .await?
        else {
            return Ok(None);
        };
        if stored.operation != key.operation || stored.fingerprint != key.fingerprint {
            return Err(DomainError::invalid(
                "request_id",
                format!(
                    "was already used for a different request ({}); use a new request_id for a new request",
                    stored.operation
                ),
            )
            .into());
        }
        serde_json::from_str(&stored.response)
            .map(Some)
            .map_err(|e| Error::Internal(format!("stored idempotent response unreadable: {e}")))
    }

    /// Inside `txn`: keeps `response` as the result of the request.
    pub(super) async fn remember<T: Serialize>(
        &self,
        txn: &DatabaseTransaction,
        key: Option<&IdempotencyKey<'_>>,
        response: &T,
    ) -> Result<()> {
        let Some(key) = key else { return Ok(()) };
        let response = serde_json::to_string(response)
            .map_err(|e| Error::Internal(format!("response not storable: {e}")))?;
        idempotency_key::ActiveModel {
            request_id: Set(key.request_id.to_owned()),
            operation: Set(key.operation.to_owned()),
            fingerprint: Set(key.fingerprint.clone()),
            response: Set(response),
            create_time: Set(Utc::now()),
        }
        .insert(txn)
        .await?;
        Ok(())
    }

    /// Forgets results older than `cutoff`: a retry after that is a new request.
    pub async fn purge_idempotency_keys_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        Ok(idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::CreateTime.lt(cutoff))
            .exec(self.connection())
            .await?
            .rows_affected)
    }
}
