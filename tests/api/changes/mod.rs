//! ChangeService end to end: the event each change emits and its notice, gap-free ordered
//! delivery (replay, live, slow and concurrent), filters, checkpoints, compacted history,
//! watcher limits, shutdown and revocation, and the ListChanges history. This module holds the
//! set-up and stream-reading functions they share.

use crate::common::TestApp;
use std::time::Duration;
use telephony_admin::proto::{
    ChangeEvent, LogoutUserRequest, TelephonySettings, WatchChangesRequest, WatchChangesResponse,
    user_service_client::UserServiceClient, watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::Streaming;

mod checkpoints;
mod history;
mod stream_end;
mod unknown_kinds;
mod watch_resume;

/// The longest any single expected message may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

type Watch = Streaming<WatchChangesResponse>;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Event(ChangeEvent),
    Checkpoint(u64),
}

/// An account with `count` users.
async fn account_with_users(app: &TestApp, name: &str, count: usize) -> (String, Vec<String>) {
    let account = app.create_account(name).await.account_id;
    let mut users = Vec::new();
    for i in 0..count {
        let email = format!("user{i}@{name}.example.com");
        users.push(app.create_user(&account, &email).await.user_id);
    }
    (account, users)
}

fn settings(inbound_calling: bool, outbound_calling: bool, sms: bool) -> TelephonySettings {
    TelephonySettings {
        inbound_calling,
        outbound_calling,
        sms,
    }
}

/// Asks for the user's sign-out (the cheapest change: one event, no number needed); returns its
/// sequence.
async fn logout_with(
    client: &mut UserServiceClient<crate::common::Authed>,
    account_id: &str,
    user_id: &str,
) -> u64 {
    client
        .logout_user(LogoutUserRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("logout {user_id}: {s:?}"))
        .into_inner()
        .sequence
}

async fn logout(app: &TestApp, account_id: &str, user_id: &str) -> u64 {
    logout_with(&mut app.users(), account_id, user_id).await
}

fn from_now() -> WatchChangesRequest {
    WatchChangesRequest::default()
}

fn after(sequence: u64) -> WatchChangesRequest {
    WatchChangesRequest {
        after_sequence: Some(sequence),
        ..Default::default()
    }
}

async fn watch(app: &TestApp, request: WatchChangesRequest) -> Watch {
    app.changes()
        .watch_changes(request.clone())
        .await
        .unwrap_or_else(|s| panic!("watch {request:?}: {s:?}"))
        .into_inner()
}

fn item(message: WatchChangesResponse) -> Item {
    match message.kind.expect("every message has a kind") {
        Kind::Event(event) => Item::Event(event),
        Kind::Checkpoint(checkpoint) => Item::Checkpoint(checkpoint.sequence),
    }
}

/// The next message; the stream must neither fail nor end.
async fn next_item(watch: &mut Watch) -> Item {
    let message = timeout(WAIT, watch.message())
        .await
        .expect("a message arrives in time")
        .unwrap_or_else(|s| panic!("the stream failed: {s:?}"))
        .expect("the stream is still open");
    item(message)
}

async fn expect_checkpoint(watch: &mut Watch) -> u64 {
    match next_item(watch).await {
        Item::Checkpoint(sequence) => sequence,
        other => panic!("expected a checkpoint, got {other:?}"),
    }
}

async fn expect_event(watch: &mut Watch) -> ChangeEvent {
    match next_item(watch).await {
        Item::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Reads an unfiltered stream that resumed after `after` until the event `through`, checking on
/// the way that every event is exactly the previous one + 1 and that every checkpoint names the
/// last sequence sent. With `catch_up`, also until the caught-up checkpoint has come (it follows
/// the replay, so it may come before or after `through`). Returns the events and how many
/// checkpoints came.
async fn read_gap_free(
    watch: &mut Watch,
    after: u64,
    through: u64,
    catch_up: bool,
) -> (Vec<ChangeEvent>, usize) {
    let mut events: Vec<ChangeEvent> = Vec::new();
    let mut checkpoints = 0;
    let mut previous = after;
    while previous < through || (catch_up && checkpoints == 0) {
        match next_item(watch).await {
            Item::Event(event) => {
                assert_eq!(
                    event.sequence,
                    previous + 1,
                    "events arrive in sequence without gap or duplicate"
                );
                assert!(event.sequence <= through, "nothing past the last change");
                previous = event.sequence;
                events.push(event);
            }
            Item::Checkpoint(sequence) => {
                assert_eq!(
                    sequence, previous,
                    "an unfiltered checkpoint names the last event sent"
                );
                checkpoints += 1;
            }
        }
    }
    (events, checkpoints)
}
