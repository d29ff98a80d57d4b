//! `TelephonyService`'s batches: assign, unassign, and change permissions, item by item as the
//! single RPCs do.

use tonic::{Request, Response, Status};

use crate::api::batch::{item, options, results, user_result};
use crate::api::requests::{optional_location, settings_change};
use crate::api::{Access, ApiContext, authorise_target, convert};
use crate::domain::phone_number::E164;
use crate::proto;
use crate::store::{AssignItem, SettingsItem, UnassignItem};

pub async fn assign(
    context: &ApiContext,
    request: Request<proto::BatchAssignPhoneNumbersRequest>,
) -> Result<Response<proto::BatchAssignPhoneNumbersResponse>, Status> {
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
                let target = authorise_target(&caller, Access::Write, &req.account_id, &i.user_id)?;
                let number = E164::parse("e164_phone_number", &i.e164_phone_number)?;
                Ok(AssignItem {
                    account_id: target.account_id,
                    user_id: target.user_id,
                    number,
                    emergency_location: optional_location(&i.emergency_location_id)?,
                })
            })())
        })
        .collect();
    let answers = context
        .store
        .telephony()
        .batch_assign(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of assignments");
    Ok(Response::new(proto::BatchAssignPhoneNumbersResponse {
        results: results(answers, convert::user, user_result),
    }))
}

pub async fn unassign(
    context: &ApiContext,
    request: Request<proto::BatchUnassignPhoneNumbersRequest>,
) -> Result<Response<proto::BatchUnassignPhoneNumbersResponse>, Status> {
    let caller = context.auth.identify(&request).await?;
    let req = request.get_ref();
    let options = options(
        context,
        &caller,
        req,
        "user_ids",
        req.user_ids.len(),
        (req.validate_only, req.atomic),
        &req.request_id,
    )?;
    let items = req
        .user_ids
        .iter()
        .map(|user_id| {
            item(
                authorise_target(&caller, Access::Write, &req.account_id, user_id).map(|target| {
                    UnassignItem {
                        account_id: target.account_id,
                        user_id: target.user_id,
                        confirm: req.confirm,
                    }
                }),
            )
        })
        .collect();
    let answers = context
        .store
        .telephony()
        .batch_unassign(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of unassignments");
    Ok(Response::new(proto::BatchUnassignPhoneNumbersResponse {
        results: results(answers, convert::user, user_result),
    }))
}

pub async fn update_settings(
    context: &ApiContext,
    request: Request<proto::BatchUpdateTelephonySettingsRequest>,
) -> Result<Response<proto::BatchUpdateTelephonySettingsResponse>, Status> {
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
                let target = authorise_target(&caller, Access::Write, &req.account_id, &i.user_id)?;
                let (requested, mask) =
                    settings_change(i.telephony_settings.as_ref(), i.update_mask.as_ref())?;
                Ok(SettingsItem {
                    account_id: target.account_id,
                    user_id: target.user_id,
                    requested,
                    mask,
                })
            })())
        })
        .collect();
    let answers = context
        .store
        .permissions()
        .batch_update(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of settings changes");
    Ok(Response::new(proto::BatchUpdateTelephonySettingsResponse {
        results: results(
            answers,
            convert::settings,
            |index, status, telephony_settings| proto::BatchTelephonySettingsResult {
                index,
                status,
                telephony_settings,
            },
        ),
    }))
}
