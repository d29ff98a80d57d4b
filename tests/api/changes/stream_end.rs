//! How a watch stream ends: a dropped stream frees its slot, shutdown ends open streams, and a
//! revoked key ends its own.

use super::{
    Item, account_with_users, after, expect_checkpoint, expect_event, from_now, logout, next_item,
    watch,
};
use crate::common::fixtures::REVOCATION_WAIT;
use crate::common::{Backend, spawn_app, spawn_app_with};
use std::time::Duration;
use telephony_admin::keys::{Role, Scope};
use tokio::time::timeout;
use tonic::Code;

async fn dropped_stream_releases_its_watch_slot(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_watchers_per_key = 2).await;
    let mut first = watch(&app, from_now()).await;
    let mut second = watch(&app, from_now()).await;
    expect_checkpoint(&mut first).await;
    expect_checkpoint(&mut second).await;
    let refused = app.changes().watch_changes(from_now()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("limit"), "{refused:?}");
    // The cap is per key: another key may still watch.
    let other_key = app.create_key(Role::Viewer, Scope::Organisation).await;
    let mut other = app
        .changes_as(Some(&other_key))
        .watch_changes(from_now())
        .await
        .expect("another key has its own slots")
        .into_inner();
    assert!(matches!(next_item(&mut other).await, Item::Checkpoint(_)));

    drop(first);
    // The server learns of the reset asynchronously: retry, bounded.
    let mut reopened = timeout(Duration::from_secs(5), async {
        loop {
            match app.changes().watch_changes(from_now()).await {
                Ok(stream) => return stream.into_inner(),
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("the closed stream's slot is released");
    expect_checkpoint(&mut reopened).await;
    // Still two open: the cap holds again.
    let refused = app.changes().watch_changes(from_now()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
}

async fn shutdown_ends_open_streams(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let mut watch = watch(&app, from_now()).await;
    expect_checkpoint(&mut watch).await;
    app.stop().await;
    let ended = timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the stream ends when the server stops");
    match ended {
        // UNAVAILABLE tells the consumer to reconnect (to another replica) and resume.
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(other) => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

async fn revoked_key_ends_its_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 1).await;
    let key = app.create_key(Role::Admin, Scope::Organisation).await;
    let key_id = app
        .store
        .keys()
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "test")
        .expect("the new key is listed")
        .id;
    let mut stream = app
        .changes_as(Some(&key))
        .watch_changes(from_now())
        .await
        .unwrap()
        .into_inner();
    expect_checkpoint(&mut stream).await;
    app.store.keys().revoke(&key_id).await.unwrap();
    // Revoked through another store: the server learns of it within 1 s.
    app.wait_until_refused(&key).await;
    logout(&app, &account, &users[0]).await;
    let ended = timeout(REVOCATION_WAIT, stream.message())
        .await
        .expect("the stream ends within the revocation bound");
    match ended {
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            assert!(status.message().contains("revoked"), "{status:?}");
        }
        Ok(other) => panic!("a revoked key receives nothing more, got {other:?}"),
    }
    // The default key's streams are unaffected.
    let mut still = watch(&app, after(0)).await;
    assert_eq!(expect_event(&mut still).await.sequence, 1);
}

on_both_databases!(
    dropped_stream_releases_its_watch_slot,
    shutdown_ends_open_streams,
    revoked_key_ends_its_stream,
);
