//! Assigning numbers to users and taking them back, one or a thousand at a time, in a fixed
//! number of statements: `AssignPhoneNumber` and `UnassignPhoneNumber` are one use case,
//! [`ChangeNumbers`], with one item; their batch RPCs are it with many; and single assignments
//! and unassignments waiting together for the writer run as one set of it.
//!
//! The users and numbers of every item are read (and on PostgreSQL locked) in two queries; each
//! item is then decided by `domain::telephony` against the state the earlier items left, so that
//! two items giving out one number, or one user twice, conflict as two requests would; the
//! successes are written with set statements: the numbers, their history periods, the users'
//! permissions, and their change events through the outbox.

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
use crate::store::db::writes::Writes;
use crate::store::db::{SET_CHUNK, distinct};
use crate::store::engine::Engine;
use crate::store::engine::mutation::TxnFuture;
use crate::store::engine::outbox::write_with_changes;
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
        let change = NumberChange::Assign(item);
        self.engine.run_one(self.changes(caller), change, key).await
    }

    fn changes(&self, caller: Requester<'_>) -> ChangeNumbers {
        ChangeNumbers {
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
        let items = items.into_iter().map(|i| i.map(NumberChange::Assign));
        self.engine
            .run_set(
                "BatchAssignPhoneNumbers",
                self.changes(caller),
                items.collect(),
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
        let change = NumberChange::Unassign(UnassignItem {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            confirm,
        });
        self.engine.run_one(self.changes(caller), change, key).await
    }

    /// BatchUnassignPhoneNumbers: each item as [`Telephony::unassign`] would answer it.
    pub async fn batch_unassign(
        &self,
        items: Vec<BatchItem<UnassignItem>>,
        options: BatchOptions,
        caller: Requester<'_>,
    ) -> Result<Vec<ItemResult<UserView>>> {
        let items = items.into_iter().map(|i| i.map(NumberChange::Unassign));
        self.engine
            .run_set(
                "BatchUnassignPhoneNumbers",
                self.changes(caller),
                items.collect(),
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

/// One item of [`ChangeNumbers`].
#[derive(Debug, Clone)]
pub(crate) enum NumberChange {
    Assign(AssignItem),
    Unassign(UnassignItem),
}

impl NumberChange {
    fn user_id(&self) -> &UserId {
        match self {
            Self::Assign(item) => &item.user_id,
            Self::Unassign(item) => &item.user_id,
        }
    }
}

/// Who gives numbers out and takes them back: the key's account when it is scoped to one
/// (numbers it may not see are answered as outside its scope, whatever their state), and the
/// key, the changes' actor; and the countries whose numbers need an emergency location.
#[derive(PartialEq, Eq)]
pub(crate) struct ChangeNumbers {
    pub caller_account: Option<AccountId>,
    pub actor: String,
    pub emergency_location_countries: Vec<String>,
}

impl SetUseCase for ChangeNumbers {
    type Item = NumberChange;
    type Output = UserView;
    const APPENDS_CHANGES: bool = true;

    fn run_all<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<&'a NumberChange>,
        apply: Apply,
    ) -> TxnFuture<'a, Vec<Result<UserView>>> {
        Box::pin(change_all(txn, self, items, apply))
    }
}

/// An assignment decided to succeed: what it writes.
struct Decided<'a> {
    /// Its place among the outcomes.
    outcome: usize,
    item: &'a AssignItem,
    settings: TelephonySettings,
}

/// An unassignment decided to succeed: the number it takes back.
struct Released<'a> {
    outcome: usize,
    item: &'a UnassignItem,
    e164: E164,
}

/// Decides the unassignments first, then the assignments, each kind in item order. A batch
/// RPC holds one kind, so its items are decided in their order; single requests of both kinds
/// were all waiting at once, so this order is one they could have run in, and the one in which
/// the writes below can follow them: a number taken back may be given out again in the run.
async fn change_all(
    txn: &DatabaseTransaction,
    use_case: &ChangeNumbers,
    items: Vec<&NumberChange>,
    apply: Apply,
) -> Result<Vec<Result<UserView>>> {
    let now = crate::store::db::now();
    let assignments: Vec<(usize, &AssignItem)> = (items.iter().enumerate())
        .filter_map(|(at, item)| match item {
            NumberChange::Assign(item) => Some((at, item)),
            NumberChange::Unassign(_) => None,
        })
        .collect();
    let mut users = lock_users(txn, &distinct(items.iter().map(|item| item.user_id()))).await?;
    let wanted = distinct(assignments.iter().map(|(_, item)| &item.number));
    let mut numbers = lock_numbers(txn, &wanted).await?;
    let countries: Vec<&str> = numbers.values().map(|n| n.country.as_str()).collect();
    let named: Vec<&LocationId> = (assignments.iter())
        .filter_map(|(_, item)| item.emergency_location.as_ref())
        .collect();
    let mut locations = AssignmentLocations::load(
        txn,
        &use_case.emergency_location_countries,
        &distinct(assignments.iter().map(|(_, item)| &item.account_id)),
        &countries,
        &named,
    )
    .await?;
    let mut outcomes: Vec<Option<Result<UserView>>> = items.iter().map(|_| None).collect();
    let mut released = Vec::new();
    for (at, item) in items.iter().enumerate() {
        let NumberChange::Unassign(item) = item else {
            continue;
        };
        let outcome = release(item, &mut users, now).map(|(view, e164)| {
            // The number goes back as the write below leaves it, for an assignment after it.
            if let Some(number) = numbers.get_mut(&e164) {
                number.status = NumberStatus::Unassigned;
                number.account_id = None;
                number.user_id = None;
                number.associate_time = None;
                number.update_time = now;
            }
            locations.forget_number(&e164);
            released.push(Released {
                outcome: at,
                item,
                e164,
            });
            view
        });
        outcomes[at] = Some(outcome);
    }
    let mut decided = Vec::new();
    for (at, item) in assignments {
        let caller = use_case.caller_account.as_ref();
        let outcome = assign(caller, item, &mut users, &mut numbers, &mut locations, now);
        if let Ok(view) = &outcome {
            decided.push(Decided {
                outcome: at,
                item,
                settings: view.settings,
            });
        }
        outcomes[at] = Some(outcome);
    }
    let mut outcomes: Vec<Result<UserView>> = (outcomes.into_iter())
        .map(|outcome| outcome.unwrap_or_else(|| Err(Error::Internal("an undecided item".into()))))
        .collect();
    let failed = items.len() - released.len() - decided.len();
    let events = if apply.writes(items.len(), failed) {
        write_changes(txn, use_case, &released, &decided, now).await?
    } else {
        Vec::new()
    };
    let succeeded: Vec<usize> = (released.iter().map(|success| success.outcome))
        .chain(decided.iter().map(|success| success.outcome))
        .collect();
    record_pending(txn, &mut outcomes, &succeeded, events, now).await?;
    Ok(outcomes)
}

