//! Users' own locations changed by user updates (UpdateUser, BatchUpdateUsers): the named
//! locations checked per item, then the changes written together with an
//! EMERGENCY_LOCATION_UPDATED event for every user whose effective location moved.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::domain::ids::{AccountId, LocationId, UserId};
use crate::error::Result;
use crate::store::db::emergency::{forget_users, location_not_found, location_of_another_account};
use crate::store::db::entities::{emergency_location, emergency_location_use};
use crate::store::db::now;
use crate::store::db::writes::Writes;

use super::effective::{account_users, announce, effective_locations};

/// The accounts of the locations `named`: one query (none when nothing is named).
pub(crate) async fn named_locations(
    txn: &DatabaseTransaction,
    named: &[&LocationId],
) -> Result<HashMap<String, String>> {
    if named.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(emergency_location::Entity::find()
        .select_only()
        .column(emergency_location::Column::Id)
        .column(emergency_location::Column::AccountId)
        .filter(emergency_location::Column::Id.is_in(named.iter().map(|id| id.as_str())))
        .into_tuple::<(String, String)>()
        .all(txn)
        .await?
        .into_iter()
        .collect())
}

/// Whether `location` (read by [`named_locations`]) may be given in `account_id`.
pub(crate) fn check_named(
    named: &HashMap<String, String>,
    location: &LocationId,
    account_id: &AccountId,
) -> Result<()> {
    match named.get(location.as_str()) {
        None => Err(location_not_found(location).into()),
        Some(account) if account != account_id.as_str() => {
            Err(location_of_another_account(location, account_id).into())
        }
        Some(_) => Ok(()),
    }
}

/// Sets (or, `None`, takes away) the own location of each user of `account_id` in `changes`
/// (the last change of a user wins), and tells every user whose effective location moved.
pub(crate) async fn set_own_locations(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    changes: &[(&UserId, Option<&LocationId>)],
    actor: &str,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let users = account_users(txn, account_id).await?;
    let before = effective_locations(txn, account_id, &users).await?;
    let mut last: HashMap<&UserId, Option<&LocationId>> = HashMap::new();
    for (user, location) in changes {
        last.insert(user, *location);
    }
    let taken: Vec<&UserId> = (last.iter())
        .filter(|(_, location)| location.is_none())
        .map(|(user, _)| *user)
        .collect();
    let mut writes = Writes::new(txn);
    forget_users(&mut writes, &taken);
    let given: Vec<(&AccountId, &UserId, &LocationId)> = last
        .iter()
        .filter_map(|(user, location)| Some((account_id, *user, (*location)?)))
        .collect();
    give_users(&mut writes, &given);
    writes.run(txn).await?;
    let after = effective_locations(txn, account_id, &users).await?;
    announce(txn, account_id, &users, |i| before[i] != after[i], actor).await
}

/// Gives each user their location (replacing the one they had): one DELETE and one INSERT
/// per chunk, none when `given` is empty.
pub(crate) fn give_users(writes: &mut Writes, given: &[(&AccountId, &UserId, &LocationId)]) {
    let now = now();
    for chunk in given.chunks(crate::store::db::SET_CHUNK) {
        let users: Vec<&UserId> = chunk.iter().map(|(_, user, _)| *user).collect();
        forget_users(writes, &users);
        // A user named twice keeps the last location named.
        let mut last: HashMap<&str, (&AccountId, &LocationId)> = HashMap::new();
        for (account, user, location) in chunk {
            last.insert(user.as_str(), (account, location));
        }
        writes.push(&emergency_location_use::Entity::insert_many(
            last.into_iter().map(|(user, (account, location))| {
                emergency_location_use::ActiveModel {
                    holder_kind: Set("user".to_owned()),
                    holder_id: Set(user.to_owned()),
                    account_id: Set(account.to_string()),
                    location_id: Set(location.to_string()),
                    update_time: Set(now),
                }
            }),
        ));
    }
}
