//! Assigning numbers to users and taking them back, one or a thousand at a time, in a fixed
//! number of statements: `AssignPhoneNumber` and `UnassignPhoneNumber` are these use cases with
//! one item, their batch RPCs with many.
//!
//! The users and numbers of every item are read (and on PostgreSQL locked) in two queries; each
//! item is then decided in order by `domain::telephony` against the state the earlier items
//! left, so that two items giving out one number, or one user twice, conflict as two requests
//! would; the successes are written with set statements: the numbers, their history periods,
//! the users' permissions, and their change events through the outbox.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};

use super::Requester;
use crate::domain::change::{ChangeEvent, ChangeKind, NewChange};
use crate::domain::ids::{AccountId, LocationId, RequestId, UserId};
use crate::domain::phone_number::{E164, NumberStatus, exists_at};
use crate::domain::telephony::{self, TelephonySettings};
use crate::error::{Error, Result};
use crate::store::db::entities::phone_number;
use crate::store::db::history::open_periods;
use crate::store::db::numbers::{
    lock_numbers, number_not_found, number_state, release_numbers, visible_to,
};
use crate::store::db::users::{user_not_found, write_many_settings};
use crate::store::db::views::{NumberView, UserView};
use crate::store::db::{SET_CHUNK, distinct};
use crate::store::engine::Engine;
use crate::store::engine::mutation::TxnFuture;
use crate::store::engine::outbox::append_changes;
use crate::store::engine::set_run::{Apply, BatchItem, BatchOptions, ItemResult, SetUseCase};
use crate::store::use_cases::emergency_locations::{AssignmentLocations, give_users};
use crate::store::use_cases::sign_out::{lock_users, record_pending};

/// Assigning and taking back numbers: the store's surface for it.
pub struct Telephony<'a> {
    engine: &'a Engine,
    /// The countries whose numbers a user may only hold with an emergency location.
    emergency_location_countries: &'a [String],
}

impl<'a> Telephony<'a> {
    pub(crate) fn new(engine: &'a Engine, emergency_location_countries: &'a [String]) -> Self {
        Self {
            engine,
            emergency_location_countries,
        }
    }

    /// Gives `number` to the user (and `emergency_location`, if given); their calling and SMS
    /// permissions are turned off.
    pub async fn assign(
        &self,
        item: AssignItem,
        request_id: Option<&RequestId>,
        caller: Requester<'_>,
    ) -> Result<UserView> {
        let key = caller.idempotency_key(request_id, "AssignPhoneNumber", || {
            format!(
                "{}/{}/{}/{}",
                item.account_id,
                item.user_id,
                item.number,
                item.emergency_location
                    .as_ref()
                    .map_or("", LocationId::as_str)
            )
        });
        self.engine.run_one(self.assigning(caller), item, key).await
    }

    fn assigning(&self, caller: Requester<'_>) -> AssignNumbers {
        AssignNumbers {
            caller_account: caller.account.cloned(),
            actor: caller.actor(),
            emergency_location_countries: self.emergency_location_countries.to_vec(),
        }
    }

    /// BatchAssignPhoneNumbers: each item as [`Telephony::assign`] would answer it.
    pub async fn batch_assign(
        &self,
        items: Vec<BatchItem<AssignItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<UserView>>> {
        let use_case = self.assigning(caller);
        self.engine
            .run_set(
                "BatchAssignPhoneNumbers",
                use_case,
                items,
                options,
                caller.scope(),
            )
            .await
    }

    /// Takes the user's number back into the inventory; their permissions go back to off.
    pub async fn unassign(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
        confirm: bool,
        request_id: Option<&RequestId>,
        caller: Requester<'_>,
    ) -> Result<UserView> {
        let key = caller.idempotency_key(request_id, "UnassignPhoneNumber", || {
            format!("{account_id}/{user_id}/confirm={confirm}")
        });
        let item = UnassignItem {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            confirm,
        };
        self.engine
            .run_one(UnassignNumbers::by(caller), item, key)
            .await
    }

    /// BatchUnassignPhoneNumbers: each item as [`Telephony::unassign`] would answer it.
    pub async fn batch_unassign(
        &self,
        items: Vec<BatchItem<UnassignItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<UserView>>> {
        let use_case = UnassignNumbers::by(caller);
        self.engine
            .run_set(
                "BatchUnassignPhoneNumbers",
                use_case,
                items,
                options,
                caller.scope(),
            )
            .await
    }
}

/// An item of BatchAssignPhoneNumbers.
#[derive(Debug, Clone)]
pub struct AssignItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub number: E164,
    /// A location of the account that becomes the user's, in the same transaction.
    pub emergency_location: Option<LocationId>,
}

/// An item of BatchUnassignPhoneNumbers.
#[derive(Debug, Clone)]
pub struct UnassignItem {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub confirm: bool,
}

/// Who assigns: the key's account when it is scoped to one (numbers it may not see are answered
/// as outside its scope, whatever their state), and the key, the changes' actor; and the
/// countries whose numbers need an emergency location.
#[derive(PartialEq, Eq)]
pub(crate) struct AssignNumbers {
    pub caller_account: Option<AccountId>,
    pub actor: String,
    pub emergency_location_countries: Vec<String>,
}

impl SetUseCase for AssignNumbers {
    type Item = AssignItem;
    type Output = UserView;
    const APPENDS_CHANGES: bool = true;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a AssignItem>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<UserView>>> {
        Box::pin(assign_all(txn, self, items, apply))
    }
}

/// An item decided to succeed: what it writes.
struct Decided<'a> {
    /// Its place among the outcomes.
    outcome: usize,
    item: &'a AssignItem,
    settings: TelephonySettings,
}

