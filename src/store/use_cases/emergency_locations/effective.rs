//! Who holds which location (an account's default, a user, a number), a user's effective
//! location (the number's, else the user's, else the account's default), and the events of the
//! users a change moves.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};

use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::phone_number::E164;
use crate::domain::telephony::TelephonySettings;
use crate::error::Result;
use crate::store::db::entities::{emergency_location_use, phone_number, user};
use crate::store::engine::outbox::append_changes;

/// What holds a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationHolder {
    /// The account's default.
    Account(AccountId),
    User(AccountId, UserId),
    Number(E164),
}

impl LocationHolder {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Account(_) => "account",
            Self::User(..) => "user",
            Self::Number(_) => "number",
        }
    }

    pub(super) fn id(&self) -> &str {
        match self {
            Self::Account(id) => id.as_str(),
            Self::User(_, id) => id.as_str(),
            Self::Number(number) => number.as_str(),
        }
    }
}

/// Where a user's effective location comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationSource {
    Number,
    User,
    AccountDefault,
}

/// The location uses of one account: its users' and numbers' by holder kind and id, and its
/// default apart (every user may fall back to it).
#[derive(Default)]
pub(super) struct Uses {
    by_holder: HashMap<(String, String), String>,
    account_default: Option<String>,
}

impl Uses {
    pub(super) async fn of_account(
        db: &impl sea_orm::ConnectionTrait,
        account_id: &AccountId,
    ) -> Result<Self> {
        use emergency_location_use::Column;
        let rows: Vec<(String, String, String)> = emergency_location_use::Entity::find()
            .select_only()
            .column(Column::HolderKind)
            .column(Column::HolderId)
            .column(Column::LocationId)
            .filter(Column::AccountId.eq(account_id.as_str()))
            .into_tuple()
            .all(db)
            .await?;
        let mut uses = Self::default();
        for (kind, id, location) in rows {
            uses.insert(kind, id, location);
        }
        Ok(uses)
    }

    /// Records that the holder `kind` `id` has `location`.
    pub(super) fn insert(&mut self, kind: String, id: String, location: String) {
        if kind == "account" {
            self.account_default = Some(location);
        } else {
            self.by_holder.insert((kind, id), location);
        }
    }

    /// Forgets the holder `kind` `id`'s own location.
    pub(super) fn forget(&mut self, kind: &str, id: &str) {
        self.by_holder.remove(&(kind.to_owned(), id.to_owned()));
    }

    fn get(&self, kind: &str, id: &str) -> Option<&str> {
        self.by_holder
            .get(&(kind.to_owned(), id.to_owned()))
            .map(String::as_str)
    }

    /// The number's location, else the user's, else the account's default.
    pub(super) fn effective(
        &self,
        user_id: &str,
        number: Option<&str>,
    ) -> Option<(&str, LocationSource)> {
        number
            .and_then(|n| self.get("number", n))
            .map(|l| (l, LocationSource::Number))
            .or_else(|| self.get("user", user_id).map(|l| (l, LocationSource::User)))
            .or_else(|| {
                self.account_default
                    .as_deref()
                    .map(|l| (l, LocationSource::AccountDefault))
            })
    }
}

/// A user of the account, with what an event about them carries.
pub(super) struct AccountUser {
    id: String,
    number: Option<String>,
    settings: TelephonySettings,
}

/// Every user of the account with their number: two queries.
pub(super) async fn account_users(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
) -> Result<Vec<AccountUser>> {
    let users: Vec<(String, bool, bool, bool)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::InboundCalling)
        .column(user::Column::OutboundCalling)
        .column(user::Column::Sms)
        .filter(user::Column::AccountId.eq(account_id.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let numbers: HashMap<String, String> = phone_number::Entity::find()
        .select_only()
        .column(phone_number::Column::UserId)
        .column(phone_number::Column::E164)
        .filter(phone_number::Column::AccountId.eq(account_id.as_str()))
        .filter(phone_number::Column::UserId.is_not_null())
        .into_tuple::<(String, String)>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    Ok(users
        .into_iter()
        .map(|(id, inbound_calling, outbound_calling, sms)| AccountUser {
            number: numbers.get(&id).cloned(),
            id,
            settings: TelephonySettings {
                inbound_calling,
                outbound_calling,
                sms,
            },
        })
        .collect())
}

/// Each user's effective location id in the account.
pub(super) async fn effective_locations(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    users: &[AccountUser],
) -> Result<Vec<Option<String>>> {
    let uses = Uses::of_account(txn, account_id).await?;
    Ok(users
        .iter()
        .map(|u| {
            uses.effective(&u.id, u.number.as_deref())
                .map(|(l, _)| l.to_owned())
        })
        .collect())
}

/// One EMERGENCY_LOCATION_UPDATED event per user for whom `moved` holds.
pub(super) async fn announce(
    txn: &DatabaseTransaction,
    account_id: &AccountId,
    users: &[AccountUser],
    moved: impl Fn(usize) -> bool,
    actor: &str,
) -> Result<()> {
    let changes: Vec<NewChange> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| moved(*i))
        .map(|(_, u)| NewChange {
            account_id: account_id.clone(),
            user_id: UserId::from_stored(u.id.clone()),
            kind: ChangeKind::EmergencyLocationUpdated,
            e164_phone_number: u.number.clone().map(E164::from_stored),
            settings: u.settings,
            actor: actor.to_owned(),
        })
        .collect();
    append_changes(txn, changes).await?;
    Ok(())
}
