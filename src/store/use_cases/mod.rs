//! Use cases: one file per aggregate, each a small handle over the engine that the api layer
//! reaches through `Store` (`store.telephony().assign(…)`). A write reads top to bottom: load
//! the state it rests on, decide with `domain`, write; a use case's single and batch forms sit
//! side by side, the single one a set of one.
//!
//! | file | handle | what it does |
//! |---|---|---|
//! | [`accounts`] | `Accounts` | create, read, list, rename, delete (revoking the account's keys) |
//! | [`users`] | `Users` | create (one or many), read (GetUser's direct read on SQLite), list, update, delete |
//! | [`telephony`] | `Telephony` | assign and unassign numbers, one or many, in a few set statements |
//! | [`permissions`] | `Permissions` | read and change calling and SMS permissions, one or many |
//! | [`sign_out`] | `SignOut` | ask a user's sign-out, acknowledge it |
//! | [`emergency_locations`] | `EmergencyLocations` | emergency addresses, the locations on them, who has which; the effective location |
//! | [`inventory`] | `Inventory` | numbers: read, list, update, the deletion queue, their history |
//! | [`orders`] | `Orders` | orders that acquire numbers |
//! | [`changes`] | `Changes` | the change log: its state and pages of it |
//! | [`retention`] | `Retention` | purging events and kept answers past their retention |
//! | [`webhooks`] | `Webhooks` | webhook configuration and secrets |
//! | [`deliveries`] | `Deliveries` | delivery cursors and leases of webhooks and e-mail |
//! | [`keys`] | `Keys` | API keys and their revocation |
//! | [`stored_answers`] | – | the stored forms of answers kept for idempotent retries |

pub mod accounts;
pub mod changes;
pub mod deliveries;
pub mod emergency_locations;
pub mod inventory;
pub mod keys;
pub mod orders;
pub mod permissions;
pub mod retention;
pub mod sign_out;
pub mod stored_answers;
pub mod telephony;
pub mod users;
pub mod webhooks;

use crate::domain::ids::{AccountId, KeyId, RequestId};
use crate::store::engine::idempotency::{IdempotencyKey, scope_of};

/// Who asks for a change: the key (for the change's actor) and its account, if it is scoped to
/// one (for idempotency records and what the answer may reveal).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub key_id: &'a KeyId,
    pub account: Option<&'a AccountId>,
}

impl Requester<'_> {
    /// The tenant whose idempotency records the caller reads and writes.
    pub(crate) fn scope(&self) -> String {
        scope_of(self.account.map(AccountId::as_str))
    }

    /// The actor recorded on the changes the caller makes.
    pub(crate) fn actor(&self) -> String {
        self.key_id.to_string()
    }

    /// The idempotency record of a single request with `request_id`, for `operation`, with
    /// `fingerprint` (every input that changes the outcome).
    pub(crate) fn idempotency_key(
        &self,
        request_id: Option<&RequestId>,
        operation: &'static str,
        fingerprint: impl FnOnce() -> String,
    ) -> Option<IdempotencyKey> {
        request_id.map(|request_id| IdempotencyKey {
            scope: self.scope(),
            request_id: request_id.clone(),
            operation,
            fingerprint: fingerprint(),
        })
    }
}
