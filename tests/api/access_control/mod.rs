//! Who may call what: every RPC against every kind of caller (no key, a bad key, a revoked key,
//! organisation and account-scoped admins and viewers, inside and outside their account), that a
//! refused change leaves no trace, that refusals do not reveal whether a target exists, that change
//! events name the key that made them, that health and reflection need no key, and the `keys`
//! command of the real binary. This module holds the stream reader they share.

use std::time::Duration;
use telephony_admin::proto::{ChangeEvent, WatchChangesResponse, watch_changes_response::Kind};
use tonic::Streaming;

mod account_scoping;
mod audit;
mod authentication;
mod batch_calls;
mod key_lifecycle;
pub(crate) mod roles;
pub(crate) mod table;

/// The next event on a watch stream, skipping checkpoints.
async fn next_event(stream: &mut Streaming<WatchChangesResponse>) -> ChangeEvent {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event arrives within 10 s")
            .expect("the stream does not fail")
            .expect("the stream stays open");
        if let Some(Kind::Event(event)) = item.kind {
            return event;
        }
    }
}
