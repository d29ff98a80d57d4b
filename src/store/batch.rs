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
//! Assignments, unassignments, permission changes and new users, the bulk work of imports and
//! re-numberings, are set use cases instead ([`SetUseCase`]: `store::assignment`,
//! `store::permissions`, `store::new_users`): every item
//! is decided in order against the state the earlier items left, then the successes are written
//! with a few set statements, so that a thousand items cost about as many statements as one.
//! The answers are the same: best effort, atomic and dry runs are shaped by [`SetBatch`] as
//! above.
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

    fn visit_sequences(output: &mut Self::Output, visit: &mut dyn FnMut(&mut u64)) {
        output.visit_sequences(visit);
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

/// What a set use case does with the items it decided ([`SetUseCase::run_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Apply {
    /// Writes the items that succeed; the others change nothing.
    Successes,
    /// Writes every item if every item succeeds, else nothing.
    AllOrNothing,
    /// Writes nothing: a dry run, or a batch already known to fail.
    Nothing,
}

impl Apply {
    /// Whether items that were decided, `failed` of them without success, are written.
    pub(super) fn writes(self, decided: usize, failed: usize) -> bool {
        match self {
            Apply::Successes => failed < decided,
            Apply::AllOrNothing => decided > 0 && failed == 0,
            Apply::Nothing => false,
        }
    }
}

/// A use case that takes its items as a set: it reads the state of every item in a few queries,
/// decides each item in order against the state the earlier items left (so that two items
/// assigning one number conflict as two requests would), then writes the successes with a few
/// set statements. One item or a thousand cost about the same number of statements. Its single
/// RPC is the same use case with one item, and single RPCs waiting together for the writer are
/// joined into one run when their use cases are equal (the same caller: see
/// `Mutation::joins`).
pub(super) trait SetUseCase: PartialEq + Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    const APPENDS_CHANGES: bool;

    /// One outcome per item, in item order. An `Err` of the whole call (a database error, a
    /// lost race) means nothing of it stands; the writer rolls its savepoint back.
    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a Self::Item>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<Self::Output>>>;
}

/// Ids per `IN (…)` list and rows per set statement of a set use case: a CASE binds two values
/// per row and a multi-row INSERT up to 14, so this stays far below SQLite's and PostgreSQL's
/// limits on bound values.
pub(super) const SET_CHUNK: usize = 500;

/// The values in first-seen order, without repeats.
pub(super) fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    values.filter(|value| seen.insert(*value)).collect()
}

/// A set use case's single RPC: its one item, idempotent with a `request_id`.
pub(super) struct SingleItem<U: SetUseCase> {
    pub use_case: U,
    pub item: U::Item,
    pub idempotency: Option<IdempotencyKey>,
}

impl<U> Mutation for SingleItem<U>
where
    U: SetUseCase,
    U::Output: Answer + Sync,
{
    type Output = U::Output;
    const APPENDS_CHANGES: bool = U::APPENDS_CHANGES;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Self::Output> {
        Box::pin(run_single(txn, self))
    }

    fn visit_sequences(output: &mut Self::Output, visit: &mut dyn FnMut(&mut u64)) {
        output.visit_sequences(visit);
    }

    /// Single requests of one caller without a `request_id` (a kept answer is per request).
    fn joins(&self, other: &Self) -> bool {
        self.idempotency.is_none() && other.idempotency.is_none() && self.use_case == other.use_case
    }

    fn run_together<'a>(
        all: Vec<&'a Self>,
        txn: &'a DatabaseTransaction,
    ) -> TxnFuture<'a, Vec<Result<Self::Output>>> {
        Box::pin(async move {
            let use_case = &all
                .first()
                .ok_or_else(|| Error::Internal("an empty joined run".into()))?
                .use_case;
            let items = all.iter().map(|single| &single.item).collect();
            use_case.run_all(txn, items, Apply::Successes).await
        })
    }
}

async fn run_single<U>(txn: &DatabaseTransaction, single: &SingleItem<U>) -> Result<U::Output>
where
    U: SetUseCase,
    U::Output: Answer + Sync,
{
    let key = single.idempotency.as_ref();
    if let Some(previous) = replay(txn, key).await? {
        return Ok(previous);
    }
    let result = single
        .use_case
        .run_all(txn, vec![&single.item], Apply::Successes)
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("a use case of one item has no outcome".into()))??;
    remember(txn, key, &result).await?;
    Ok(result)
}

/// A batch of a [`SetUseCase`]: the same answers as [`Batch`] would give, in a few statements.
pub(super) struct SetBatch<U: SetUseCase> {
    use_case: U,
    items: Vec<BatchItem<U::Item>>,
    atomic: bool,
    validate_only: bool,
    idempotency: Option<IdempotencyKey>,
    encode: EncodeError,
}

impl<U> Mutation for SetBatch<U>
where
    U: SetUseCase,
    U::Output: Answer + Sync,
{
    type Output = Vec<ItemResult<U::Output>>;
    const APPENDS_CHANGES: bool = U::APPENDS_CHANGES;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Self::Output> {
        Box::pin(run_set_batch(txn, self))
    }

    fn visit_sequences(output: &mut Self::Output, visit: &mut dyn FnMut(&mut u64)) {
        output.visit_sequences(visit);
    }
}

