//! Users of an account: create them and change their name or licence (one or a thousand in a
//! fixed number of statements: `CreateUser` and `UpdateUser` are these set use cases with one
//! item, their batch RPCs with many), read and list them, delete them (their number goes back
//! to the inventory, and they are told). A user's number is read from `phone_numbers` (the row
//! pointing at the user), so the two can never disagree.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Requester;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::ids::{AccountId, KeyId, LocationId, UserId};
use crate::domain::telephony::TelephonySettings;
use crate::domain::user::{DisplayName, Email, LicenseType};
use crate::error::Result;
use crate::store::db::emergency::{
    DIRECT_USER_VIEW_WITH_LOCATIONS, by_location, count_lacking_location,
    direct_user_view_with_locations, find_user_view_with_locations, forget_users,
};
use crate::store::db::entities::{account, user};
use crate::store::db::numbers::release_numbers;
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::search::contains;
use crate::store::db::users::{
    DIRECT_USER_VIEW, UserFilter, direct_user_view, email_taken, find_user_view, insert_users,
    lock_user_view, lock_user_views, user_not_found, with_numbers, write_profiles,
};
use crate::store::db::views::UserView;
use crate::store::db::writes::Writes;
use crate::store::db::{SET_CHUNK, account_not_found, distinct};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};
use crate::store::engine::outbox::write_with_changes;
use crate::store::engine::set_run::{Apply, BatchItem, BatchOptions, ItemResult, SetUseCase};
use crate::store::use_cases::emergency_locations::{
    LocationSource, check_named, give_users, named_locations, resolve_effective, set_own_locations,
};

/// Users of an account: the store's surface for them.
pub struct Users<'a> {
    engine: &'a Engine,
    /// The countries whose numbers need an emergency location.
    emergency_location_countries: &'a [String],
}

impl<'a> Users<'a> {
    pub(crate) fn new(engine: &'a Engine, emergency_location_countries: &'a [String]) -> Self {
        Self {
            engine,
            emergency_location_countries,
        }
    }

    pub async fn create(
        &self,
        account_id: &AccountId,
        email: Email,
        display_name: DisplayName,
        license_type: LicenseType,
        emergency_location: Option<LocationId>,
    ) -> Result<UserView> {
        let item = NewUserItem {
            account_id: account_id.clone(),
            email,
            display_name,
            license_type,
            emergency_location,
        };
        self.engine.run_one(CreateUsers, item, None).await
    }

