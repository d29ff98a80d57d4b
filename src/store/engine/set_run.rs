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
//! Items are decided in order, so their change events keep the items' order. An item's error
//! becomes its [`Refusal`] (the record of what its single RPC would answer), so that a batch with
//! a `request_id` keeps its whole answer, refusals included, in its idempotency record; a single
//! request with a `request_id` keeps its answer the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answers::Answer;
use super::idempotency::{IdempotencyKey, remember, replay};
use super::mutation::{Mutation, TxnFuture};
use crate::domain::ids::RequestId;
use crate::domain::{DomainError, FieldViolation, Refusal, RefusalDetail, RefusalKind};
use crate::error::{Error, Result};

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// All or nothing.
    pub atomic: bool,
    /// A dry run: answered as a real run, nothing written.
    pub validate_only: bool,
    /// Makes the whole batch idempotent (with `fingerprint`, the request's content).
    pub request_id: Option<RequestId>,
    /// Every input that changes the outcome, for a reused `request_id`.
    pub fingerprint: String,
}

/// One item's answer: the resource it produced, or its refusal. Kept for a retry in the
/// versioned form below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult<T> {
    Done(T),
    Refused(ItemRefusal),
}

/// Why an item was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemRefusal {
    /// The record of what the item's single RPC would have answered.
    Record(Refusal),
    /// An answer kept by an earlier version of the service, which stored the refusal as an
    /// encoded `google.rpc.Status`: handed on as it was kept.
    Encoded(Vec<u8>),
}

impl<T> ItemResult<T> {
    fn refused(refusal: Refusal) -> Self {
        Self::Refused(ItemRefusal::Record(refusal))
    }

    fn is_refused(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

/// An item as the caller hands it over: the use case's input, or its refusal (input or access
/// refused before the store).
pub type BatchItem<M> = std::result::Result<M, Refusal>;

/// The refusal of an item not applied because item `failed` of its atomic batch failed.
pub(crate) fn aborted_by(failed: usize) -> Refusal {
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
            Err(refusal) => ItemResult::refused(refusal.clone()),
            Ok(_) => match outcomes.next() {
                Some(Ok(output)) => ItemResult::Done(output),
                Some(Err(error)) => ItemResult::refused(error.into()),
                None => return Err(Error::Internal("a batch item has no outcome".into())),
            },
        });
    }
    if batch.atomic
        && let Some(failed) = results.iter().position(ItemResult::is_refused)
    {
        return Ok(atomic_failure(results, failed));
    }
    if !batch.validate_only {
        remember(txn, key, &results).await?;
    }
    Ok(results)
}

/// The answers of an atomic batch whose item `failed` failed: that item keeps its own refusal,
/// every other item is ABORTED, naming it.
pub(crate) fn atomic_failure<T>(
    mut results: Vec<ItemResult<T>>,
    failed: usize,
) -> Vec<ItemResult<T>> {
    let aborted = aborted_by(failed);
    let own = std::mem::replace(&mut results[failed], ItemResult::refused(aborted.clone()));
    let mut answers: Vec<_> = (0..results.len())
        .map(|_| ItemResult::refused(aborted.clone()))
        .collect();
    answers[failed] = own;
    answers
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

/// One item of a batch's answer, as stored (version 2): its resource, or its refusal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredItem<S> {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refusal: Option<StoredRefusal>,
    /// A refusal replayed from an answer of version 1, as it was kept there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoded: Option<String>,
}

/// A refusal as stored: the kind by its gRPC code name, and the details of its kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRefusal {
    kind: String,
    message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    violations: Vec<StoredViolation>,
    /// NOT_FOUND, ALREADY_EXISTS: the resource's type and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<(String, String)>,
    /// FAILED_PRECONDITION: the reason and its subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precondition: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredViolation {
    field: String,
    description: String,
}

