//! Push deliveries' state: the cursor of each delivery (a webhook, or the e-mail to users), its
//! failures and pause, and the lease that lets exactly one replica deliver it at a time.
//!
//! A lease is a row's `lease_owner` with an expiry. A replica takes a delivery whose lease is free
//! or expired, renews it while it works, and releases it when it stops; every write of progress
//! names the owner, so a replica that lost its lease cannot move the cursor. Every write is a
//! mutation of the group-commit writer. Expiries are written
//! with the replica's clock: replicas' clocks must agree to well within the lease time (NTP).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Set, sea_query::Expr,
};

use crate::domain::ids::{AccountId, UserId};
use crate::error::Result;
use crate::store::db::deliveries::new_delivery;
use crate::store::db::entities::{delivery, user};
use crate::store::db::views::DeliveryState;
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};

fn to_db(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::seconds(30))
}

/// Rows held by `owner`: progress writes are conditional on still holding the lease.
fn held_by(sink: &str, owner: &str) -> Condition {
    Condition::all()
        .add(delivery::Column::Sink.eq(sink))
        .add(delivery::Column::LeaseOwner.eq(owner))
}

/// Push deliveries' cursors and leases: the store's surface for them.
pub struct Deliveries<'a> {
    engine: &'a Engine,
}

impl<'a> Deliveries<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// Creates the delivery starting after `start_after` unless it exists.
    pub async fn ensure(&self, sink: &str, start_after: u64) -> Result<()> {
        self.engine
            .write(EnsureDelivery {
                sink: sink.to_owned(),
                start_after,
            })
            .await
    }

    pub async fn state(&self, sink: &str) -> Result<Option<DeliveryState>> {
        Ok(delivery::Entity::find_by_id(sink)
            .one(self.engine.reader())
            .await?
            .map(DeliveryState::from))
    }

    /// Deliveries that are not paused and whose lease is free, expired or `owner`'s.
    pub async fn claimable(&self, owner: &str) -> Result<Vec<String>> {
        Ok(delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Sink)
            .filter(delivery::Column::Paused.eq(false))
            .filter(lease_free_or(owner))
            .into_tuple::<String>()
            .all(self.engine.reader())
            .await?)
    }

    /// Takes or renews the lease on `sink` for `ttl`; `false` when another replica holds it or
    /// the delivery is paused or gone.
    pub async fn acquire_lease(&self, sink: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.engine
            .write(AcquireLease {
                sink: sink.to_owned(),
                owner: owner.to_owned(),
                ttl,
            })
            .await
    }

    /// Gives the lease up at once, so another replica may take over without waiting.
    pub async fn release_lease(&self, sink: &str, owner: &str) -> Result<()> {
        self.engine
            .write(ReleaseLease {
                sink: sink.to_owned(),
                owner: owner.to_owned(),
            })
            .await
    }

    /// Moves the cursor to `cursor` (after delivering the event `delivered`, if any) and clears
    /// the failure streak. `false` when the lease was lost.
    pub async fn advance(
        &self,
        sink: &str,
        owner: &str,
        cursor: u64,
        delivered: Option<u64>,
    ) -> Result<bool> {
        self.engine
            .write(AdvanceDelivery {
                sink: sink.to_owned(),
                owner: owner.to_owned(),
                cursor,
                delivered,
            })
            .await
    }

    /// Records a failed attempt. When every attempt has failed for `pause_after`, the delivery
    /// is paused. Returns whether it was paused, or `None` when the lease was lost.
    pub async fn record_failure(
        &self,
        sink: &str,
        owner: &str,
        error: &str,
        pause_after: Option<Duration>,
    ) -> Result<Option<bool>> {
        self.engine
            .write(RecordFailure {
                sink: sink.to_owned(),
                owner: owner.to_owned(),
                error: error.to_owned(),
                pause_after,
            })
            .await
    }

    /// Records an event given up for good (e.g. a refused mail recipient) and moves past it.
    pub async fn skip_event(
        &self,
        sink: &str,
        owner: &str,
        cursor: u64,
        error: &str,
    ) -> Result<bool> {
        self.engine
            .write(SkipEvent {
                sink: sink.to_owned(),
                owner: owner.to_owned(),
                cursor,
                error: error.to_owned(),
            })
            .await
    }

    /// The e-mail address of a user, if the user still exists.
    pub async fn user_email(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
    ) -> Result<Option<String>> {
        Ok(user::Entity::find_by_id(user_id.as_str())
            .filter(user::Column::AccountId.eq(account_id.as_str()))
            .select_only()
            .column(user::Column::Email)
            .into_tuple::<String>()
            .one(self.engine.reader())
            .await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Use cases, each run by the writer inside a savepoint. Each is one conditional statement (the
// failure record: a locked read, then a write), so that on PostgreSQL two replicas racing for a
// lease serialise on the row: the second one's condition is checked again against the first
// one's committed row, and it matches nothing. Times are taken when the mutation runs, never
// before it was queued: an expiry is never earlier than the holder's own reckoning.
// ---------------------------------------------------------------------------------------------

struct EnsureDelivery {
    sink: String,
    start_after: u64,
}

impl Mutation for EnsureDelivery {
    type Output = ();
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(async move {
            delivery::Entity::insert(new_delivery(&self.sink, self.start_after))
                .on_conflict_do_nothing_on([delivery::Column::Sink])
                .exec_without_returning(txn)
                .await?;
            Ok(())
        })
    }
}

struct AcquireLease {
    sink: String,
    owner: String,
    ttl: Duration,
}

impl Mutation for AcquireLease {
    type Output = bool;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, bool> {
        Box::pin(async move {
            let updated = delivery::Entity::update_many()
                .col_expr(
                    delivery::Column::LeaseOwner,
                    Expr::value(self.owner.as_str()),
                )
                .col_expr(
                    delivery::Column::LeaseExpireTime,
                    Expr::value(expiry(self.ttl)),
                )
                .filter(delivery::Column::Sink.eq(self.sink.as_str()))
                .filter(delivery::Column::Paused.eq(false))
                .filter(lease_free_or(&self.owner))
                .exec(txn)
                .await?;
            Ok(updated.rows_affected == 1)
        })
    }
}

struct ReleaseLease {
    sink: String,
    owner: String,
}

impl Mutation for ReleaseLease {
    type Output = ();
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, ()> {
        Box::pin(async move {
            delivery::Entity::update_many()
                .col_expr(delivery::Column::LeaseOwner, Expr::value(None::<String>))
                .col_expr(
                    delivery::Column::LeaseExpireTime,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .filter(held_by(&self.sink, &self.owner))
                .exec(txn)
                .await?;
            Ok(())
        })
    }
}

struct AdvanceDelivery {
    sink: String,
    owner: String,
    cursor: u64,
    delivered: Option<u64>,
}

impl Mutation for AdvanceDelivery {
    type Output = bool;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, bool> {
        Box::pin(async move {
            let mut update = delivery::Entity::update_many()
                .col_expr(delivery::Column::Cursor, Expr::value(to_db(self.cursor)))
                .col_expr(
                    delivery::Column::FailingSince,
                    Expr::value(None::<DateTime<Utc>>),
                );
            if let Some(delivered) = self.delivered {
                update = update.col_expr(
                    delivery::Column::LastDelivered,
                    Expr::value(to_db(delivered)),
                );
            }
            let updated = update
                .filter(held_by(&self.sink, &self.owner))
                .exec(txn)
                .await?;
            Ok(updated.rows_affected == 1)
        })
    }
}

struct RecordFailure {
    sink: String,
    owner: String,
    error: String,
    pause_after: Option<Duration>,
}

impl Mutation for RecordFailure {
    type Output = Option<bool>;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Option<bool>> {
        Box::pin(async move {
            // Locked: the streak's start is read and written by one transaction at a time.
            let Some(state) = delivery::Entity::find()
                .filter(held_by(&self.sink, &self.owner))
                .lock_exclusive()
                .one(txn)
                .await?
            else {
                return Ok(None);
            };
            let now = Utc::now();
            let failing_since = state.failing_since.unwrap_or(now);
            let pause = self.pause_after.is_some_and(|limit| {
                chrono::Duration::from_std(limit).is_ok_and(|limit| now - failing_since >= limit)
            });
            let mut model: delivery::ActiveModel = state.into();
            model.failing_since = Set(Some(failing_since));
            model.last_error = Set(Some(self.error.clone()));
            model.last_error_time = Set(Some(now));
            if pause {
                model.paused = Set(true);
            }
            model.update(txn).await?;
            Ok(Some(pause))
        })
    }
}

struct SkipEvent {
    sink: String,
    owner: String,
    cursor: u64,
    error: String,
}

impl Mutation for SkipEvent {
    type Output = bool;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, bool> {
        Box::pin(async move {
            let updated = delivery::Entity::update_many()
                .col_expr(delivery::Column::Cursor, Expr::value(to_db(self.cursor)))
                .col_expr(
                    delivery::Column::LastError,
                    Expr::value(self.error.as_str()),
                )
                .col_expr(delivery::Column::LastErrorTime, Expr::value(Utc::now()))
                .col_expr(
                    delivery::Column::FailingSince,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .filter(held_by(&self.sink, &self.owner))
                .exec(txn)
                .await?;
            Ok(updated.rows_affected == 1)
        })
    }
}

fn lease_free_or(owner: &str) -> Condition {
    Condition::any()
        .add(delivery::Column::LeaseOwner.is_null())
        .add(delivery::Column::LeaseOwner.eq(owner))
        .add(delivery::Column::LeaseExpireTime.is_null())
        .add(delivery::Column::LeaseExpireTime.lt(Utc::now()))
}
