//! Watch streams start with a small encode buffer and many open at once: a replay of events much
//! larger than that buffer, to many concurrent watchers, still reaches each of them byte for byte
//! as `ListChanges` returns the same events.

use futures::future::join_all;
use prost::Message;
use telephony_admin::proto::{
    ChangeEvent, ListChangesRequest, LogoutUserRequest, WatchChangesRequest,
    watch_changes_response::Kind,
};
use tokio::time::timeout;

use crate::common::{Backend, TestApp, spawn_app};

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
const EVENTS: usize = 60;
/// More than the store's reader connections in the tests, so that some opens wait for a read.
const WATCHERS: usize = 40;

/// The events after 0, as `ListChanges` returns them (one page).
async fn listed(app: &TestApp) -> Vec<ChangeEvent> {
    app.changes()
        .list_changes(ListChangesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list changes")
        .into_inner()
        .events
}

/// Opens a stream from the start and reads `count` events.
async fn replayed(app: &TestApp, count: usize) -> Vec<ChangeEvent> {
    let mut stream = app
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("watch: {s:?}"))
        .into_inner();
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let message = timeout(WAIT, stream.message())
            .await
            .expect("the replay arrives in time")
            .unwrap_or_else(|s| panic!("the stream failed: {s:?}"))
            .expect("the stream is still open");
        if let Some(Kind::Event(event)) = message.kind {
            events.push(event);
        }
    }
    events
}

async fn every_watcher_gets_every_event_intact(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("acme").await.account_id;
    let user = app
        .create_user(&account, "someone@acme.example.com")
        .await
        .user_id;
    let mut users = app.users();
    for _ in 0..EVENTS {
        users
            .logout_user(LogoutUserRequest {
                account_id: account.clone(),
                user_id: user.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("logout: {s:?}"));
    }
    let expected = listed(&app).await;
    assert!(expected.len() >= EVENTS, "{} events listed", expected.len());
    let bytes: usize = expected.iter().map(Message::encoded_len).sum();
    assert!(
        bytes > 4 * 1024,
        "the replay ({bytes} bytes) outgrows the encode buffer"
    );
    let expected_bytes: Vec<Vec<u8>> = expected.iter().map(Message::encode_to_vec).collect();

    let streams = join_all((0..WATCHERS).map(|_| replayed(&app, expected.len()))).await;
    for (watcher, events) in streams.iter().enumerate() {
        let got: Vec<Vec<u8>> = events.iter().map(Message::encode_to_vec).collect();
        assert!(
            got == expected_bytes,
            "watcher {watcher} received other bytes than ListChanges returns"
        );
    }
}

on_both_databases!(every_watcher_gets_every_event_intact);
