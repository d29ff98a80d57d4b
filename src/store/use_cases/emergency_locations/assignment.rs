//! What an assignment needs of emergency locations: a location where the number's country
//! requires one, and the location named with it given to the user.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};

use crate::domain::DomainError;
use crate::domain::ids::{AccountId, LocationId, UserId};
use crate::domain::phone_number::E164;
use crate::error::Result;
use crate::store::db::entities::emergency_location_use;

use super::effective::Uses;
use super::own::{check_named, named_locations};

/// What assignments need of emergency locations: the uses in their accounts and the locations
/// their items name, read in two queries, and the countries whose numbers need one.
pub(crate) struct AssignmentLocations<'a> {
    required: &'a [String],
    uses: HashMap<String, Uses>,
    /// Each named location's account.
    named: HashMap<String, String>,
}

impl<'a> AssignmentLocations<'a> {
    /// Reads what the assignments of numbers in `countries` (to users of `accounts`, naming
    /// `named` locations) need: nothing when no number needs a location and none is named.
    pub(crate) async fn load(
        txn: &DatabaseTransaction,
        required: &'a [String],
        accounts: &[&AccountId],
        countries: &[&str],
        named: &[&LocationId],
    ) -> Result<Self> {
        let mut loaded = Self {
            required,
            uses: HashMap::new(),
            named: HashMap::new(),
        };
        loaded.named = named_locations(txn, named).await?;
        if countries.iter().any(|c| required.iter().any(|r| r == c)) {
            use emergency_location_use::Column;
            let rows: Vec<(String, String, String, String)> =
                emergency_location_use::Entity::find()
                    .select_only()
                    .column(Column::AccountId)
                    .column(Column::HolderKind)
                    .column(Column::HolderId)
                    .column(Column::LocationId)
                    .filter(Column::AccountId.is_in(accounts.iter().map(|id| id.as_str())))
                    .into_tuple()
                    .all(txn)
                    .await?;
            for (account, kind, holder, location) in rows {
                loaded
                    .uses
                    .entry(account)
                    .or_default()
                    .insert(kind, holder, location);
            }
        }
        Ok(loaded)
    }

    /// Checks that the user will have a location where the number's country requires one
    /// (the one named, else their effective location) and that a named location is of their
    /// account; a location named is then the user's, for the items after this one.
    pub(crate) fn check(
        &mut self,
        account_id: &AccountId,
        user_id: &UserId,
        number: &E164,
        country: &str,
        named: Option<&LocationId>,
    ) -> Result<()> {
        if let Some(location) = named {
            check_named(&self.named, location, account_id)?;
        }
        let required = self.required.iter().any(|r| r == country);
        let uses = self.uses.entry(account_id.to_string()).or_default();
        if required
            && named.is_none()
            && uses
                .effective(user_id.as_str(), Some(number.as_str()))
                .is_none()
        {
            return Err(DomainError::precondition(
                "EMERGENCY_LOCATION_REQUIRED",
                user_id.as_str(),
                format!(
                    "{number} is a {country} number, which needs an emergency location: user {user_id} has none (give emergency_location_id, or set one for the user or the account with SetEmergencyLocation)"
                ),
            )
            .into());
        }
        if let Some(location) = named {
            uses.insert("user".to_owned(), user_id.to_string(), location.to_string());
        }
        Ok(())
    }

    /// The number was taken back earlier in the run: its own location went with it.
    pub(crate) fn forget_number(&mut self, number: &E164) {
        for uses in self.uses.values_mut() {
            uses.forget("number", number.as_str());
        }
    }
}
