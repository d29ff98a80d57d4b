//! Idempotent mutations: the first result of a request that carried a `request_id` is kept in
//! the same transaction as its change, and a retry with that id gets it back unchanged.
//!
//! Records are kept per tenant (the caller's account, or the organisation): a `request_id` that
//! another tenant happens to use is a different request. The fingerprint holds every input that
//! changes the outcome, so a reused id with different input is refused, not answered with the
//! first result. Only successes are kept: a refused request rolls its savepoint back, record and
//! all, so a corrected retry with the same id is decided afresh.
//!
//! Two retries may run in the same write batch, one after the other: the second finds the
//! record the first wrote in its (released) savepoint.

use super::answers::{self, Answer};
use super::mutation::{Mutation, TxnFuture};
use crate::domain::DomainError;
use crate::domain::ids::RequestId;
use crate::error::{Error, Result};
use crate::store::db::entities::idempotency_record;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, Set, Statement,
};

/// Records deleted per purge mutation, so that a purge never holds the writer for long.
pub(crate) const PURGE_CHUNK: u64 = 1000;

/// What identifies one idempotent request: its tenant and id, the operation and the request's
/// content.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyKey {
    /// See [`scope_of`].
    pub scope: String,
    pub request_id: RequestId,
    pub operation: &'static str,
    pub fingerprint: String,
}

/// The tenant whose records a caller reads and writes: its account, or the organisation.
pub(crate) fn scope_of(account: Option<&str>) -> String {
    match account {
        Some(account_id) => format!("account/{account_id}"),
        None => "organisation".to_owned(),
    }
}

/// Inside `txn`: the stored result of an earlier request with the same id, if any. On
/// PostgreSQL the id is locked first so that concurrent retries (on any replica) wait for the
/// first one.
pub(crate) async fn replay<T: Answer>(
    txn: &DatabaseTransaction,
    key: Option<&IdempotencyKey>,
) -> Result<Option<T>> {
    let Some(key) = key else { return Ok(None) };
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("{}/{}", key.scope, key.request_id).into()],
        ))
        .await?;
    }
    let Some(stored) =
        idempotency_record::Entity::find_by_id((key.scope.clone(), key.request_id.to_string()))
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
    match answers::decode(&stored.response) {
        Ok(answer) => Ok(Some(answer)),
        Err(why) => {
            // Deciding afresh could apply the request twice: the request took effect, and the
            // caller is told so.
            tracing::warn!(scope = %key.scope, request_id = %key.request_id, %why, "stored idempotent answer unreadable");
            Err(DomainError::precondition(
                "REQUEST_ID_ANSWER_UNREADABLE",
                key.request_id.as_str(),
                format!(
                    "request_id {} was already used for this request and it took effect, but its answer was stored by another version of the service and cannot be replayed; read the current state instead of retrying",
                    key.request_id
                ),
            )
            .into())
        }
    }
}

/// Inside `txn`: keeps `response` as the result of the request.
pub(crate) async fn remember<T: Answer>(
    txn: &DatabaseTransaction,
    key: Option<&IdempotencyKey>,
    response: &T,
) -> Result<()> {
    let Some(key) = key else { return Ok(()) };
    let response = answers::encode(response)
        .map_err(|e| Error::Internal(format!("response not storable: {e}")))?;
    idempotency_record::ActiveModel {
        scope: Set(key.scope.clone()),
        request_id: Set(key.request_id.to_string()),
        operation: Set(key.operation.to_owned()),
        fingerprint: Set(key.fingerprint.clone()),
        response: Set(response),
        create_time: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Deletes up to [`PURGE_CHUNK`] records created before `cutoff`.
pub(crate) struct PurgeIdempotencyKeys {
    pub cutoff: DateTime<Utc>,
}

impl Mutation for PurgeIdempotencyKeys {
    type Output = u64;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, u64> {
        Box::pin(async move {
            use idempotency_record::Column;
            // Served by the index on create_time (migration m0006).
            let expired: Vec<(String, String)> = idempotency_record::Entity::find()
                .select_only()
                .column(Column::Scope)
                .column(Column::RequestId)
                .filter(Column::CreateTime.lt(self.cutoff))
                .limit(PURGE_CHUNK)
                .into_tuple()
                .all(txn)
                .await?;
            if expired.is_empty() {
                return Ok(0);
            }
            let keys = expired
                .into_iter()
                .map(|(scope, request_id)| ValueTuple::Two(scope.into(), request_id.into()));
            Ok(idempotency_record::Entity::delete_many()
                .filter(
                    Expr::tuple([Expr::col(Column::Scope), Expr::col(Column::RequestId)])
                        .in_tuples(keys),
                )
                .exec(txn)
                .await?
                .rows_affected)
        })
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::TransactionTrait;

    use super::*;
    use crate::domain::telephony::TelephonySettings;
    use crate::store::{Store, StoreOptions};

    fn key() -> IdempotencyKey {
        IdempotencyKey {
            scope: scope_of(None),
            request_id: RequestId::from_stored("6f9619ff-8b86-d011-b42d-00c04fc964ff".into()),
            operation: "UpdateTelephonySettings",
            fingerprint: "f".into(),
        }
    }

    async fn store_with_record(response: &str) -> Store {
        let store = Store::connect("sqlite::memory:", StoreOptions::default())
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let key = key();
        idempotency_record::ActiveModel {
            scope: Set(key.scope),
            request_id: Set(key.request_id.to_string()),
            operation: Set(key.operation.to_owned()),
            fingerprint: Set(key.fingerprint),
            response: Set(response.to_owned()),
            create_time: Set(Utc::now()),
        }
        .insert(store.connection())
        .await
        .expect("record");
        store
    }

    #[tokio::test]
    async fn a_retry_gets_the_stored_answer_back() {
        let settings = TelephonySettings {
            sms: true,
            ..TelephonySettings::OFF
        };
        let store = store_with_record(&answers::encode(&settings).unwrap()).await;
        let txn = store.connection().begin().await.unwrap();
        let replayed = replay::<TelephonySettings>(&txn, Some(&key())).await;
        assert_eq!(replayed.unwrap(), Some(settings));
    }

    #[tokio::test]
    async fn an_answer_stored_in_an_unknown_version_is_a_failed_precondition_not_a_panic() {
        let store = store_with_record(r#"{"version":99,"answer":{"sms":true}}"#).await;
        let txn = store.connection().begin().await.unwrap();
        match replay::<TelephonySettings>(&txn, Some(&key())).await {
            Err(Error::Domain(DomainError::FailedPrecondition {
                reason, message, ..
            })) => {
                assert_eq!(reason, "REQUEST_ID_ANSWER_UNREADABLE");
                assert!(message.contains("took effect"), "{message}");
            }
            other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
        }
    }
}
