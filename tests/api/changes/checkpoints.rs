//! Filtered streams and checkpoints: a filter delivers only matching events, its checkpoints
//! advance while other events flow, and an idle stream receives periodic checkpoints.

use super::{
    Item, Watch, account_with_users, expect_checkpoint, from_now, logout, logout_with, next_item,
    watch,
};
use crate::common::{Backend, spawn_app_with};
use std::time::Duration;
use telephony_admin::proto::WatchChangesRequest;
use tonic::Code;

async fn filters_deliver_only_matching_events(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.checkpoint_interval = Duration::from_millis(200);
    })
    .await;
    let (a, a_users) = account_with_users(&app, "alpha", 2).await;
    let (b, b_users) = account_with_users(&app, "beta", 1).await;
    let by_account = WatchChangesRequest {
        account_id: a.clone(),
        ..Default::default()
    };
    let by_user = WatchChangesRequest {
        user_id: a_users[0].clone(),
        ..Default::default()
    };
    let mut account_watch = watch(&app, by_account.clone()).await;
    let mut user_watch = watch(&app, by_user.clone()).await;
    assert_eq!(expect_checkpoint(&mut account_watch).await, 0);
    assert_eq!(expect_checkpoint(&mut user_watch).await, 0);

    logout(&app, &a, &a_users[0]).await; // 1
    logout(&app, &a, &a_users[1]).await; // 2
    logout(&app, &b, &b_users[0]).await; // 3
    logout(&app, &a, &a_users[0]).await; // 4
    let last = logout(&app, &b, &b_users[0]).await; // 5: matches neither filter
    assert_eq!(last, 5);

    /// Events up to the first checkpoint at or past `last`, checking that checkpoints never go
    /// back and never claim less than what was sent.
    async fn until_checkpoint(watch: &mut Watch, last: u64) -> Vec<u64> {
        let mut sequences = Vec::new();
        let mut checkpoint = 0;
        loop {
            match next_item(watch).await {
                Item::Event(event) => {
                    assert!(event.sequence > checkpoint, "no event behind a checkpoint");
                    sequences.push(event.sequence);
                }
                Item::Checkpoint(sequence) => {
                    assert!(sequence >= checkpoint, "checkpoints never go back");
                    assert!(sequences.last().is_none_or(|s| sequence >= *s));
                    checkpoint = sequence;
                    if sequence >= last {
                        assert_eq!(sequence, last);
                        return sequences;
                    }
                }
            }
        }
    }

    assert_eq!(
        until_checkpoint(&mut account_watch, last).await,
        vec![1, 2, 4]
    );
    assert_eq!(
        until_checkpoint(&mut user_watch, last).await,
        vec![1, 4],
        "the checkpoint passes events of other users"
    );

    // The same filters on a replay.
    let mut replay = watch(
        &app,
        WatchChangesRequest {
            after_sequence: Some(0),
            ..by_account
        },
    )
    .await;
    assert_eq!(until_checkpoint(&mut replay, last).await, vec![1, 2, 4]);
    let mut replay = watch(
        &app,
        WatchChangesRequest {
            account_id: b.clone(),
            user_id: b_users[0].clone(),
            after_sequence: Some(0),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(until_checkpoint(&mut replay, last).await, vec![3, 5]);

    let malformed = app
        .changes()
        .watch_changes(WatchChangesRequest {
            account_id: "not-an-id".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    assert!(malformed.message().contains("account_id"), "{malformed:?}");
}

async fn filtered_checkpoint_advances_while_other_events_flow(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.checkpoint_interval = Duration::from_millis(500);
    })
    .await;
    let (account, users) = account_with_users(&app, "acme", 2).await;
    let mut watch = watch(
        &app,
        WatchChangesRequest {
            user_id: users[0].clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(expect_checkpoint(&mut watch).await, 0);
    // Another user's changes keep coming, more often than the checkpoint interval, until the
    // filtered consumer hears that its position moved on: it must not have to wait for a lull.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut client = app.users();
        let (account, other) = (account.clone(), users[1].clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                last = logout_with(&mut client, &account, &other).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            last
        })
    };
    let received = next_item(&mut watch).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let last = writer.await.unwrap();
    match received {
        Item::Checkpoint(sequence) => {
            assert!(
                sequence > 0 && sequence <= last,
                "the checkpoint moved on: {sequence}"
            )
        }
        other => panic!("nothing of this user changed, yet got {other:?}"),
    }
}

async fn idle_stream_receives_periodic_checkpoints(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.checkpoint_interval = Duration::from_millis(200);
    })
    .await;
    let (account, users) = account_with_users(&app, "acme", 1).await;
    logout(&app, &account, &users[0]).await;
    let last = logout(&app, &account, &users[0]).await;
    let mut watch = watch(&app, from_now()).await;
    assert_eq!(expect_checkpoint(&mut watch).await, last, "caught up");
    for _ in 0..2 {
        assert_eq!(
            expect_checkpoint(&mut watch).await,
            last,
            "an idle stream hears the last committed sequence again"
        );
    }
}

on_both_databases!(
    filters_deliver_only_matching_events,
    filtered_checkpoint_advances_while_other_events_flow,
    idle_stream_receives_periodic_checkpoints,
);
