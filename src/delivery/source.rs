//! Where deliveries read events: the change log, after a cursor. The one place that knows how the
//! store answers "events after sequence N", so that it is easy to re-point.

use crate::domain::change::ChangeEvent;
use crate::domain::ids::AccountId;
use crate::error::Result;
use crate::store::{ChangeFilter, ChangeLogState, Store};

/// Up to `limit` events after `after`, of `account_id` if given, in sequence order.
pub async fn events_after(
    store: &Store,
    after: u64,
    account_id: Option<&AccountId>,
    limit: u64,
) -> Result<Vec<ChangeEvent>> {
    let filter = ChangeFilter {
        account_id: account_id.cloned(),
        user_id: None,
    };
    store.changes().after(after, None, &filter, limit).await
}

/// The last committed sequence and how far retention has purged.
pub async fn log_state(store: &Store) -> Result<ChangeLogState> {
    store.changes().state().await
}
