//! Accounts: create, read, list, rename, delete (which revokes the account's API keys).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

use super::keys::RevocationSignal;
use crate::domain::DomainError;
use crate::domain::ids::{AccountId, KeyId};
use crate::error::Result;
use crate::store::db::emergency::forget_account;
use crate::store::db::entities::{account, api_key, user};
use crate::store::db::keys::revoke_key;
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::views::AccountView;
use crate::store::db::{account_not_found, escape_like};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};

struct CreateAccount {
    name: String,
}

impl Mutation for CreateAccount {
    type Output = AccountView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, AccountView> {
        Box::pin(async move {
            let now = Utc::now();
            let row = account::ActiveModel {
                id: Set(AccountId::generate().into()),
                name: Set(self.name.clone()),
                create_time: Set(now),
                update_time: Set(now),
            }
            .insert(txn)
            .await?;
            Ok(row.into())
        })
    }
}

struct RenameAccount {
    id: AccountId,
    name: String,
}

impl Mutation for RenameAccount {
    type Output = AccountView;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, AccountView> {
        Box::pin(rename_account(txn, self))
    }
}

async fn rename_account(txn: &DatabaseTransaction, cmd: &RenameAccount) -> Result<AccountView> {
    let existing = account::Entity::find_by_id(cmd.id.as_str())
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| account_not_found(&cmd.id))?;
    let mut model: account::ActiveModel = existing.into();
    model.name = Set(cmd.name.clone());
    model.update_time = Set(Utc::now());
    Ok(model.update(txn).await?.into())
}

struct DeleteAccount {
    id: AccountId,
}

impl Mutation for DeleteAccount {
    type Output = Vec<KeyId>;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Vec<KeyId>> {
        Box::pin(delete_account(txn, &self.id))
    }
}

/// Refused while the account has users (the foreign key would refuse it too). The account's
/// keys are revoked with it, in the same transaction; returns their ids.
async fn delete_account(txn: &DatabaseTransaction, account_id: &AccountId) -> Result<Vec<KeyId>> {
    let id = account_id.as_str();
    account::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| account_not_found(account_id))?;
    let users = user::Entity::find()
        .filter(user::Column::AccountId.eq(id))
        .count(txn)
        .await?;
    if users > 0 {
        return Err(DomainError::precondition(
            "ACCOUNT_HAS_USERS",
            id,
            format!("account {id} still has {users} user(s); delete them first"),
        )
        .into());
    }
    let keys: Vec<String> = api_key::Entity::find()
        .select_only()
        .column(api_key::Column::Id)
        .filter(api_key::Column::AccountId.eq(id))
        .filter(api_key::Column::RevokeTime.is_null())
        .order_by_asc(api_key::Column::Id)
        .into_tuple()
        .all(txn)
        .await?;
    let keys: Vec<KeyId> = keys.into_iter().map(KeyId::from_stored).collect();
    for key in &keys {
        revoke_key(txn, key).await?;
    }
    forget_account(txn, account_id).await?;
    account::Entity::delete_by_id(id).exec(txn).await?;
    Ok(keys)
}

/// Accounts: the store's surface for them.
pub struct Accounts<'a> {
    engine: &'a Engine,
    revoked: &'a RevocationSignal,
}

impl<'a> Accounts<'a> {
    pub(crate) fn new(engine: &'a Engine, revoked: &'a RevocationSignal) -> Self {
        Self { engine, revoked }
    }

    pub async fn create(&self, name: String) -> Result<AccountView> {
        self.engine.write(CreateAccount { name }).await
    }

    pub async fn get(&self, id: &AccountId) -> Result<AccountView> {
        account::Entity::find_by_id(id.as_str())
            .one(self.engine.reader())
            .await?
            .map(AccountView::from)
            .ok_or_else(|| account_not_found(id).into())
    }

    /// Accounts in creation order, optionally those whose name starts with `name_prefix`
    /// (ASCII case-insensitive), and optionally only the account `only`.
    pub async fn list(
        &self,
        page: &PageRequest,
        name_prefix: &str,
        only: Option<&AccountId>,
    ) -> Result<Page<AccountView>> {
        let mut query = account::Entity::find().order_by_asc(account::Column::Id);
        if let Some(id) = only {
            query = query.filter(account::Column::Id.eq(id.as_str()));
        }
        if !name_prefix.is_empty() {
            let folded = format!("{}%", escape_like(&name_prefix.to_lowercase()));
            let exact = format!("{}%", escape_like(name_prefix));
            // SQL lower() may fold ASCII only (SQLite, a C-locale PostgreSQL): the prefix as
            // given must still match names that start with exactly it.
            query = query.filter(
                Condition::any()
                    .add(
                        Expr::expr(Func::lower(Expr::col(account::Column::Name)))
                            .like(LikeExpr::new(folded).escape('\\')),
                    )
                    .add(Expr::col(account::Column::Name).like(LikeExpr::new(exact).escape('\\'))),
            );
        }
        if let Some(after) = &page.after {
            query = query.filter(account::Column::Id.gt(after.as_str()));
        }
        let rows = query
            .limit(page.fetch_limit())
            .all(self.engine.reader())
            .await?;
        let views = rows.into_iter().map(AccountView::from).collect();
        Ok(page.finish(views, |a: &AccountView| a.account_id.to_string()))
    }

    pub async fn rename(&self, id: &AccountId, name: String) -> Result<AccountView> {
        self.engine
            .write(RenameAccount {
                id: id.clone(),
                name,
            })
            .await
    }

    /// Refused while the account has users (the foreign key would refuse it too). The
    /// account's API keys are revoked with it, like `Keys::revoke` does (every
    /// server's key cache hears of it); returns their ids.
    pub async fn delete(&self, id: &AccountId) -> Result<Vec<KeyId>> {
        let revoked = self.engine.write(DeleteAccount { id: id.clone() }).await?;
        if !revoked.is_empty() {
            self.revoked.heard();
        }
        Ok(revoked)
    }
}