async fn assign_all(
    txn: &DatabaseTransaction,
    use_case: &AssignNumbers,
    items: Vec<&AssignItem>,
    apply: Apply,
) -> Result<Vec<Result<UserView>>> {
    let now = crate::store::db::now();
    let mut users = lock_users(txn, &distinct(items.iter().map(|item| &item.user_id))).await?;
    let mut numbers = lock_numbers(txn, &distinct(items.iter().map(|item| &item.number))).await?;
    let countries: Vec<&str> = numbers.values().map(|n| n.country.as_str()).collect();
    let named: Vec<&LocationId> = items
        .iter()
        .filter_map(|item| item.emergency_location.as_ref())
        .collect();
    let mut locations = AssignmentLocations::load(
        txn,
        &use_case.emergency_location_countries,
        &distinct(items.iter().map(|item| &item.account_id)),
        &countries,
        &named,
    )
    .await?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut decided = Vec::new();
    for item in &items {
        let outcome = decide(
            use_case.caller_account.as_ref(),
            item,
            &mut users,
            &mut numbers,
            &mut locations,
            now,
        );
        if let Ok(view) = &outcome {
            decided.push(Decided {
                outcome: outcomes.len(),
                item,
                settings: view.settings,
            });
        }
        outcomes.push(outcome);
    }
    let events = if apply.writes(items.len(), items.len() - decided.len()) {
        write_assignments(txn, use_case, &decided, now).await?
    } else {
        Vec::new()
    };
    let succeeded: Vec<usize> = decided.iter().map(|success| success.outcome).collect();
    record_pending(txn, &mut outcomes, &succeeded, events, now).await?;
    Ok(outcomes)
}

/// Decides one item against the state the earlier items left, and on success moves that state
/// on. Checks come in the single RPC's order: the user, the number, then the rules.
fn decide(
    caller_account: Option<&AccountId>,
    item: &AssignItem,
    users: &mut HashMap<UserId, UserView>,
    numbers: &mut HashMap<E164, NumberView>,
    locations: &mut AssignmentLocations<'_>,
    now: DateTime<Utc>,
) -> Result<UserView> {
    let view = users
        .get_mut(&item.user_id)
        .filter(|view| view.account_id == item.account_id)
        .ok_or_else(|| user_not_found(&item.account_id, &item.user_id))?;
    let number = numbers
        .get_mut(&item.number)
        .filter(|number| exists_at(&number_state(number), now));
    let number = match (caller_account, number) {
        (None, Some(number)) => number,
        (None, None) => return Err(number_not_found(&item.number).into()),
        (Some(own), Some(number)) if visible_to(Some(own), number) => number,
        (Some(_), _) => return Err(Error::outside_scope()),
    };
    let settings = telephony::assign(&view.line(), &number_state(number))?;
    locations.check(
        &item.account_id,
        &item.user_id,
        &item.number,
        &number.country,
        item.emergency_location.as_ref(),
    )?;
    number.status = NumberStatus::Assigned;
    number.account_id = Some(item.account_id.clone());
    number.user_id = Some(item.user_id.clone());
    number.associate_time = Some(now);
    number.update_time = now;
    view.phone_number = Some(item.number.clone());
    view.settings = settings;
    view.update_time = now;
    Ok(view.clone())
}

