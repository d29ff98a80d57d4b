//! Batches: many items of one use case as ONE mutation of the writer.
//!
//! Each item runs the single-item use case (the same command struct and `run` as the single
//! RPC, so the same rules and events) in a nested savepoint of its own, inside a savepoint that
//! holds the whole batch, inside the writer's savepoint:
//!
//! - best effort: a failing item rolls its own savepoint back and keeps its error;
//! - atomic: the first failure stops the batch and rolls the whole batch back; that item keeps
//!   its error, every other item is ABORTED, naming it;
//! - validate only: every item runs, against the state the earlier items left, so conflicts
//!   between items show as a real run would show them; then the whole batch is rolled back.
//!
//! Items run in order, so their change events keep the items' order. An item's error is turned
//! into its answer by the caller's encoder (the api's one status mapping), so that a batch with a
//! `request_id` keeps its whole answer, item errors included, in its idempotency record.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::{DatabaseTransaction, TransactionTrait};

use super::Store;
use super::answers::Answer;
use super::idempotency::{IdempotencyKey, remember, replay, scope_of};
use super::telephony::Requester;
use super::writer::{Mutation, TxnFuture};
use crate::domain::DomainError;
use crate::domain::ids::{AccountId, UserId};
use crate::domain::user::{DisplayName, Email};
use crate::error::{Error, Result};

/// Turns an item's error into its encoded answer (the status the single RPC would give).
pub type EncodeError = fn(Error) -> Vec<u8>;

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// All or nothing.
    pub atomic: bool,
    /// A dry run: answered as a real run, nothing written.
    pub validate_only: bool,
    /// Makes the whole batch idempotent (with `fingerprint`, the request's content).
    pub request_id: Option<String>,
    /// Every input that changes the outcome, for a reused `request_id`.
    pub fingerprint: String,
    pub encode: EncodeError,
}

/// One item's answer: its encoded error, or the resource it produced. Kept for a retry in the
/// versioned form of [`super::answers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult<T> {
    /// The encoded error (base64), as the caller's encoder made it; `None` when the item succeeded.
    pub(super) error: Option<String>,
    pub(super) resource: Option<T>,
}

impl<T> ItemResult<T> {
    fn done(resource: T) -> Self {
        Self {
            error: None,
            resource: Some(resource),
        }
    }

    fn failed(encoded: &[u8]) -> Self {
        Self {
            error: Some(BASE64.encode(encoded)),
            resource: None,
        }
    }

    /// The resource, or the encoded error.
    pub fn into_result(self) -> std::result::Result<T, Vec<u8>> {
        match (self.error, self.resource) {
            (None, Some(resource)) => Ok(resource),
            (Some(error), _) => Err(BASE64.decode(error).unwrap_or_default()),
            (None, None) => Err(Vec::new()),
        }
    }
}

/// An item as the caller hands it over: the use case to run, or its already encoded refusal
/// (input or access refused before the store).
pub type BatchItem<M> = std::result::Result<M, Vec<u8>>;

/// The batch mutation.
pub(super) struct Batch<M: Mutation> {
    items: Vec<BatchItem<M>>,
    atomic: bool,
    validate_only: bool,
    idempotency: Option<IdempotencyKey>,
    encode: EncodeError,
}

impl<M> Mutation for Batch<M>
where
    M: Mutation,
    M::Output: Answer + Sync,
{
    type Output = Vec<ItemResult<M::Output>>;
    const APPENDS_CHANGES: bool = M::APPENDS_CHANGES;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Self::Output> {
        Box::pin(run_batch(txn, self))
    }
}

/// The error of an item not applied because item `failed` of its atomic batch failed.
fn aborted_by(failed: usize) -> Error {
    DomainError::Aborted(format!(
        "not applied: item {failed} of this atomic batch failed, so no item was applied"
    ))
    .into()
}

async fn run_batch<M>(
    txn: &DatabaseTransaction,
    batch: &Batch<M>,
) -> Result<Vec<ItemResult<M::Output>>>
where
    M: Mutation,
    M::Output: Answer + Sync,
{
    let key = batch.idempotency.as_ref();
    if let Some(previous) = replay(txn, key).await? {
        return Ok(previous);
    }
    // Everything the items write lives in this savepoint, so that it can go as a whole.
    let all = txn.begin().await?;
    let mut results = Vec::with_capacity(batch.items.len());
    let mut failed_at = None;
    for (index, item) in batch.items.iter().enumerate() {
        let command = match item {
            Ok(command) => command,
            Err(refusal) => {
                results.push(ItemResult::failed(refusal));
                if batch.atomic {
                    failed_at = Some(index);
                    break;
                }
                continue;
            }
        };
        let savepoint = all.begin().await?;
        match command.run(&savepoint).await {
            Ok(output) => {
                savepoint.commit().await?;
                results.push(ItemResult::done(output));
            }
            Err(error) => {
                savepoint.rollback().await?;
                results.push(ItemResult::failed(&(batch.encode)(error)));
                if batch.atomic {
                    failed_at = Some(index);
                    break;
                }
            }
        }
    }
    if let Some(failed) = failed_at {
        all.rollback().await?;
        // The failing item keeps its own error; every other item, run or not, is ABORTED.
        let own = results.pop();
        let aborted = (batch.encode)(aborted_by(failed));
        let mut answers: Vec<_> = (0..batch.items.len())
            .map(|_| ItemResult::failed(&aborted))
            .collect();
        if let Some(own) = own {
            answers[failed] = own;
        }
        return Ok(answers);
    }
    if batch.validate_only {
        all.rollback().await?;
        return Ok(results);
    }
    all.commit().await?;
    remember(txn, key, &results).await?;
    Ok(results)
}

