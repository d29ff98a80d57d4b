//! `PhoneNumberService`: the organisation's number inventory; the batch RPCs in [`batch`].

pub mod batch;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::auth::outside_scope;
use crate::api::requests::number_update;
use crate::api::{ApiContext, convert, inventory, optional};
use crate::domain::DomainError;
use crate::domain::error::Violations;
use crate::domain::ids::{AccountId, LocationId, OrderId, UserId};
use crate::domain::phone_number::{E164, NumberStatus};
use crate::error::Error;
use crate::proto::{self, phone_number_service_server::PhoneNumberService};
use crate::store::{NumberFilter, visible_to};

pub struct PhoneNumberApi {
    pub context: Arc<ApiContext>,
}

#[tonic::async_trait]
impl PhoneNumberService for PhoneNumberApi {
    async fn create_phone_number_order(
        &self,
        request: Request<proto::CreatePhoneNumberOrderRequest>,
    ) -> Result<Response<proto::PhoneNumberOrder>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        let req = request.get_ref();
        let mut violations = Violations::new();
        let product_type = match convert::product_type("product_type", req.product_type) {
            Ok(Some(product_type)) => Some(product_type),
            Ok(None) => {
                violations.push("product_type", "is required");
                None
            }
            Err(e) => {
                violations.check::<()>(Err(e));
                None
            }
        };
        let max = self.context.limits.max_order_numbers;
        if req.e164_phone_numbers.is_empty() {
            violations.push("e164_phone_numbers", "must list at least one number");
        } else if req.e164_phone_numbers.len() > max {
            violations.push(
                "e164_phone_numbers",
                format!("must list at most {max} numbers per order"),
            );
        }
        violations.finish()?;
        let Some(product_type) = product_type else {
            return Err(DomainError::invalid("product_type", "is required").into());
        };
        let order = self
            .context
            .store
            .orders()
            .create(product_type, &req.e164_phone_numbers)
            .await?;
        let acquired = order.items.iter().filter(|i| i.acquired).count();
        tracing::info!(
            order_id = %order.order_id,
            requested = order.items.len(),
            acquired,
            actor = %caller.key_id,
            "phone number order placed"
        );
        Ok(Response::new(convert::order(order)))
    }

    async fn get_phone_number_order(
        &self,
        request: Request<proto::GetPhoneNumberOrderRequest>,
    ) -> Result<Response<proto::PhoneNumberOrder>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        caller.require_organisation()?;
        let id = OrderId::parse("order_id", &request.get_ref().order_id)?;
        let order = self.context.store.orders().get(&id).await?;
        Ok(Response::new(convert::order(order)))
    }

    async fn get_phone_number(
        &self,
        request: Request<proto::GetPhoneNumberRequest>,
    ) -> Result<Response<proto::PhoneNumber>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let number = E164::parse("phone_number_id", &request.get_ref().phone_number_id)?;
        let found = self.context.store.inventory().get(&number).await;
        // Outside its scope a key learns nothing, not even whether the number exists.
        let view = match (caller.account(), found) {
            (None, found) => found?,
            (Some(own), Ok(row)) if visible_to(Some(own), &row) => row,
            (Some(_), Ok(_)) | (Some(_), Err(Error::Domain(DomainError::NotFound { .. }))) => {
                return Err(outside_scope().into());
            }
            (Some(_), Err(e)) => return Err(e.into()),
        };
        let location = self
            .context
            .store
            .emergency_locations()
            .effective(
                Some(&view.e164),
                view.user_id.as_ref(),
                view.account_id.as_ref(),
            )
            .await?;
        let mut answer = convert::phone_number(view);
        answer.emergency_location = location.map(convert::effective_location);
        Ok(Response::new(answer))
    }

    async fn list_phone_numbers(
        &self,
        request: Request<proto::ListPhoneNumbersRequest>,
    ) -> Result<Response<proto::ListPhoneNumbersResponse>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let req = request.get_ref();
        let filter = NumberFilter {
            status: convert::number_status("status", req.status)?,
            product_type: convert::product_type("product_type", req.product_type)?,
            account_id: optional(&req.account_id, |v| AccountId::parse("account_id", v))?,
            user_id: optional(&req.user_id, |v| UserId::parse("user_id", v))?,
            e164_prefix: inventory::e164_prefix("e164_prefix", &req.e164_prefix)?,
            country: inventory::country("country", &req.country)?,
            number_type: inventory::number_type("type", req.r#type)?,
            emergency_location: optional(&req.emergency_location_id, |v| {
                LocationId::parse("emergency_location_id", v)
            })?,
        };
        if let Some(own) = caller.account() {
            let inventory = filter.status == Some(NumberStatus::Unassigned);
            let own_numbers = filter.account_id.as_ref() == Some(own);
            if !(inventory || own_numbers) {
                return Err(Error::PermissionDenied(
                    "an account-scoped API key may list unassigned numbers (status UNASSIGNED) or its own account's numbers (account_id)".into(),
                )
                .into());
            }
        }
        let page = self.context.page(
            req.page_size,
            &req.page_token,
            &format!(
                "status={};product={};account={};user={};prefix={};country={};type={};location={}",
                req.status,
                req.product_type,
                req.account_id,
                req.user_id,
                filter.e164_prefix.as_deref().unwrap_or(""),
                filter.country.as_deref().unwrap_or(""),
                req.r#type,
                req.emergency_location_id
            ),
        )?;
        let numbers = self.context.store.inventory().list(&filter, &page).await?;
        Ok(Response::new(proto::ListPhoneNumbersResponse {
            phone_numbers: numbers
                .items
                .into_iter()
                .map(convert::phone_number)
                .collect(),
            next_page_token: numbers.next_page_token,
        }))
    }

    async fn update_phone_number(
        &self,
        request: Request<proto::UpdatePhoneNumberRequest>,
    ) -> Result<Response<proto::PhoneNumber>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        let req = request.get_ref();
        let (number, update) = number_update(
            &req.phone_number_id,
            req.product_type,
            &req.calling_name,
            req.update_mask.as_ref(),
        )?;
        let updated = self
            .context
            .store
            .inventory()
            .update(&number, update)
            .await?;
        tracing::info!(phone_number = %number, actor = %caller.key_id, "phone number updated");
        Ok(Response::new(convert::phone_number(updated)))
    }

    async fn delete_phone_number(
        &self,
        request: Request<proto::DeletePhoneNumberRequest>,
    ) -> Result<Response<proto::PhoneNumber>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        let number = E164::parse("phone_number_id", &request.get_ref().phone_number_id)?;
        let deleted = self.context.store.inventory().delete(&number).await?;
        tracing::info!(phone_number = %number, actor = %caller.key_id, "phone number queued for deletion");
        Ok(Response::new(convert::phone_number(deleted)))
    }

    async fn restore_phone_number(
        &self,
        request: Request<proto::RestorePhoneNumberRequest>,
    ) -> Result<Response<proto::PhoneNumber>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        let number = E164::parse("phone_number_id", &request.get_ref().phone_number_id)?;
        let restored = self.context.store.inventory().restore(&number).await?;
        tracing::info!(phone_number = %number, actor = %caller.key_id, "phone number restored");
        Ok(Response::new(convert::phone_number(restored)))
    }

    async fn batch_update_phone_numbers(
        &self,
        request: Request<proto::BatchUpdatePhoneNumbersRequest>,
    ) -> Result<Response<proto::BatchUpdatePhoneNumbersResponse>, Status> {
        batch::update(&self.context, request).await
    }

    async fn batch_delete_phone_numbers(
        &self,
        request: Request<proto::BatchDeletePhoneNumbersRequest>,
    ) -> Result<Response<proto::BatchDeletePhoneNumbersResponse>, Status> {
        batch::delete(&self.context, request).await
    }

    async fn list_phone_number_orders(
        &self,
        request: Request<proto::ListPhoneNumberOrdersRequest>,
    ) -> Result<Response<proto::ListPhoneNumberOrdersResponse>, Status> {
        inventory::list_orders(&self.context, request).await
    }

    async fn list_phone_number_assignments(
        &self,
        request: Request<proto::ListPhoneNumberAssignmentsRequest>,
    ) -> Result<Response<proto::ListPhoneNumberAssignmentsResponse>, Status> {
        inventory::list_assignments(&self.context, request).await
    }
}
