//! What the store answers: read models of its rows in the domain's types. Rows never leave the
//! store, so a column added to a table changes this file, not the api or the events.

use chrono::{DateTime, Utc};
use sea_orm::ActiveEnum;
use serde::{Deserialize, Serialize};

use super::entities::enums::{self, kinds_from_db};
use super::entities::{
    account, change_event, delivery, phone_number, phone_number_assignment, phone_number_order,
    user, webhook,
};
use crate::domain::change::{ChangeEvent, ChangeKind, EventKind};
use crate::domain::ids::{AccountId, OrderId, UserId, WebhookId};
use crate::domain::phone_number::{E164, NumberStatus, NumberType, OrderStatus, ProductType};
use crate::domain::sign_out::SignOutPending;
use crate::domain::telephony::{TelephonySettings, UserLine};
use crate::domain::user::LicenseType;
use crate::domain::webhook::EventFilter;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub account_id: AccountId,
    pub name: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<account::Model> for AccountView {
    fn from(row: account::Model) -> Self {
        Self {
            account_id: AccountId::from_stored(row.id),
            name: row.name,
            create_time: row.create_time,
            update_time: row.update_time,
        }
    }
}

/// A user with the number they hold. An idempotent request's retry gets it back through its
/// stored form (`use_cases::stored_answers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub license_type: LicenseType,
    pub settings: TelephonySettings,
    pub phone_number: Option<E164>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// Sign-out-required changes not yet acknowledged.
    pub sign_out_pending: Option<SignOutPending>,
}

impl UserView {
    /// The user's row and the E.164 of the number they hold, as stored.
    pub(crate) fn new(user: user::Model, phone_number: Option<String>) -> Self {
        Self {
            sign_out_pending: pending_of(&user),
            settings: TelephonySettings {
                inbound_calling: user.inbound_calling,
                outbound_calling: user.outbound_calling,
                sms: user.sms,
            },
            account_id: AccountId::from_stored(user.account_id),
            user_id: UserId::from_stored(user.id),
            email: user.email,
            display_name: user.display_name,
            license_type: user.license_type.into(),
            phone_number: phone_number.map(E164::from_stored),
            create_time: user.create_time,
            update_time: user.update_time,
        }
    }

    pub fn settings(&self) -> TelephonySettings {
        self.settings
    }

    /// The user as the telephony rules see them.
    pub fn line(&self) -> UserLine {
        UserLine {
            user_id: self.user_id.clone(),
            phone_number: self.phone_number.clone(),
            settings: self.settings,
        }
    }
}

/// The pending state stored on a user's row.
pub(crate) fn pending_of(row: &user::Model) -> Option<SignOutPending> {
    Some(SignOutPending {
        oldest_sequence: row.sign_out_pending_oldest_sequence?.max(0) as u64,
        oldest_time: row.sign_out_pending_oldest_time?,
        latest_sequence: row.sign_out_pending_latest_sequence?.max(0) as u64,
        latest_time: row.sign_out_pending_latest_time?,
    })
}

/// A number of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberView {
    pub e164: E164,
    /// ISO 3166-1 alpha-2 region code.
    pub country: String,
    pub number_type: NumberType,
    pub product_type: ProductType,
    pub status: NumberStatus,
    /// The holder's account and user, while assigned.
    pub account_id: Option<AccountId>,
    pub user_id: Option<UserId>,
    pub associate_time: Option<DateTime<Utc>>,
    pub calling_name: String,
    pub order_id: OrderId,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// When a number in the deletion queue is purged.
    pub deletion_time: Option<DateTime<Utc>>,
}

impl From<phone_number::Model> for NumberView {
    fn from(row: phone_number::Model) -> Self {
        Self {
            number_type: row.number_type.into(),
            product_type: row.product_type.into(),
            status: row.status.into(),
            e164: E164::from_stored(row.e164),
            country: row.country,
            account_id: row.account_id.map(AccountId::from_stored),
            user_id: row.user_id.map(UserId::from_stored),
            associate_time: row.associate_time,
            calling_name: row.calling_name,
            order_id: OrderId::from_stored(row.order_id),
            create_time: row.create_time,
            update_time: row.update_time,
            deletion_time: row.deletion_time,
        }
    }
}

/// One period a user held a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentPeriod {
    pub e164: E164,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub assign_time: DateTime<Utc>,
    /// `None` while the user holds the number.
    pub unassign_time: Option<DateTime<Utc>>,
}

impl From<phone_number_assignment::Model> for AssignmentPeriod {
    fn from(row: phone_number_assignment::Model) -> Self {
        Self {
            e164: E164::from_stored(row.e164),
            account_id: AccountId::from_stored(row.account_id),
            user_id: UserId::from_stored(row.user_id),
            assign_time: row.assign_time,
            unassign_time: row.unassign_time,
        }
    }
}

/// An order with the outcome of each of its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub product_type: ProductType,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub create_time: DateTime<Utc>,
}

