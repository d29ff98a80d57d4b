//! Creating users, one or a thousand at a time, in a fixed number of statements: the accounts
//! and the e-mail addresses already taken are read in a query each; each item is decided in
//! order (a second item with the same address is taken, as a second request would find it);
//! the new users are inserted in multi-row INSERTs. `CreateUser` is this use case with one item;
//! `BatchCreateUsers` with many.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set};

use super::accounts::account_not_found;
use super::batch::{Apply, NewUserItem, SET_CHUNK, SetUseCase, distinct};
use super::entities::{account, user};
use super::users::{UserView, email_taken};
use super::writer::TxnFuture;
use crate::domain::ids::UserId;
use crate::error::{Error, Result, is_unique_violation};

/// The use case; it needs nothing beyond its items.
#[derive(PartialEq, Eq)]
pub(super) struct CreateUsers;

impl SetUseCase for CreateUsers {
    type Item = NewUserItem;
    type Output = UserView;
    const APPENDS_CHANGES: bool = false;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a NewUserItem>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<UserView>>> {
        Box::pin(create_all(txn, items, apply))
    }
}

async fn create_all(
    txn: &DatabaseTransaction,
    items: Vec<&NewUserItem>,
    apply: Apply,
) -> Result<Vec<Result<UserView>>> {
    let accounts = distinct(items.iter().map(|i| i.account_id.as_str()));
    // Shared locks: an account cannot be deleted under its new users.
    let existing: HashSet<String> = account::Entity::find()
        .select_only()
        .column(account::Column::Id)
        .filter(account::Column::Id.is_in(accounts.iter().copied()))
        .lock_shared()
        .into_tuple::<String>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let mut taken: HashSet<(String, String)> = HashSet::new();
    for chunk in items.chunks(SET_CHUNK) {
        taken.extend(
            user::Entity::find()
                .select_only()
                .column(user::Column::AccountId)
                .column(user::Column::Email)
                .filter(user::Column::AccountId.is_in(accounts.iter().copied()))
                .filter(user::Column::Email.is_in(chunk.iter().map(|i| i.email.as_str())))
                .into_tuple::<(String, String)>()
                .all(txn)
                .await?,
        );
    }
    let now = super::now();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut rows = Vec::new();
    for item in &items {
        if !existing.contains(item.account_id.as_str()) {
            outcomes.push(Err(account_not_found(&item.account_id).into()));
            continue;
        }
        let address = (item.account_id.to_string(), item.email.to_string());
        if !taken.insert(address) {
            outcomes.push(Err(email_taken(&item.account_id, &item.email).into()));
            continue;
        }
        let row = user::Model {
            id: UserId::generate().into(),
            account_id: item.account_id.to_string(),
            email: item.email.to_string(),
            display_name: item.display_name.to_string(),
            license_type: item.license_type.into(),
            inbound_calling: false,
            outbound_calling: false,
            sms: false,
            create_time: now,
            update_time: now,
            sign_out_pending_oldest_sequence: None,
            sign_out_pending_oldest_time: None,
            sign_out_pending_latest_sequence: None,
            sign_out_pending_latest_time: None,
        };
        outcomes.push(Ok(UserView::new(row.clone(), None)));
        rows.push(row);
    }
    if apply.writes(items.len(), items.len() - rows.len()) {
        for chunk in rows.chunks(SET_CHUNK) {
            let inserted =
                user::Entity::insert_many(chunk.iter().cloned().map(|row| user::ActiveModel {
                    id: Set(row.id),
                    account_id: Set(row.account_id),
                    email: Set(row.email),
                    display_name: Set(row.display_name),
                    license_type: Set(row.license_type),
                    inbound_calling: Set(row.inbound_calling),
                    outbound_calling: Set(row.outbound_calling),
                    sms: Set(row.sms),
                    create_time: Set(row.create_time),
                    update_time: Set(row.update_time),
                    ..Default::default()
                }))
                .exec(txn)
                .await;
            match inserted {
                Ok(_) => {}
                // A concurrent request (on another replica) took an address between the check
                // and the insert: the writer runs the whole set again, and it is then decided
                // on the state that request left.
                Err(e) if is_unique_violation(&e) => return Err(Error::conflict()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(outcomes)
}
