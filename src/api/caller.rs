//! Who is calling, once authenticated ([`super::auth`]), and what the key's role and scope let
//! it do. It depends on nothing of the API, so that the cache of verified keys
//! ([`super::key_cache`]) can keep callers without knowing how they are authenticated.

use crate::domain::ids::{AccountId, KeyId};
use crate::error::{Error, Result};
use crate::keys::{Role, Scope};
use crate::store::Requester;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: KeyId,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    pub fn require_admin(&self) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(viewer_may_only_read()),
            Role::SessionService => Err(session_service_may_not()),
        }
    }

    /// Reads of anything but users and changes (accounts, numbers, orders, settings): every
    /// role but the session service's.
    pub fn require_reader(&self) -> Result<()> {
        match self.role {
            Role::Admin | Role::Viewer => Ok(()),
            Role::SessionService => Err(session_service_may_not()),
        }
    }

    /// Acknowledging a user's sign-out: admins and session services.
    pub fn require_sign_out_acknowledger(&self) -> Result<()> {
        match self.role {
            Role::Admin | Role::SessionService => Ok(()),
            Role::Viewer => Err(viewer_may_only_read()),
        }
    }

    pub fn require_organisation(&self) -> Result<()> {
        match &self.scope {
            Scope::Organisation => Ok(()),
            Scope::Account(_) => Err(Error::PermissionDenied(
                "this API key is scoped to one account; this operation needs an organisation key"
                    .into(),
            )),
        }
    }

    /// The request names `account_id`; the key must cover it.
    pub fn require_account(&self, account_id: &AccountId) -> Result<()> {
        crate::telemetry::record_account_id(account_id.as_str());
        match &self.scope {
            Scope::Organisation => Ok(()),
            Scope::Account(own) if own == account_id => Ok(()),
            Scope::Account(_) => Err(Error::outside_scope()),
        }
    }

    /// The key's own account, for account-scoped keys.
    pub fn account(&self) -> Option<&AccountId> {
        match &self.scope {
            Scope::Organisation => None,
            Scope::Account(id) => Some(id),
        }
    }

    /// The key as the store records who asked: the actor of changes and the idempotency scope.
    pub fn requester(&self) -> Requester<'_> {
        Requester {
            key_id: &self.key_id,
            account: self.account(),
        }
    }
}

fn viewer_may_only_read() -> Error {
    Error::PermissionDenied("this API key has the viewer role and may only read".into())
}

fn session_service_may_not() -> Error {
    Error::PermissionDenied(
        "this API key has the session-service role and may only watch and list changes, read users and acknowledge sign-outs".into(),
    )
}