async fn run_set_batch<U>(
    txn: &DatabaseTransaction,
    batch: &SetBatch<U>,
) -> Result<Vec<ItemResult<U::Output>>>
where
    U: SetUseCase,
    U::Output: Answer + Sync,
{
    let key = batch.idempotency.as_ref();
    if let Some(previous) = replay(txn, key).await? {
        return Ok(previous);
    }
    let refused = batch.items.iter().any(Result::is_err);
    let apply = match (batch.validate_only, batch.atomic) {
        (true, _) => Apply::Nothing,
        // An atomic batch with a refused item applies nothing; the others are still decided,
        // so that the first failure in item order is the one named.
        (false, true) if refused => Apply::Nothing,
        (false, true) => Apply::AllOrNothing,
        (false, false) => Apply::Successes,
    };
    let runnable = batch.items.iter().filter_map(|item| item.as_ref().ok());
    let mut outcomes = batch
        .use_case
        .run_all(txn, runnable.collect(), apply)
        .await?
        .into_iter();
    let mut results = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        results.push(match item {
            Err(refusal) => ItemResult::failed(refusal),
            Ok(_) => match outcomes.next() {
                Some(Ok(output)) => ItemResult::done(output),
                Some(Err(error)) => ItemResult::failed(&(batch.encode)(error)),
                None => return Err(Error::Internal("a batch item has no outcome".into())),
            },
        });
    }
    if batch.atomic
        && let Some(failed) = results.iter().position(|result| result.error.is_some())
    {
        // The failing item keeps its own error; every other item is ABORTED, naming it.
        let aborted = (batch.encode)(aborted_by(failed));
        let own = std::mem::replace(&mut results[failed], ItemResult::failed(&aborted));
        let mut answers: Vec<_> = (0..results.len())
            .map(|_| ItemResult::failed(&aborted))
            .collect();
        answers[failed] = own;
        return Ok(answers);
    }
    if !batch.validate_only {
        remember(txn, key, &results).await?;
    }
    Ok(results)
}

/// The idempotency record of a batch: none for a dry run (it writes nothing) or for a batch
/// whose every item was refused before the store (e.g. a viewer's retry of an admin's request):
/// that one gets its refusals, as the single RPCs would answer, not a stored answer.
fn batch_key<M>(
    operation: &'static str,
    items: &[BatchItem<M>],
    options: &BatchOptions,
    caller: Requester<'_>,
) -> Option<IdempotencyKey> {
    let any_runs = items.iter().any(Result::is_ok);
    match (&options.request_id, options.validate_only) {
        (Some(request_id), false) if any_runs => Some(IdempotencyKey {
            scope: scope_of(caller.account),
            request_id: request_id.clone(),
            operation,
            fingerprint: options.fingerprint.clone(),
        }),
        _ => None,
    }
}

impl Store {
    /// Runs `items` as one batch of the set use case `use_case`: the same answers as
    /// [`Store::run_batch`], in a few statements.
    pub(super) async fn run_set_batch<U>(
        &self,
        operation: &'static str,
        use_case: U,
        items: Vec<BatchItem<U::Item>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<U::Output>>>
    where
        U: SetUseCase,
        U::Output: Answer + Sync,
    {
        let idempotency = batch_key(operation, &items, &options, caller);
        self.write(SetBatch {
            use_case,
            items,
            atomic: options.atomic,
            validate_only: options.validate_only,
            idempotency,
            encode: options.encode,
        })
        .await
    }
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
        let idempotency = batch_key(operation, &items, &options, caller);
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
        let use_case = super::assignment::AssignNumbers {
            caller_account: caller.account.map(str::to_owned),
            actor: caller.key_id.to_owned(),
        };
        self.run_set_batch("BatchAssignPhoneNumbers", use_case, items, options, caller)
            .await
    }

    pub async fn batch_unassign_phone_numbers(
        &self,
        items: Vec<BatchItem<UnassignItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::UserView>>> {
        let use_case = super::assignment::UnassignNumbers {
            actor: caller.key_id.to_owned(),
        };
        self.run_set_batch(
            "BatchUnassignPhoneNumbers",
            use_case,
            items,
            options,
            caller,
        )
        .await
    }

    pub async fn batch_update_telephony_settings(
        &self,
        items: Vec<BatchItem<SettingsItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<crate::domain::telephony::TelephonySettings>>> {
        let use_case = super::permissions::UpdateSettings {
            actor: caller.key_id.to_owned(),
        };
        self.run_set_batch(
            "BatchUpdateTelephonySettings",
            use_case,
            items,
            options,
            caller,
        )
        .await
    }

    pub async fn batch_create_users(
        &self,
        items: Vec<BatchItem<NewUserItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<super::UserView>>> {
        self.run_set_batch(
            "BatchCreateUsers",
            super::new_users::CreateUsers,
            items,
            options,
            caller,
        )
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
