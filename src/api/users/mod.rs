//! `UserService`: users of an account, asking a user to sign out, and recording that they did;
//! the batch RPCs in [`batch`].

pub mod batch;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::requests::{new_user_fields, optional_location, user_update};
use crate::api::{Access, ApiContext, convert, request_id};
use crate::domain::DomainError;
use crate::domain::ids::{AccountId, LocationId};
use crate::domain::sign_out::parse_through;
use crate::domain::user::Email;
use crate::proto::{self, user_service_server::UserService};
use crate::store::UserFilter;

pub struct UserApi {
    pub context: Arc<ApiContext>,
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn create_user(
        &self,
        request: Request<proto::CreateUserRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let req = request.get_ref();
        let account_id = AccountId::parse("account_id", &req.account_id)?;
        caller.require_account(&account_id)?;
        let (email, display_name, license_type) =
            new_user_fields(&req.email, &req.display_name, req.license_type)?;
        let user = self
            .context
            .store
            .users()
            .create(
                &account_id,
                email,
                display_name,
                license_type,
                optional_location(&req.emergency_location_id)?,
            )
            .await?;
        tracing::info!(%account_id, user_id = %user.user_id, actor = %caller.key_id, "user created");
        Ok(Response::new(convert::user(user)))
    }

    async fn get_user(
        &self,
        request: Request<proto::GetUserRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let req = request.get_ref();
        let (_, target) = self
            .context
            .authorise_user(&request, Access::ReadUser, &req.account_id, &req.user_id)
            .await?;
        let (user, location) = self
            .context
            .store
            .users()
            .get_with_location(&target.account_id, &target.user_id)
            .await?;
        let mut answer = convert::user(user);
        answer.emergency_location = location.map(convert::effective_location);
        Ok(Response::new(answer))
    }

    async fn list_users(
        &self,
        request: Request<proto::ListUsersRequest>,
    ) -> Result<Response<proto::ListUsersResponse>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        let req = request.get_ref();
        let account_id = AccountId::parse("account_id", &req.account_id)?;
        caller.require_account(&account_id)?;
        let email = if req.email.is_empty() {
            None
        } else {
            Some(Email::parse("email", &req.email)?)
        };
        let emergency_location = match req.emergency_location_id.as_str() {
            "" => None,
            raw => Some(LocationId::parse("emergency_location_id", raw)?),
        };
        let search = req.search.trim();
        if search.chars().count() > 100 {
            return Err(DomainError::invalid("search", "must be at most 100 characters").into());
        }
        let page = self.context.page(
            req.page_size,
            &req.page_token,
            &format!(
                "account={account_id};email={};sign_out_pending={:?};location={};missing_location={};search={search}",
                email.as_ref().map_or("", Email::as_str),
                req.sign_out_pending,
                req.emergency_location_id,
                req.missing_emergency_location
            ),
        )?;
        let filter = UserFilter {
            email,
            search: (!search.is_empty()).then(|| search.to_lowercase()),
            sign_out_pending: req.sign_out_pending,
            emergency_location,
            missing_emergency_location: req.missing_emergency_location,
        };
        let users = self
            .context
            .store
            .users()
            .list(&account_id, &filter, &page)
            .await?;
        Ok(Response::new(proto::ListUsersResponse {
            users: users.items.into_iter().map(convert::user).collect(),
            next_page_token: users.next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<proto::UpdateUserRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(&request, Access::Write, &req.account_id, &req.user_id)
            .await?;
        let update = user_update(
            &req.display_name,
            req.license_type,
            &req.emergency_location_id,
            req.update_mask.as_ref(),
        )?;
        let user = self
            .context
            .store
            .users()
            .update(&target.account_id, &target.user_id, update, &caller.key_id)
            .await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn delete_user(
        &self,
        request: Request<proto::DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(&request, Access::Write, &req.account_id, &req.user_id)
            .await?;
        self.context
            .store
            .users()
            .delete(&target.account_id, &target.user_id, &caller.key_id)
            .await?;
        tracing::info!(account_id = %target.account_id, user_id = %target.user_id, actor = %caller.key_id, "user deleted");
        Ok(Response::new(()))
    }

    async fn logout_user(
        &self,
        request: Request<proto::LogoutUserRequest>,
    ) -> Result<Response<proto::LogoutUserResponse>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(&request, Access::Write, &req.account_id, &req.user_id)
            .await?;
        let sequence = self
            .context
            .store
            .sign_out()
            .logout(&target.account_id, &target.user_id, &caller.key_id)
            .await?;
        tracing::info!(account_id = %target.account_id, user_id = %target.user_id, sequence, actor = %caller.key_id, "user sign-out requested");
        Ok(Response::new(proto::LogoutUserResponse { sequence }))
    }

    async fn acknowledge_sign_out(
        &self,
        request: Request<proto::AcknowledgeSignOutRequest>,
    ) -> Result<Response<proto::User>, Status> {
        let req = request.get_ref();
        let (caller, target) = self
            .context
            .authorise_user(
                &request,
                Access::AcknowledgeSignOut,
                &req.account_id,
                &req.user_id,
            )
            .await?;
        let through = parse_through("through_sequence", req.through_sequence)?;
        let request_id = request_id(&req.request_id)?;
        let user = self
            .context
            .store
            .sign_out()
            .acknowledge(
                &target.account_id,
                &target.user_id,
                through,
                request_id.as_ref(),
                caller.requester(),
            )
            .await?;
        tracing::info!(account_id = %target.account_id, user_id = %target.user_id, through, still_pending = user.sign_out_pending.is_some(), actor = %caller.key_id, "sign-out acknowledged");
        Ok(Response::new(convert::user(user)))
    }

    async fn batch_create_users(
        &self,
        request: Request<proto::BatchCreateUsersRequest>,
    ) -> Result<Response<proto::BatchCreateUsersResponse>, Status> {
        batch::create(&self.context, request).await
    }

    async fn batch_update_users(
        &self,
        request: Request<proto::BatchUpdateUsersRequest>,
    ) -> Result<Response<proto::BatchUpdateUsersResponse>, Status> {
        batch::update(&self.context, request).await
    }
}