    /// BatchCreateUsers: each item as [`Users::create`] would answer it.
    pub async fn batch_create(
        &self,
        items: Vec<BatchItem<NewUserItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<UserView>>> {
        self.engine
            .run_set(
                "BatchCreateUsers",
                CreateUsers,
                items,
                options,
                caller.scope(),
            )
            .await
    }

    /// BatchUpdateUsers: each item as [`Users::update`] would answer it.
    pub async fn batch_update(
        &self,
        items: Vec<BatchItem<UserUpdateItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<UserView>>> {
        self.engine
            .run_set(
                "BatchUpdateUsers",
                UpdateUsers {
                    actor: caller.actor(),
                },
                items,
                options,
                caller.scope(),
            )
            .await
    }

    /// One indexed query on a reader (on a SQLite file, on the calling thread).
    pub async fn get(&self, account_id: &AccountId, user_id: &UserId) -> Result<UserView> {
        let direct = self.engine.direct().and_then(|direct| {
            let params = (user_id.as_str(), account_id.as_str());
            direct.read_one(&DIRECT_USER_VIEW, params, direct_user_view)
        });
        let found = match direct {
            Some(found) => found,
            None => find_user_view(self.engine.reader(), account_id, user_id).await?,
        };
        found.ok_or_else(|| user_not_found(account_id, user_id).into())
    }

    /// How many users of the organisation lack an emergency location their number requires.
    pub async fn count_lacking_emergency_location(&self) -> Result<u64> {
        count_lacking_location(self.engine.reader(), self.emergency_location_countries).await
    }

    /// The user and their effective emergency location: GetUser, in one indexed query.
    pub async fn get_with_location(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
    ) -> Result<(UserView, Option<(LocationId, LocationSource)>)> {
        // On SQLite, straight from the file on this thread (see `engine::sqlite_reads`).
        let direct = self.engine.direct().and_then(|direct| {
            let params = (user_id.as_str(), account_id.as_str());
            direct.read_one(
                &DIRECT_USER_VIEW_WITH_LOCATIONS,
                params,
                direct_user_view_with_locations,
            )
        });
        let found = match direct {
            Some(found) => found,
            None => {
                find_user_view_with_locations(self.engine.reader(), account_id, user_id).await?
            }
        };
        let (user, locations) = found.ok_or_else(|| user_not_found(account_id, user_id))?;
        Ok((user, resolve_effective(locations)))
    }

    /// Users of an account in creation order, or the one with `email`; with
    /// `sign_out_pending`, only those with (true) or without (false) a change to pick up.
    pub async fn list(
        &self,
        account_id: &AccountId,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<UserView>> {
        let db = self.engine.reader();
        account::Entity::find_by_id(account_id.as_str())
            .one(db)
            .await?
            .ok_or_else(|| account_not_found(account_id))?;
        let mut query = user::Entity::find()
            .filter(user::Column::AccountId.eq(account_id.as_str()))
            .order_by_asc(user::Column::Id);
        if let Some(email) = &filter.email {
            query = query.filter(user::Column::Email.eq(email.as_str()));
        }
        if let Some(text) = &filter.search {
            query = query.filter(contains(
                text,
                [user::Column::Email, user::Column::DisplayName],
            ));
        }
        let countries = self.emergency_location_countries;
        let Some(mut query) = by_location(db, query, account_id, filter, countries).await? else {
            return Ok(page.finish(Vec::new(), |v: &UserView| v.user_id.to_string()));
        };
        // `true` is served by the partial index of pending users (migration m0007).
        if let Some(pending) = filter.sign_out_pending {
            let latest = user::Column::SignOutPendingLatestSequence;
            query = query.filter(if pending {
                latest.is_not_null()
            } else {
                latest.is_null()
            });
        }
        if let Some(after) = &page.after {
            query = query.filter(user::Column::Id.gt(after.as_str()));
        }
        let users = query.limit(page.fetch_limit()).all(db).await?;
        let views = with_numbers(db, users).await?;
        Ok(page.finish(views, |v| v.user_id.to_string()))
    }

    pub async fn update(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        update: UserUpdate,
        actor: &KeyId,
    ) -> Result<UserView> {
        let item = UserUpdateItem {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            update,
        };
        let actor = actor.to_string();
        self.engine.run_one(UpdateUsers { actor }, item, None).await
    }

    /// Deletes the user; their number goes back to the inventory, and they are told.
    pub async fn delete(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        actor: &KeyId,
    ) -> Result<()> {
        self.engine
            .write(DeleteUser {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                actor: actor.to_string(),
            })
            .await
    }
}

/// Fields of a user to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<DisplayName>,
    pub license_type: Option<LicenseType>,
    /// The user's own emergency location: `Some(None)` takes it away.
    pub emergency_location: Option<Option<LocationId>>,
}
/// An item of BatchCreateUsers.
#[derive(Debug, Clone)]
pub struct NewUserItem {
    pub account_id: AccountId,
    pub email: Email,
    pub display_name: DisplayName,
    pub license_type: LicenseType,
    /// The user's own emergency location, given with the user.
    pub emergency_location: Option<LocationId>,
}

/// An item of BatchUpdateUsers.
#[derive(Debug, Clone)]
pub struct UserUpdateItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub update: UserUpdate,
}

/// The use case; it needs nothing beyond its items.
#[derive(PartialEq, Eq)]
pub(crate) struct CreateUsers;

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
    let named: Vec<_> = items
        .iter()
        .filter_map(|i| i.emergency_location.as_ref())
        .collect();
    let named = named_locations(txn, &named).await?;
    let now = crate::store::db::now();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut rows = Vec::new();
    // A new user has no number yet: a location given with them changes no effective location
    // of a number, so there is no event to tell.
    let mut given = Vec::new();
    for item in &items {
        if !existing.contains(item.account_id.as_str()) {
            outcomes.push(Err(account_not_found(&item.account_id).into()));
            continue;
        }
        if let Some(location) = &item.emergency_location
            && let Err(refused) = check_named(&named, location, &item.account_id)
        {
            outcomes.push(Err(refused));
            continue;
        }
        let address = (item.account_id.to_string(), item.email.to_string());
        if !taken.insert(address) {
            outcomes.push(Err(email_taken(&item.account_id, &item.email).into()));
            continue;
        }
        let user_id = UserId::generate();
        let row = user::Model {
            id: user_id.to_string(),
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
        if let Some(location) = &item.emergency_location {
            given.push((&item.account_id, user_id, location));
        }
    }
    if apply.writes(items.len(), items.len() - rows.len()) {
        insert_users(txn, &rows).await?;
        let given: Vec<_> = given.iter().map(|(a, u, l)| (*a, u, *l)).collect();
        let mut writes = Writes::new(txn);
        give_users(&mut writes, &given);
        writes.run(txn).await?;
    }
    Ok(outcomes)
}

/// The use case; it needs nothing beyond its items.
#[derive(PartialEq, Eq)]
/// Who updates: the actor of the events of users whose emergency location moves.
pub(crate) struct UpdateUsers {
    actor: String,
}

impl SetUseCase for UpdateUsers {
    type Item = UserUpdateItem;
    type Output = UserView;
    const APPENDS_CHANGES: bool = true;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a UserUpdateItem>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<UserView>>> {
        Box::pin(update_all(txn, items, apply, &self.actor))
    }
}

/// The users of every item, locked, in a query per [`SET_CHUNK`]; each item changes its user as
/// the earlier items left them; each changed user is written once, as the last of their items
/// left them.
async fn update_all(
    txn: &DatabaseTransaction,
    items: Vec<&UserUpdateItem>,
    apply: Apply,
    actor: &str,
) -> Result<Vec<Result<UserView>>> {
    let mut users = lock_user_views(txn, &distinct(items.iter().map(|i| &i.user_id))).await?;
    fn location(item: &UserUpdateItem) -> Option<&Option<LocationId>> {
        item.update.emergency_location.as_ref()
    }
    let named: Vec<_> = items.iter().filter_map(|i| location(i)?.as_ref()).collect();
    let named = named_locations(txn, &named).await?;
    let mut moved = Vec::new();
    let now = crate::store::db::now();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut changed = Vec::new();
    for item in &items {
        let Some(view) = users
            .get_mut(&item.user_id)
            .filter(|view| view.account_id == item.account_id)
        else {
            outcomes.push(Err(user_not_found(&item.account_id, &item.user_id).into()));
            continue;
        };
        if let Some(Some(named_location)) = location(item)
            && let Err(refused) = check_named(&named, named_location, &item.account_id)
        {
            outcomes.push(Err(refused));
            continue;
        }
        if let Some(own) = location(item) {
            moved.push((&item.account_id, (&item.user_id, own.as_ref())));
        }
        if let Some(display_name) = &item.update.display_name {
            view.display_name = display_name.to_string();
        }
        if let Some(license_type) = item.update.license_type {
            view.license_type = license_type;
        }
        view.update_time = now;
        outcomes.push(Ok(view.clone()));
        changed.push(&item.user_id);
    }
    let failed = items.len() - changed.len();
    if apply.writes(items.len(), failed) {
        let written: Vec<&UserView> = distinct(changed.into_iter())
            .into_iter()
            .filter_map(|user_id| users.get(user_id))
            .collect();
        write_profiles(txn, &written, now).await?;
        for account in distinct(moved.iter().map(|(account, _)| *account)) {
            let own = moved.iter().filter(|(a, _)| *a == account);
            let changes: Vec<_> = own.map(|(_, change)| *change).collect();
            set_own_locations(txn, account, &changes, actor).await?;
        }
    }
    Ok(outcomes)
}

struct DeleteUser {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub actor: String,
}

impl Mutation for DeleteUser {
    type Output = ();
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(delete_user(txn, self))
    }
}

/// Deletes the user; their number goes back to the inventory, and they are told.
async fn delete_user(txn: &DatabaseTransaction, cmd: &DeleteUser) -> Result<()> {
    let view = lock_user_view(txn, &cmd.account_id, &cmd.user_id).await?;
    let mut writes = Writes::new(txn);
    if let Some(number) = &view.phone_number {
        release_numbers(&mut writes, &[number], crate::store::db::now());
    }
    writes.push(&user::Entity::delete_by_id(cmd.user_id.as_str()));
    forget_users(&mut writes, &[&cmd.user_id]);
    let change = NewChange {
        account_id: cmd.account_id.clone(),
        user_id: cmd.user_id.clone(),
        kind: ChangeKind::UserDeleted,
        e164_phone_number: view.phone_number,
        settings: TelephonySettings::OFF,
        actor: cmd.actor.clone(),
    };
    write_with_changes(txn, writes, vec![change]).await?;
    Ok(())
}