impl OrderRecord {
    pub(crate) fn new(row: phone_number_order::Model, items: Vec<OrderItem>) -> Self {
        Self {
            product_type: row.product_type.into(),
            status: row.status.into(),
            order_id: OrderId::from_stored(row.id),
            items,
            create_time: row.create_time,
        }
    }
}

impl From<change_event::Model> for ChangeEvent {
    fn from(row: change_event::Model) -> Self {
        Self {
            sequence: row.sequence.max(0) as u64,
            event_id: row.event_id,
            account_id: AccountId::from_stored(row.account_id),
            user_id: UserId::from_stored(row.user_id),
            kind: stored_kind(row.kind, row.kind_code),
            // Stored empty when the change concerns no number.
            e164_phone_number: (!row.e164.is_empty()).then(|| E164::from_stored(row.e164)),
            settings: TelephonySettings {
                inbound_calling: row.inbound_calling,
                outbound_calling: row.outbound_calling,
                sms: row.sms,
            },
            notice: row.notice,
            actor: row.actor,
            occur_time: row.occur_time,
        }
    }
}

/// An event's kind as stored: by its number when recorded (a kind of a newer version is passed
/// on as written), else (rows older than the number) by its name. Never an error: one event of
/// an unknown kind must not stop a stream.
pub(crate) fn stored_kind(name: String, code: Option<i32>) -> EventKind {
    let by_name = || {
        enums::ChangeKind::try_from_value(&name)
            .ok()
            .map(ChangeKind::from)
    };
    match code.map(|code| (code, ChangeKind::from_code(code))) {
        Some((_, Some(kind))) => EventKind::Known(kind),
        Some((code, None)) => EventKind::Unknown { code, name },
        None => match by_name() {
            Some(kind) => EventKind::Known(kind),
            None => EventKind::Unknown { code: 0, name },
        },
    }
}

/// A webhook's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub id: WebhookId,
    pub url: String,
    pub description: String,
    pub filter: EventFilter,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<webhook::Model> for WebhookConfig {
    fn from(row: webhook::Model) -> Self {
        Self {
            filter: EventFilter {
                account_id: row.account_id.map(AccountId::from_stored),
                kinds: kinds_from_db(&row.kinds),
            },
            id: WebhookId::from_stored(row.id),
            url: row.url,
            description: row.description,
            create_time: row.create_time,
            update_time: row.update_time,
        }
    }
}

/// A webhook's signing secrets, opened: what its deliveries are signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecrets {
    pub current: String,
    /// The secret before the last rotation, still signing until its expiry.
    pub previous: Option<(String, DateTime<Utc>)>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets").finish_non_exhaustive()
    }
}

/// How far one push delivery got, and whether it is paused or failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    pub sink: String,
    /// Every event up to this sequence has been handled (delivered or not wanted).
    pub cursor: u64,
    /// The sequence of the last event delivered.
    pub last_delivered: u64,
    pub paused: bool,
    /// Since when every attempt has failed (`None` while deliveries succeed).
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
    /// The replica delivering, while it holds the lease (`None`: handed back or never taken).
    pub lease_owner: Option<String>,
}

impl From<delivery::Model> for DeliveryState {
    fn from(row: delivery::Model) -> Self {
        Self {
            sink: row.sink,
            cursor: row.cursor.max(0) as u64,
            last_delivered: row.last_delivered.max(0) as u64,
            paused: row.paused,
            failing_since: row.failing_since,
            last_error: row.last_error,
            last_error_time: row.last_error_time,
            lease_owner: row.lease_owner,
        }
    }
}

/// A webhook with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookView {
    pub webhook: WebhookConfig,
    pub delivery: DeliveryState,
}

impl WebhookView {
    pub(crate) fn new(webhook: webhook::Model, delivery: delivery::Model) -> Self {
        Self {
            webhook: webhook.into(),
            delivery: delivery.into(),
        }
    }

    pub fn filter(&self) -> EventFilter {
        self.webhook.filter.clone()
    }
}

/// The outcome of one number of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Normalised E.164, or the input as given when it could not be parsed.
    pub e164: String,
    pub acquired: bool,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_kind_is_read_by_its_number_else_its_name_and_never_fails() {
        let known = |code| stored_kind("USER_DELETED".into(), code);
        assert_eq!(known(Some(5)), EventKind::Known(ChangeKind::UserDeleted));
        // Rows written before the number was recorded.
        assert_eq!(known(None), EventKind::Known(ChangeKind::UserDeleted));
        let newer = EventKind::Unknown {
            code: 99,
            name: "SOMETHING_NEWER".into(),
        };
        assert_eq!(stored_kind("SOMETHING_NEWER".into(), Some(99)), newer);
        assert_eq!(
            stored_kind("SOMETHING_NEWER".into(), None),
            EventKind::Unknown {
                code: 0,
                name: "SOMETHING_NEWER".into()
            }
        );
    }
}
