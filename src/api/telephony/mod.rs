//! `TelephonyService`: a user's number and calling/SMS permissions; the batch RPCs in [`batch`].

pub mod batch;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::requests::{optional_location, settings_change};
use crate::api::{Access, ApiContext, convert, request_id};
use crate::domain::phone_number::E164;
use crate::proto::{self, telephony_service_server::TelephonyService};
use crate::store::AssignItem;

pub struct TelephonyApi {
    pub context: Arc<ApiContext>,
}

#[tonic::async_trait]
impl TelephonyService for TelephonyApi {
    async fn assign_phone_number(
        &self,
        request: Request<proto::AssignPhoneNumberRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(&request, Access::Write, &req.account_id, &req.user_id)
            .await?;
        let number = E164::parse("e164_phone_number", &req.e164_phone_number)?;
        let request_id = request_id(&req.request_id)?;
        let item = AssignItem {
            account_id: target.account_id.clone(),
            user_id: target.user_id.clone(),
            number: number.clone(),
            emergency_location: optional_location(&req.emergency_location_id)?,
        };
        let user = self
            .context
            .store
            .telephony()
            .assign(item, request_id.as_ref(), caller.requester())
            .await?;
        tracing::info!(account_id = %target.account_id, user_id = %target.user_id, phone_number = %number, actor = %caller.key_id, "phone number assigned");
        Ok(Response::new(convert::user(user)))
    }

    async fn unassign_phone_number(
        &self,
        request: Request<proto::UnassignPhoneNumberRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(&request, Access::Write, &req.account_id, &req.user_id)
            .await?;
        let request_id = request_id(&req.request_id)?;
        let user = self
            .context
            .store
            .telephony()
            .unassign(
                &target.account_id,
                &target.user_id,
                req.confirm,
                request_id.as_ref(),
                caller.requester(),
            )
            .await?;
        tracing::info!(account_id = %target.account_id, user_id = %target.user_id, actor = %caller.key_id, "phone number unassigned");
        Ok(Response::new(convert::user(user)))
    }

    async fn get_telephony_settings(
        &self,
        request: Request<proto::GetTelephonySettingsRequest>,
    ) -> Result<Response<proto::TelephonySettings>, Status> {
        let req = request.get_ref();
        let (_, target) = self
            .context
            .authorise_user(&request, Access::Read, &req.account_id, &req.user_id)
            .await?;
        let settings = self
            .context
            .store
            .permissions()
            .get(&target.account_id, &target.user_id)
            .await?;
        Ok(Response::new(convert::settings(settings)))
    }

    async fn update_telephony_settings(
        &self,
        request: Request<proto::UpdateTelephonySettingsRequest>,
    ) -> Result<Response<proto::TelephonySettings>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(&request, Access::Write, &req.account_id, &req.user_id)
            .await?;
        let (requested, mask) =
            settings_change(req.telephony_settings.as_ref(), req.update_mask.as_ref())?;
        let request_id = request_id(&req.request_id)?;
        let settings = self
            .context
            .store
            .permissions()
            .update(
                &target.account_id,
                &target.user_id,
                requested,
                mask,
                request_id.as_ref(),
                caller.requester(),
            )
            .await?;
        tracing::info!(
            account_id = %target.account_id, user_id = %target.user_id,
            inbound_calling = settings.inbound_calling,
            outbound_calling = settings.outbound_calling,
            sms = settings.sms,
            actor = %caller.key_id,
            "telephony settings updated"
        );
        Ok(Response::new(convert::settings(settings)))
    }

    async fn batch_assign_phone_numbers(
        &self,
        request: Request<proto::BatchAssignPhoneNumbersRequest>,
    ) -> Result<Response<proto::BatchAssignPhoneNumbersResponse>, Status> {
        batch::assign(&self.context, request).await
    }

    async fn batch_unassign_phone_numbers(
        &self,
        request: Request<proto::BatchUnassignPhoneNumbersRequest>,
    ) -> Result<Response<proto::BatchUnassignPhoneNumbersResponse>, Status> {
        batch::unassign(&self.context, request).await
    }

    async fn batch_update_telephony_settings(
        &self,
        request: Request<proto::BatchUpdateTelephonySettingsRequest>,
    ) -> Result<Response<proto::BatchUpdateTelephonySettingsResponse>, Status> {
        batch::update_settings(&self.context, request).await
    }
}
