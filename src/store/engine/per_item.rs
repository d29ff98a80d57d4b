//! Batches whose use case runs item by item, each item in a savepoint of its own inside one
//! that holds the whole batch, with the same answers as a set use case's batch
//! (`set_run::SetBatch`): best effort, atomic, validate only.

use sea_orm::{DatabaseTransaction, TransactionTrait};

use super::answers::Answer;
use super::idempotency::{IdempotencyKey, remember, replay};
use super::mutation::{Mutation, TxnFuture};
use super::set_run::{BatchItem, EncodeError, ItemResult, aborted_by};
use crate::error::Result;

/// The batch mutation.
pub(crate) struct Batch<M: Mutation> {
    pub items: Vec<BatchItem<M>>,
    pub atomic: bool,
    pub validate_only: bool,
    pub idempotency: Option<IdempotencyKey>,
    pub encode: EncodeError,
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
