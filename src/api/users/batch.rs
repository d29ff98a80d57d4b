//! `UserService`'s batches: create and change users, item by item as the single RPCs do.

use tonic::{Request, Response, Status};

use crate::api::batch::{item, options, results, user_result};
use crate::api::requests::{new_user_fields, optional_location, user_update};
use crate::api::{Access, ApiContext, authorise_target, convert};
use crate::domain::ids::AccountId;
use crate::proto;
use crate::store::{NewUserItem, UserUpdateItem};

pub async fn create(
    context: &ApiContext,
    request: Request<proto::BatchCreateUsersRequest>,
) -> Result<Response<proto::BatchCreateUsersResponse>, Status> {
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
                // CreateUser's checks, in its order.
                caller.require_admin()?;
                let account_id = AccountId::parse("account_id", &req.account_id)?;
                caller.require_account(&account_id)?;
                let (email, display_name, license_type) =
                    new_user_fields(&i.email, &i.display_name, i.license_type)?;
                Ok(NewUserItem {
                    account_id,
                    email,
                    display_name,
                    license_type,
                    emergency_location: optional_location(&i.emergency_location_id)?,
                })
            })())
        })
        .collect();
    let answers = context
        .store
        .users()
        .batch_create(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of new users");
    Ok(Response::new(proto::BatchCreateUsersResponse {
        results: results(answers, convert::user, user_result),
    }))
}

pub async fn update(
    context: &ApiContext,
    request: Request<proto::BatchUpdateUsersRequest>,
) -> Result<Response<proto::BatchUpdateUsersResponse>, Status> {
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
                let update = user_update(
                    &i.display_name,
                    i.license_type,
                    &i.emergency_location_id,
                    i.update_mask.as_ref(),
                )?;
                Ok(UserUpdateItem {
                    account_id: target.account_id,
                    user_id: target.user_id,
                    update,
                })
            })())
        })
        .collect();
    let answers = context
        .store
        .users()
        .batch_update(items, options, caller.requester())
        .await?;
    tracing::info!(items = answers.len(), validate_only = req.validate_only, atomic = req.atomic, actor = %caller.key_id, "batch of user changes");
    Ok(Response::new(proto::BatchUpdateUsersResponse {
        results: results(answers, convert::user, user_result),
    }))
}