impl From<&Refusal> for StoredRefusal {
    fn from(r: &Refusal) -> Self {
        let mut stored = Self {
            kind: r.kind.as_str().to_owned(),
            message: r.message.clone(),
            violations: Vec::new(),
            resource: None,
            precondition: None,
        };
        match &r.detail {
            RefusalDetail::None => {}
            RefusalDetail::Violations(violations) => {
                stored.violations = violations
                    .iter()
                    .map(|v| StoredViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            }
            RefusalDetail::Resource { resource, name } => {
                stored.resource = Some((resource.clone(), name.clone()))
            }
            RefusalDetail::Precondition { reason, subject } => {
                stored.precondition = Some((reason.clone(), subject.clone()))
            }
        }
        stored
    }
}

impl StoredRefusal {
    fn into_refusal(self) -> Option<Refusal> {
        let detail = match (self.violations.is_empty(), self.resource, self.precondition) {
            (true, None, None) => RefusalDetail::None,
            (false, None, None) => RefusalDetail::Violations(
                self.violations
                    .into_iter()
                    .map(|v| FieldViolation::new(v.field, v.description))
                    .collect(),
            ),
            (true, Some((resource, name)), None) => RefusalDetail::Resource { resource, name },
            (true, None, Some((reason, subject))) => {
                RefusalDetail::Precondition { reason, subject }
            }
            _ => return None,
        };
        Some(Refusal {
            kind: RefusalKind::from_name(&self.kind)?,
            message: self.message,
            detail,
        })
    }
}

/// One item as version 1 (and the unversioned form before it) kept it: the refusal as a
/// base64 `google.rpc.Status`, or the resource.
#[derive(Debug, Clone, Deserialize)]
struct EncodedItem<S> {
    error: Option<String>,
    resource: Option<S>,
}

impl<S> EncodedItem<S> {
    fn into_result<T>(self, resource: impl FnOnce(S) -> Option<T>) -> Option<ItemResult<T>> {
        match (self.error, self.resource) {
            (Some(error), _) => Some(ItemResult::Refused(ItemRefusal::Encoded(
                BASE64.decode(error).ok()?,
            ))),
            (None, Some(found)) => Some(ItemResult::Done(resource(found)?)),
            (None, None) => None,
        }
    }
}

impl<T: Answer> Answer for Vec<ItemResult<T>> {
    /// Version 2 keeps refusals as records; version 1 kept them encoded.
    const VERSION: u64 = 2;
    type Stored = Vec<StoredItem<T::Stored>>;

    fn visit_sequences(&mut self, visit: &mut dyn FnMut(&mut u64)) {
        for item in self.iter_mut() {
            if let ItemResult::Done(resource) = item {
                resource.visit_sequences(visit);
            }
        }
    }

    fn to_stored(&self) -> Self::Stored {
        self.iter()
            .map(|item| match item {
                ItemResult::Done(resource) => StoredItem {
                    resource: Some(resource.to_stored()),
                    refusal: None,
                    encoded: None,
                },
                ItemResult::Refused(ItemRefusal::Record(refusal)) => StoredItem {
                    resource: None,
                    refusal: Some(refusal.into()),
                    encoded: None,
                },
                ItemResult::Refused(ItemRefusal::Encoded(status)) => StoredItem {
                    resource: None,
                    refusal: None,
                    encoded: Some(BASE64.encode(status)),
                },
            })
            .collect()
    }

    fn from_stored(stored: Self::Stored) -> Option<Self> {
        stored
            .into_iter()
            .map(|item| match (item.resource, item.refusal, item.encoded) {
                (Some(resource), None, None) => Some(ItemResult::Done(T::from_stored(resource)?)),
                (None, Some(refusal), None) => Some(ItemResult::refused(refusal.into_refusal()?)),
                (None, None, Some(status)) => Some(ItemResult::Refused(ItemRefusal::Encoded(
                    BASE64.decode(status).ok()?,
                ))),
                _ => None,
            })
            .collect()
    }

    fn from_earlier(version: u64, value: Value) -> Option<Self> {
        if version != 1 {
            return None;
        }
        serde_json::from_value::<Vec<EncodedItem<T::Stored>>>(value)
            .ok()?
            .into_iter()
            .map(|item| item.into_result(T::from_stored))
            .collect()
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        // Each resource in the unversioned form of its own kind.
        serde_json::from_value::<Vec<EncodedItem<Value>>>(value)
            .ok()?
            .into_iter()
            .map(|item| item.into_result(T::from_unversioned))
            .collect()
    }
}