/// Decides one unassignment against the state the earlier items left, and on success moves
/// that state on: the user's view after it, and the number taken back.
fn release(
    item: &UnassignItem,
    users: &mut HashMap<UserId, UserView>,
    now: DateTime<Utc>,
) -> Result<(UserView, E164)> {
    let view = users
        .get_mut(&item.user_id)
        .filter(|view| view.account_id == item.account_id)
        .ok_or_else(|| user_not_found(&item.account_id, &item.user_id))?;
    let e164 = telephony::unassign(&view.line(), item.confirm)?;
    view.phone_number = None;
    view.settings = TelephonySettings::OFF;
    view.update_time = now;
    Ok((view.clone(), e164))
}

/// Decides one assignment against the state the earlier items left, and on success moves that
/// state on. Checks come in the single RPC's order: the user, the number, then the rules.
fn assign(
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

/// Writes what was decided, in the order it was decided: the numbers taken back (their periods
/// closed), then those given out (their periods opened), the users' permissions, and the
/// events of both; all of it in one step ([`Writes`]).
async fn write_changes(
    txn: &DatabaseTransaction,
    use_case: &ChangeNumbers,
    released: &[Released<'_>],
    decided: &[Decided<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<ChangeEvent>> {
    use phone_number::Column;
    let mut writes = Writes::new(txn);
    for chunk in released.chunks(SET_CHUNK) {
        let e164s: Vec<&E164> = chunk.iter().map(|r| &r.e164).collect();
        release_numbers(&mut writes, &e164s, now);
    }
    for chunk in decided.chunks(SET_CHUNK) {
        let mut holder = CaseStatement::new();
        let mut account = CaseStatement::new();
        for success in chunk {
            let is_it = || Column::E164.eq(success.item.number.as_str());
            holder = holder.case(is_it(), Expr::value(success.item.user_id.as_str()));
            account = account.case(is_it(), Expr::value(success.item.account_id.as_str()));
        }
        // The unique index on user_id backs the rule up if two assignments ever race past it.
        writes.push(
            &phone_number::Entity::update_many()
                .set(phone_number::ActiveModel {
                    status: Set(NumberStatus::Assigned.into()),
                    associate_time: Set(Some(now)),
                    update_time: Set(now),
                    ..Default::default()
                })
                .col_expr(Column::UserId, holder.into())
                .col_expr(Column::AccountId, account.into())
                .filter(Column::E164.is_in(chunk.iter().map(|s| s.item.number.as_str()))),
        );
        open_periods(
            &mut writes,
            chunk
                .iter()
                .map(|s| (&s.item.number, &s.item.account_id, &s.item.user_id)),
            now,
        );
    }
    // Each user once, as the last item about them left them.
    let mut settings: HashMap<&UserId, TelephonySettings> = HashMap::new();
    for r in released {
        settings.insert(&r.item.user_id, TelephonySettings::OFF);
    }
    for s in decided {
        settings.insert(&s.item.user_id, s.settings);
    }
    write_many_settings(&mut writes, settings.into_iter(), now);
    let given: Vec<_> = decided
        .iter()
        .filter_map(|s| {
            let location = s.item.emergency_location.as_ref()?;
            Some((&s.item.account_id, &s.item.user_id, location))
        })
        .collect();
    give_users(&mut writes, &given);
    let released_changes = released.iter().map(|r| NewChange {
        account_id: r.item.account_id.clone(),
        user_id: r.item.user_id.clone(),
        kind: ChangeKind::PhoneNumberUnassigned,
        e164_phone_number: Some(r.e164.clone()),
        settings: TelephonySettings::OFF,
        actor: use_case.actor.clone(),
    });
    let given_changes = decided.iter().map(|s| NewChange {
        account_id: s.item.account_id.clone(),
        user_id: s.item.user_id.clone(),
        kind: ChangeKind::PhoneNumberAssigned,
        e164_phone_number: Some(s.item.number.clone()),
        settings: s.settings,
        actor: use_case.actor.clone(),
    });
    let changes = released_changes.chain(given_changes).collect();
    write_with_changes(txn, writes, changes).await
}
