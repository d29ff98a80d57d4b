//! `PhoneNumberService`'s batches: change numbers and queue them for deletion, item by item as
//! the single RPCs do (organisation admin keys only, as those).

use tonic::{Request, Response, Status};

use crate::api::batch::{item, options, results};
use crate::api::requests::number_update;
use crate::api::{ApiContext, caller::Caller, convert};
use crate::domain::phone_number::E164;
use crate::error::Result as AppResult;
use crate::proto;
use crate::store::NumberUpdateItem;

/// The single RPCs' access rule for changing the inventory.
fn may_change_inventory(caller: &Caller) -> AppResult<()> {
    caller.require_admin()?;
    caller.require_organisation()
}

fn number_result(
    index: i32,
    status: Option<tonic_types::pb::Status>,
    phone_number: Option<proto::PhoneNumber>,
) -> proto::BatchPhoneNumberResult {
    proto::BatchPhoneNumberResult {
        index,
        status,
        phone_number,
    }
}

pub async fn update(
    context: &ApiContext,
    request: Request<proto::BatchUpdatePhoneNumbersRequest>,
) -> Result<Response<proto::BatchUpdatePhoneNumbersResponse>, Status> {
    let caller = context.auth.identify(&request).await?;
    let req = request.get_ref();
    let options = options(
        context,
        &caller,
        req,
        "items",
        req.items.len(),
        (req.validate_only, req.atomic),
        &req.request_id,
    )?;
    let items = req
        .items
        .iter()
        .map(|i| {
            item((|| {
                may_change_inventory(&caller)?;
                let (number, update) = number_update(
                    &i.phone_number_id,
                    i.product_type,
                    &i.calling_name,
                    i.update_mask.as_ref(),
                )?;
                Ok(NumberUpdateItem { number, update })
            })())
        })
        .collect();
    let answers = context
        .store
        .inventory()
        .batch_update(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of number changes");
    Ok(Response::new(proto::BatchUpdatePhoneNumbersResponse {
        results: results(answers, convert::phone_number, number_result),
    }))
}

pub async fn delete(
    context: &ApiContext,
    request: Request<proto::BatchDeletePhoneNumbersRequest>,
) -> Result<Response<proto::BatchDeletePhoneNumbersResponse>, Status> {
    let caller = context.auth.identify(&request).await?;
    let req = request.get_ref();
    let options = options(
        context,
        &caller,
        req,
        "phone_number_ids",
        req.phone_number_ids.len(),
        (req.validate_only, req.atomic),
        &req.request_id,
    )?;
    let items = req
        .phone_number_ids
        .iter()
        .map(|id| {
            item((|| {
                may_change_inventory(&caller)?;
                Ok(E164::parse("phone_number_id", id)?)
            })())
        })
        .collect();
    let answers = context
        .store
        .inventory()
        .batch_delete(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of number deletions");
    Ok(Response::new(proto::BatchDeletePhoneNumbersResponse {
        results: results(answers, convert::phone_number, number_result),
    }))
}
