//! Set use cases and how they run: a single RPC as a set of one ([`SingleItem`]), a batch RPC
//! as a set of many ([`SetBatch`]).
//!
//! A set use case ([`SetUseCase`]) reads the state of all its items in a query or two, decides
//! each item in order against the state the earlier items left, and writes the successes with a
//! few set statements, so that a thousand items cost about as many statements as one. A batch
//! answers item by item:
//!
//! - best effort: a failing item changes nothing and keeps its error; the others are written;
//! - atomic: the first failure in item order keeps its error, and every other item is ABORTED,
//!   naming it; nothing is written;
//! - validate only: every item is decided as a real run would decide it, nothing is written.
//!
//! Items are decided in order, so their change events keep the items' order. An item's error is
//! turned into its answer by the caller's encoder (the api's one status mapping), so that a
//! batch with a `request_id` keeps its whole answer, item errors included, in its idempotency
//! record; a single request with a `request_id` keeps its answer the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::DatabaseTransaction;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answers::Answer;
use super::idempotency::{IdempotencyKey, remember, replay};
use super::mutation::{Mutation, TxnFuture};
use crate::domain::DomainError;
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
/// versioned form of `engine::answers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult<T> {
    /// The encoded error (base64), as the caller's encoder made it; `None` when the item succeeded.
    pub(crate) error: Option<String>,
    pub(crate) resource: Option<T>,
}

impl<T> ItemResult<T> {
    pub(crate) fn done(resource: T) -> Self {
        Self {
            error: None,
            resource: Some(resource),
        }
    }

    pub(crate) fn failed(encoded: &[u8]) -> Self {
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

/// The error of an item not applied because item `failed` of its atomic batch failed.
pub(crate) fn aborted_by(failed: usize) -> Error {
    DomainError::Aborted(format!(
        "not applied: item {failed} of this atomic batch failed, so no item was applied"
    ))
    .into()
}

/// What a set use case does with the items it decided ([`SetUseCase::run_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apply {
    /// Writes the items that succeed; the others change nothing.
    Successes,
    /// Writes every item if every item succeeds, else nothing.
    AllOrNothing,
    /// Writes nothing: a dry run, or a batch already known to fail.
    Nothing,
}

impl Apply {
    /// Whether items that were decided, `failed` of them without success, are written.
    pub(crate) fn writes(self, decided: usize, failed: usize) -> bool {
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
pub(crate) trait SetUseCase: PartialEq + Send + Sync + 'static {
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

/// A set use case's single RPC: its one item, idempotent with a `request_id`.
pub(crate) struct SingleItem<U: SetUseCase> {
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

/// A batch of a [`SetUseCase`].
pub(crate) struct SetBatch<U: SetUseCase> {
    pub use_case: U,
    pub items: Vec<BatchItem<U::Item>>,
    pub atomic: bool,
    pub validate_only: bool,
    pub idempotency: Option<IdempotencyKey>,
    pub encode: EncodeError,
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
pub(crate) fn batch_key<M>(
    operation: &'static str,
    items: &[BatchItem<M>],
    options: &BatchOptions,
    scope: String,
) -> Option<IdempotencyKey> {
    let any_runs = items.iter().any(Result::is_ok);
    match (&options.request_id, options.validate_only) {
        (Some(request_id), false) if any_runs => Some(IdempotencyKey {
            scope,
            request_id: request_id.clone(),
            operation,
            fingerprint: options.fingerprint.clone(),
        }),
        _ => None,
    }
}

/// One item of a batch's answer, as stored: the item's encoded error (base64) or its resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredItem<S> {
    error: Option<String>,
    resource: Option<S>,
}

impl<T: Answer> Answer for Vec<ItemResult<T>> {
    type Stored = Vec<StoredItem<T::Stored>>;

    fn visit_sequences(&mut self, visit: &mut dyn FnMut(&mut u64)) {
        for resource in self.iter_mut().filter_map(|item| item.resource.as_mut()) {
            resource.visit_sequences(visit);
        }
    }

    fn to_stored(&self) -> Self::Stored {
        self.iter()
            .map(|item| StoredItem {
                error: item.error.clone(),
                resource: item.resource.as_ref().map(Answer::to_stored),
            })
            .collect()
    }

    fn from_stored(stored: Self::Stored) -> Option<Self> {
        stored
            .into_iter()
            .map(|item| {
                Some(ItemResult {
                    error: item.error,
                    resource: match item.resource {
                        Some(resource) => Some(T::from_stored(resource)?),
                        None => None,
                    },
                })
            })
            .collect()
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        // Each resource in the unversioned form of its own kind.
        serde_json::from_value::<Vec<StoredItem<Value>>>(value)
            .ok()?
            .into_iter()
            .map(|item| {
                Some(ItemResult {
                    error: item.error,
                    resource: match item.resource {
                        Some(resource) => Some(T::from_unversioned(resource)?),
                        None => None,
                    },
                })
            })
            .collect()
    }
}
