//! Push deliveries' state: the cursor of each delivery (a webhook, or the e-mail to users), its
//! failures and pause, and the lease that lets exactly one replica deliver it at a time.
//!
//! A lease is a row's `lease_owner` with an expiry. A replica takes a delivery whose lease is free
//! or expired, renews it while it works, and releases it when it stops; every write of progress
//! names the owner, so a replica that lost its lease cannot move the cursor. Expiries are written
//! with the replica's clock: replicas' clocks must agree to well within the lease time (NTP).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::Expr,
};

use super::Store;
use super::entities::{delivery, user};
use super::views::DeliveryState;
use crate::error::Result;

/// The delivery key of the e-mail to users.
pub const MAIL_SINK: &str = "mail";

/// The delivery key of a webhook.
pub fn webhook_sink(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

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

impl Store {
    /// Creates the delivery starting after `start_after` unless it exists.
    pub async fn ensure_delivery(&self, sink: &str, start_after: u64) -> Result<()> {
        delivery::Entity::insert(new_delivery(sink, start_after))
            .on_conflict_do_nothing_on([delivery::Column::Sink])
            .exec_without_returning(self.connection())
            .await?;
        Ok(())
    }

    pub async fn delivery_state(&self, sink: &str) -> Result<Option<DeliveryState>> {
        Ok(delivery::Entity::find_by_id(sink)
            .one(self.connection())
            .await?
            .map(DeliveryState::from))
    }

    /// Deliveries that are not paused and whose lease is free, expired or `owner`'s.
    pub async fn claimable_deliveries(&self, owner: &str) -> Result<Vec<String>> {
        Ok(delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Sink)
            .filter(delivery::Column::Paused.eq(false))
            .filter(lease_free_or(owner))
            .into_tuple::<String>()
            .all(self.connection())
            .await?)
    }

    /// Takes or renews the lease on `sink` for `ttl`; `false` when another replica holds it or
    /// the delivery is paused or gone.
    pub async fn acquire_delivery_lease(
        &self,
        sink: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let updated = delivery::Entity::update_many()
            .col_expr(delivery::Column::LeaseOwner, Expr::value(owner))
            .col_expr(delivery::Column::LeaseExpireTime, Expr::value(expiry(ttl)))
            .filter(delivery::Column::Sink.eq(sink))
            .filter(delivery::Column::Paused.eq(false))
            .filter(lease_free_or(owner))
            .exec(self.connection())
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Gives the lease up at once, so another replica may take over without waiting.
    pub async fn release_delivery_lease(&self, sink: &str, owner: &str) -> Result<()> {
        delivery::Entity::update_many()
            .col_expr(delivery::Column::LeaseOwner, Expr::value(None::<String>))
            .col_expr(
                delivery::Column::LeaseExpireTime,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(held_by(sink, owner))
            .exec(self.connection())
            .await?;
        Ok(())
    }

    /// Moves the cursor to `cursor` (after delivering the event `delivered`, if any) and clears
    /// the failure streak. `false` when the lease was lost.
    pub async fn advance_delivery(
        &self,
        sink: &str,
        owner: &str,
        cursor: u64,
        delivered: Option<u64>,
    ) -> Result<bool> {
        let mut update = delivery::Entity::update_many()
            .col_expr(delivery::Column::Cursor, Expr::value(to_db(cursor)))
            .col_expr(
                delivery::Column::FailingSince,
                Expr::value(None::<DateTime<Utc>>),
            );
        if let Some(delivered) = delivered {
            update = update.col_expr(
                delivery::Column::LastDelivered,
                Expr::value(to_db(delivered)),
            );
        }
        let updated = update
            .filter(held_by(sink, owner))
            .exec(self.connection())
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Records a failed attempt. When every attempt has failed for `pause_after`, the delivery
    /// is paused. Returns whether it was paused, or `None` when the lease was lost.
    pub async fn record_delivery_failure(
        &self,
        sink: &str,
        owner: &str,
        error: &str,
        pause_after: Option<Duration>,
    ) -> Result<Option<bool>> {
        let Some(state) = delivery::Entity::find()
            .filter(held_by(sink, owner))
            .one(self.connection())
            .await?
        else {
            return Ok(None);
        };
        let now = Utc::now();
        let failing_since = state.failing_since.unwrap_or(now);
        let pause = pause_after.is_some_and(|limit| {
            chrono::Duration::from_std(limit).is_ok_and(|limit| now - failing_since >= limit)
        });
        let mut model: delivery::ActiveModel = state.into();
        model.failing_since = Set(Some(failing_since));
        model.last_error = Set(Some(error.to_owned()));
        model.last_error_time = Set(Some(now));
        if pause {
            model.paused = Set(true);
        }
        model.update(self.connection()).await?;
        Ok(Some(pause))
    }

    /// Records an event given up for good (e.g. a refused mail recipient) and moves past it.
    pub async fn skip_delivery_event(
        &self,
        sink: &str,
        owner: &str,
        cursor: u64,
        error: &str,
    ) -> Result<bool> {
        let updated = delivery::Entity::update_many()
            .col_expr(delivery::Column::Cursor, Expr::value(to_db(cursor)))
            .col_expr(delivery::Column::LastError, Expr::value(error))
            .col_expr(delivery::Column::LastErrorTime, Expr::value(Utc::now()))
            .col_expr(
                delivery::Column::FailingSince,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(held_by(sink, owner))
            .exec(self.connection())
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// The e-mail address of a user, if the user still exists.
    pub async fn user_email(&self, account_id: &str, user_id: &str) -> Result<Option<String>> {
        Ok(user::Entity::find_by_id(user_id)
            .filter(user::Column::AccountId.eq(account_id))
            .select_only()
            .column(user::Column::Email)
            .into_tuple::<String>()
            .one(self.connection())
            .await?)
    }
}

fn lease_free_or(owner: &str) -> Condition {
    Condition::any()
        .add(delivery::Column::LeaseOwner.is_null())
        .add(delivery::Column::LeaseOwner.eq(owner))
        .add(delivery::Column::LeaseExpireTime.is_null())
        .add(delivery::Column::LeaseExpireTime.lt(Utc::now()))
}

pub(super) fn new_delivery(sink: &str, start_after: u64) -> delivery::ActiveModel {
    delivery::ActiveModel {
        sink: Set(sink.to_owned()),
        cursor: Set(to_db(start_after)),
        last_delivered: Set(0),
        paused: Set(false),
        failing_since: Set(None),
        last_error: Set(None),
        last_error_time: Set(None),
        lease_owner: Set(None),
        lease_expire_time: Set(None),
    }
}
