//! Accounts: create, read, list, rename, delete.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

use super::Store;
use super::entities::{account, user};
use super::page::{Page, PageRequest};
use crate::domain::{DomainError, account::new_id};
use crate::error::Result;

pub(super) fn account_not_found(id: &str) -> DomainError {
    DomainError::NotFound {
        resource: "account",
        name: id.to_owned(),
    }
}

impl Store {
    pub async fn create_account(&self, name: String) -> Result<account::Model> {
        let now = Utc::now();
        let model = account::ActiveModel {
            id: Set(new_id()),
            name: Set(name),
            create_time: Set(now),
            update_time: Set(now),
        };
        Ok(model.insert(self.connection()).await?)
    }

    pub async fn get_account(&self, id: &str) -> Result<account::Model> {
        account::Entity::find_by_id(id)
            .one(self.connection())
            .await?
            .ok_or_else(|| account_not_found(id).into())
    }

    /// Accounts in creation order, optionally those whose name starts with `name_prefix`
    /// (ASCII case-insensitive), and optionally only the account `only`.
    pub async fn list_accounts(
        &self,
        page: &PageRequest,
        name_prefix: &str,
        only: Option<&str>,
    ) -> Result<Page<account::Model>> {
        let mut query = account::Entity::find().order_by_asc(account::Column::Id);
        if let Some(id) = only {
            query = query.filter(account::Column::Id.eq(id));
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
            .all(self.connection())
            .await?;
        Ok(page.finish(rows, |a| a.id.clone()))
    }

    pub async fn update_account(&self, id: &str, name: String) -> Result<account::Model> {
        let txn = self.begin_write().await?;
        let existing = account::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| account_not_found(id))?;
        let mut model: account::ActiveModel = existing.into();
        model.name = Set(name);
        model.update_time = Set(Utc::now());
        let updated = model.update(&txn).await?;
        self.commit(txn, false).await?;
        Ok(updated)
    }

    /// Refused while the account has users (the foreign key would refuse it too).
    pub async fn delete_account(&self, id: &str) -> Result<()> {
        let txn = self.begin_write().await?;
        account::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| account_not_found(id))?;
        let users = user::Entity::find()
            .filter(user::Column::AccountId.eq(id))
            .count(&txn)
            .await?;
        if users > 0 {
            return Err(DomainError::precondition(
                "ACCOUNT_HAS_USERS",
                id,
                format!("account {id} still has {users} user(s); delete them first"),
            )
            .into());
        }
        account::Entity::delete_by_id(id).exec(&txn).await?;
        self.commit(txn, false).await?;
        Ok(())
    }
}

/// Escapes LIKE wildcards so a prefix matches literally.
pub(super) fn escape_like(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