/// Writes the decided assignments: numbers, history periods, permissions, then their events.
async fn write_assignments(
    txn: &DatabaseTransaction,
    use_case: &AssignNumbers,
    decided: &[Decided<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<ChangeEvent>> {
    use phone_number::Column;
    for chunk in decided.chunks(SET_CHUNK) {
        let mut holder = CaseStatement::new();
        let mut account = CaseStatement::new();
        for success in chunk {
            let is_it = || Column::E164.eq(success.item.number.as_str());
            holder = holder.case(is_it(), Expr::value(success.item.user_id.as_str()));
            account = account.case(is_it(), Expr::value(success.item.account_id.as_str()));
        }
        // The unique index on user_id backs the rule up if two assignments ever race past it.
        phone_number::Entity::update_many()
            .set(phone_number::ActiveModel {
                status: Set(NumberStatus::Assigned.into()),
                associate_time: Set(Some(now)),
                update_time: Set(now),
                ..Default::default()
            })
            .col_expr(Column::UserId, holder.into())
            .col_expr(Column::AccountId, account.into())
            .filter(Column::E164.is_in(chunk.iter().map(|s| s.item.number.as_str())))
            .exec(txn)
            .await?;
        open_periods(
            txn,
            chunk
                .iter()
                .map(|s| (&s.item.number, &s.item.account_id, &s.item.user_id)),
            now,
        )
        .await?;
        write_many_settings(
            txn,
            chunk.iter().map(|s| (&s.item.user_id, s.settings)),
            now,
        )
        .await?;
    }
    let given: Vec<_> = decided
        .iter()
        .filter_map(|s| {
            let location = s.item.emergency_location.as_ref()?;
            Some((&s.item.account_id, &s.item.user_id, location))
        })
        .collect();
    if !given.is_empty() {
        give_users(txn, &given).await?;
    }
    append_changes(
        txn,
        decided
            .iter()
            .map(|success| NewChange {
                account_id: success.item.account_id.clone(),
                user_id: success.item.user_id.clone(),
                kind: ChangeKind::PhoneNumberAssigned,
                e164_phone_number: Some(success.item.number.clone()),
                settings: success.settings,
                actor: use_case.actor.clone(),
            })
            .collect(),
    )
    .await
}

/// Who takes numbers back: the key, the changes' actor.
#[derive(PartialEq, Eq)]
pub(crate) struct UnassignNumbers {
    pub actor: String,
}

impl UnassignNumbers {
    fn by(caller: Requester<'_>) -> Self {
        Self {
            actor: caller.actor(),
        }
    }
}

impl SetUseCase for UnassignNumbers {
    type Item = UnassignItem;
    type Output = UserView;
    const APPENDS_CHANGES: bool = true;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a UnassignItem>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<UserView>>> {
        Box::pin(unassign_all(txn, self, items, apply))
    }
}

/// An item decided to succeed: the number it takes back.
struct Released<'a> {
    outcome: usize,
    item: &'a UnassignItem,
    e164: E164,
}

async fn unassign_all(
    txn: &DatabaseTransaction,
    use_case: &UnassignNumbers,
    items: Vec<&UnassignItem>,
    apply: Apply,
) -> Result<Vec<Result<UserView>>> {
    let now = crate::store::db::now();
    let user_ids = distinct(items.iter().map(|item| &item.user_id));
    let mut users = lock_users(txn, &user_ids).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    let mut released: Vec<Released<'_>> = Vec::new();
    for item in &items {
        let decided = users
            .get_mut(&item.user_id)
            .filter(|view| view.account_id == item.account_id)
            .ok_or_else(|| user_not_found(&item.account_id, &item.user_id).into())
            .and_then(|view| {
                let e164 = telephony::unassign(&view.line(), item.confirm)?;
                view.phone_number = None;
                view.settings = TelephonySettings::OFF;
                view.update_time = now;
                Ok((view.clone(), e164))
            });
        outcomes.push(match decided {
            Ok((view, e164)) => {
                released.push(Released {
                    outcome: outcomes.len(),
                    item,
                    e164,
                });
                Ok(view)
            }
            Err(error) => Err(error),
        });
    }
    let events = if apply.writes(items.len(), items.len() - released.len()) {
        write_releases(txn, use_case, &released, now).await?
    } else {
        Vec::new()
    };
    let succeeded: Vec<usize> = released.iter().map(|success| success.outcome).collect();
    record_pending(txn, &mut outcomes, &succeeded, events, now).await?;
    Ok(outcomes)
}

/// Writes the decided releases: numbers back to the inventory, their periods closed,
/// permissions off, then their events.
async fn write_releases(
    txn: &DatabaseTransaction,
    use_case: &UnassignNumbers,
    released: &[Released<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<ChangeEvent>> {
    for chunk in released.chunks(SET_CHUNK) {
        let e164s: Vec<&E164> = chunk.iter().map(|r| &r.e164).collect();
        release_numbers(txn, &e164s, now).await?;
        write_many_settings(
            txn,
            chunk
                .iter()
                .map(|r| (&r.item.user_id, TelephonySettings::OFF)),
            now,
        )
        .await?;
    }
    append_changes(
        txn,
        released
            .iter()
            .map(|r| NewChange {
                account_id: r.item.account_id.clone(),
                user_id: r.item.user_id.clone(),
                kind: ChangeKind::PhoneNumberUnassigned,
                e164_phone_number: Some(r.e164.clone()),
                settings: TelephonySettings::OFF,
                actor: use_case.actor.clone(),
            })
            .collect(),
    )
    .await
}
