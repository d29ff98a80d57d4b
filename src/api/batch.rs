//! The batch RPCs' shared part: the request's limits and options, each item's refusal kept as
//! its record ([`Refusal`]) and answered as the `google.rpc.Status` its single RPC would give
//! (through [`super::status`], the one mapping), and the results in item order. Each service's
//! handlers are in its own `batch` submodule (e.g. [`super::telephony::batch`]), which uses this
//! one.
//!
//! Authentication, the number of items and the `request_id` concern the whole request; every
//! other check (role, ids, the key's scope, the item's fields) is the single RPC's, made per
//! item, so that one bad item never stops the others.

use prost::Message;
use sha2::{Digest, Sha256};
use tonic_types::pb;

use super::ApiContext;
use super::caller::Caller;
use super::status::refusal_status;
use crate::domain::{DomainError, Refusal};
use crate::error::Result;
use crate::store::{BatchItem, BatchOptions, ItemRefusal, ItemResult};

/// The options of a batch request of `count` items in `field`, after its whole-request checks;
/// the batch is charged `count` tokens of the caller's rate limit.
pub fn options<R: Message>(
    context: &ApiContext,
    caller: &Caller,
    request: &R,
    field: &str,
    count: usize,
    flags: (bool, bool),
    request_id: &str,
) -> Result<BatchOptions> {
    let max = context.limits.max_batch_items;
    if count == 0 {
        return Err(DomainError::invalid(field, "must hold at least one item").into());
    }
    if count > max {
        return Err(DomainError::invalid(
            field,
            format!("holds {count} items; a batch holds at most {max}: split it"),
        )
        .into());
    }
    let request_id = super::request_id(request_id)?;
    context.auth.charge(caller, count, field)?;
    let (validate_only, atomic) = flags;
    Ok(BatchOptions {
        atomic,
        validate_only,
        request_id,
        // The whole request (its id included, which changes nothing for a retry).
        fingerprint: hex::encode(Sha256::digest(request.encode_to_vec())),
    })
}

/// A status as `google.rpc.Status`: the details the mapping attached already are one.
fn rpc_status(status: &tonic::Status) -> pb::Status {
    if !status.details().is_empty()
        && let Ok(decoded) = pb::Status::decode(status.details())
    {
        return decoded;
    }
    pb::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    }
}

/// An item checked before the store: its use case's input, or its refusal.
pub fn item<T>(checked: Result<T>) -> BatchItem<T> {
    checked.map_err(Refusal::from)
}

/// One result per item, in item order: `(index, status, resource when it succeeded)`.
pub fn results<T, R, M>(
    answers: Vec<ItemResult<T>>,
    convert: impl Fn(T) -> R,
    build: impl Fn(i32, Option<pb::Status>, Option<R>) -> M,
) -> Vec<M> {
    answers
        .into_iter()
        .enumerate()
        .map(|(index, answer)| {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            match answer {
                ItemResult::Done(resource) => {
                    build(index, Some(pb::Status::default()), Some(convert(resource)))
                }
                ItemResult::Refused(ItemRefusal::Record(refusal)) => {
                    build(index, Some(rpc_status(&refusal_status(&refusal))), None)
                }
                // Kept by an earlier version of the service, already encoded.
                ItemResult::Refused(ItemRefusal::Encoded(encoded)) => {
                    let status = pb::Status::decode(encoded.as_slice())
                        .unwrap_or_else(|_| rpc_status(&tonic::Status::internal("internal error")));
                    build(index, Some(status), None)
                }
            }
        })
        .collect()
}

/// A `BatchUserResult`: the answer shape of every batch whose items return a user.
pub fn user_result(
    index: i32,
    status: Option<pb::Status>,
    user: Option<crate::proto::User>,
) -> crate::proto::BatchUserResult {
    crate::proto::BatchUserResult {
        index,
        status,
        user,
    }
}