impl Store {
    /// Runs `items` as one batch (see the module's doc); one answer per item, in item order.
    /// `operation` names the batch RPC in its idempotency record.
    pub(super) async fn run_batch<M>(
        &self,
        operation: &'static str,
        items: Vec<BatchItem<M>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<M::Output>>>
    where
        M: Mutation,
        M::Output: Answer + Sync,
    {
        // A dry run neither replays nor keeps an answer: it writes nothing. Nor does a batch
        // whose every item was refused before the store (e.g. a viewer's retry of an admin's
        // request): it gets its refusals, as the single RPCs would answer, not a stored answer.
        let any_runs = items.iter().any(Result::is_ok);
        let idempotency = match (&options.request_id, options.validate_only) {
            (Some(request_id), false) if any_runs => Some(IdempotencyKey {
                scope: scope_of(caller.account),
                request_id: request_id.clone(),
                operation,
                fingerprint: options.fingerprint,
            }),
            _ => None,
        };
        self.write(Batch {
            items,
            atomic: options.atomic,
            validate_only: options.validate_only,
            idempotency,
            encode: options.encode,
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The batch use cases: each item becomes the single use case's command.
// ---------------------------------------------------------------------------------------------

/// An item of BatchAssignPhoneNumbers.
#[derive(Debug, Clone)]
pub struct AssignItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub number: crate::domain::phone_number::E164,
}

/// An item of BatchUnassignPhoneNumbers.
#[derive(Debug, Clone)]
pub struct UnassignItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub confirm: bool,
}

/// An item of BatchUpdateTelephonySettings.
#[derive(Debug, Clone)]
pub struct SettingsItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub requested: crate::domain::telephony::TelephonySettings,
    pub mask: crate::domain::telephony::SettingsMask,
}

/// An item of BatchCreateUsers.
#[derive(Debug, Clone)]
pub struct NewUserItem {
    pub account_id: AccountId,
    pub email: Email,
    pub display_name: DisplayName,
    pub license_type: crate::domain::user::LicenseType,
}

/// An item of BatchUpdateUsers.
#[derive(Debug, Clone)]
pub struct UserUpdateItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub update: super::UserUpdate,
}

/// An item of BatchUpdatePhoneNumbers.
#[derive(Debug, Clone)]
pub struct NumberUpdateItem {
    pub number: crate::domain::phone_number::E164,
    pub update: super::NumberUpdate,
}

fn commands<I, M>(items: Vec<BatchItem<I>>, command: impl Fn(I) -> M) -> Vec<BatchItem<M>> {
    items.into_iter().map(|item| item.map(&command)).collect()
}

impl Store {
    pub async fn batch_assign_phone_numbers(
        &self,
        items: Vec<BatchItem<AssignItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::UserView>>> {
        let items = commands(items, |item| super::telephony::AssignPhoneNumber {
            caller_account: caller.account.map(str::to_owned),
            account_id: item.account_id,
            user_id: item.user_id,
            number: item.number,
            idempotency: None,
            actor: caller.key_id.to_owned(),
        });
        self.run_batch("BatchAssignPhoneNumbers", items, options, caller)
            .await
    }

    pub async fn batch_unassign_phone_numbers(
        &self,
        items: Vec<BatchItem<UnassignItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::UserView>>> {
        let items = commands(items, |item| super::telephony::UnassignPhoneNumber {
            account_id: item.account_id,
            user_id: item.user_id,
            confirm: item.confirm,
            idempotency: None,
            actor: caller.key_id.to_owned(),
        });
        self.run_batch("BatchUnassignPhoneNumbers", items, options, caller)
            .await
    }

    pub async fn batch_update_telephony_settings(
        &self,
        items: Vec<BatchItem<SettingsItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<crate::domain::telephony::TelephonySettings>>> {
        let items = commands(items, |item| super::telephony::UpdateTelephonySettings {
            account_id: item.account_id,
            user_id: item.user_id,
            requested: item.requested,
            mask: item.mask,
            idempotency: None,
            actor: caller.key_id.to_owned(),
        });
        self.run_batch("BatchUpdateTelephonySettings", items, options, caller)
            .await
    }

    pub async fn batch_create_users(
        &self,
        items: Vec<BatchItem<NewUserItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::UserView>>> {
        let items = commands(items, |item| super::users::CreateUser {
            account_id: item.account_id,
            email: item.email,
            display_name: item.display_name,
            license_type: item.license_type,
        });
        self.run_batch("BatchCreateUsers", items, options, caller)
            .await
    }

    pub async fn batch_update_users(
        &self,
        items: Vec<BatchItem<UserUpdateItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::UserView>>> {
        let items = commands(items, |item| super::users::UpdateUser {
            account_id: item.account_id,
            user_id: item.user_id,
            update: item.update,
        });
        self.run_batch("BatchUpdateUsers", items, options, caller)
            .await
    }

    pub async fn batch_update_phone_numbers(
        &self,
        items: Vec<BatchItem<NumberUpdateItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::NumberView>>> {
        let items = commands(items, |item| super::phone_numbers::UpdatePhoneNumber {
            number: item.number,
            update: item.update,
        });
        self.run_batch("BatchUpdatePhoneNumbers", items, options, caller)
            .await
    }

    pub async fn batch_delete_phone_numbers(
        &self,
        items: Vec<BatchItem<crate::domain::phone_number::E164>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::NumberView>>> {
        let period = self.deletion_queue_period();
        let items = commands(items, |number| super::phone_numbers::DeletePhoneNumber {
            e164: number.as_str().to_owned(),
            deletion_queue_period: period,
        });
        self.run_batch("BatchDeletePhoneNumbers", items, options, caller)
            .await
    }
}
