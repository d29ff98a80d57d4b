//! `AccountService`: the organisation's accounts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{ApiContext, convert};
use crate::domain::DomainError;
use crate::domain::account::parse_account_name;
use crate::domain::ids::AccountId;
use crate::error::Error;
use crate::keys::Scope;
use crate::proto::{self, account_service_server::AccountService};

pub struct AccountApi {
    pub context: Arc<ApiContext>,
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        let name = parse_account_name("name", &request.get_ref().name)?;
        let account = self.context.store.accounts().create(name).await?;
        tracing::info!(account_id = %account.account_id, actor = %caller.key_id, "account created");
        Ok(Response::new(convert::account(account)))
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let id = AccountId::parse("account_id", &request.get_ref().account_id)?;
        caller.require_account(&id)?;
        let account = self.context.store.accounts().get(&id).await?;
        Ok(Response::new(convert::account(account)))
    }

    async fn list_accounts(
        &self,
        request: Request<proto::ListAccountsRequest>,
    ) -> Result<Response<proto::ListAccountsResponse>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_reader()?;
        let req = request.get_ref();
        if req.name_prefix.chars().count() > 100 {
            return Err(
                DomainError::invalid("name_prefix", "must be at most 100 characters").into(),
            );
        }
        let page = self.context.page(
            req.page_size,
            &req.page_token,
            &format!("name_prefix={}", req.name_prefix),
        )?;
        // An account-scoped key sees its own account only.
        let accounts = self
            .context
            .store
            .accounts()
            .list(&page, &req.name_prefix, caller.account())
            .await?;
        Ok(Response::new(proto::ListAccountsResponse {
            accounts: accounts.items.into_iter().map(convert::account).collect(),
            next_page_token: accounts.next_page_token,
        }))
    }

    async fn update_account(
        &self,
        request: Request<proto::UpdateAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        let req = request.get_ref();
        let id = AccountId::parse("account_id", &req.account_id)?;
        caller.require_account(&id)?;
        let name = parse_account_name("name", &req.name)?;
        let account = self.context.store.accounts().rename(&id, name).await?;
        tracing::info!(account_id = %id, actor = %caller.key_id, "account renamed");
        Ok(Response::new(convert::account(account)))
    }

    async fn delete_account(
        &self,
        request: Request<proto::DeleteAccountRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.context.auth.authenticate(&request).await?;
        caller.require_admin()?;
        caller.require_organisation()?;
        let id = AccountId::parse("account_id", &request.get_ref().account_id)?;
        let revoked_keys = self.context.store.accounts().delete(&id).await?;
        tracing::info!(account_id = %id, actor = %caller.key_id, revoked_keys = ?revoked_keys, "account deleted, its API keys revoked");
        Ok(Response::new(()))
    }
    async fn get_caller(
        &self,
        request: Request<proto::GetCallerRequest>,
    ) -> Result<Response<proto::Caller>, Status> {
        // Any valid key may ask who it is.
        let caller = self.context.auth.authenticate(&request).await?;
        let key = self
            .context
            .store
            .keys()
            .get(&caller.key_id)
            .await?
            .ok_or_else(|| Error::Unauthenticated("the API key is unknown or revoked".into()))?;
        Ok(Response::new(proto::Caller {
            key_id: caller.key_id.to_string(),
            key_name: key.name,
            role: convert::role(caller.role).into(),
            account_id: match caller.scope {
                Scope::Organisation => String::new(),
                Scope::Account(id) => id.to_string(),
            },
        }))
    }
}
