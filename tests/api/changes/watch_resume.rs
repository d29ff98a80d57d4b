//! WatchChanges from now or from a resume point: replay then live without gap or duplicate, a
//! slow consumer, a restart, concurrent writers, and a resume point already compacted away.

use super::{
    Item, WAIT, account_with_users, after, expect_checkpoint, expect_event, from_now, item, logout,
    logout_with, next_item, read_gap_free, settings, watch,
};
use crate::common::fixtures::{assign_via, number, unassign_via, update_settings_via};
use crate::common::{Backend, TestApp, spawn_app, spawn_app_on, spawn_app_with};
use std::time::Duration;
use telephony_admin::proto::{ChangeKind, WatchChangesRequest};
use tokio::time::timeout;
use tonic::{Code, Status};

/// The answer to a watch: the first message, or the error of the call or of the stream.
async fn watch_outcome(app: &TestApp, request: WatchChangesRequest) -> Result<Item, Status> {
    let mut stream = app.changes().watch_changes(request).await?.into_inner();
    let message = timeout(WAIT, stream.message())
        .await
        .expect("the stream answers in time")?
        .expect("the stream sends something before it ends");
    Ok(item(message))
}

async fn watch_without_resume_point_starts_after_the_present(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 1).await;
    for _ in 0..3 {
        logout(&app, &account, &users[0]).await;
    }
    let mut watch = watch(&app, from_now()).await;
    assert_eq!(
        expect_checkpoint(&mut watch).await,
        3,
        "the first message says the stream is caught up with the present"
    );
    let sequence = logout(&app, &account, &users[0]).await;
    let live = expect_event(&mut watch).await;
    assert_eq!(live.sequence, 4, "earlier events are not replayed");
    assert_eq!(sequence, 4);
    assert_eq!(live.kind, ChangeKind::UserSignOutRequested as i32);
}

async fn replay_then_live_has_no_gap_or_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 2).await;
    for i in 0..20 {
        logout(&app, &account, &users[i % 2]).await;
    }
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let writer = {
        let mut client = app.users();
        let (account, users) = (account.clone(), users.clone());
        tokio::spawn(async move {
            let mut started = Some(started_tx);
            let mut last = 0;
            for i in 0..30 {
                last = logout_with(&mut client, &account, &users[i % 2]).await;
                if i == 4 {
                    let _ = started.take().unwrap().send(());
                }
            }
            last
        })
    };
    // Open the stream while the writer is still going, so that replay and live overlap.
    started_rx.await.unwrap();
    let mut watch = watch(&app, after(10)).await;
    let last = writer.await.unwrap();
    assert_eq!(last, 50);
    let (events, checkpoints) = read_gap_free(&mut watch, 10, last, true).await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (11..=50).collect::<Vec<_>>());
    assert_eq!(
        checkpoints, 1,
        "one caught-up checkpoint (periodic ones are 30 s apart)"
    );
}

async fn compacted_history_is_out_of_range(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.event_retention = Duration::from_secs(1);
        s.maintenance_interval = Duration::from_millis(200);
    })
    .await;
    let (account, users) = account_with_users(&app, "acme", 1).await;
    for _ in 0..3 {
        logout(&app, &account, &users[0]).await;
    }
    // Retention works on its own schedule: wait (bounded) until the history is gone.
    let purged = timeout(Duration::from_secs(20), async {
        while !app.all_changes("", "").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(purged.is_ok(), "events past retention are purged");

    for stale in [0, 2] {
        let refused = watch_outcome(&app, after(stale)).await.unwrap_err();
        assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
        assert!(
            refused.message().contains("oldest retained sequence is 4"),
            "the message names where history starts: {refused:?}"
        );
    }
    // Resuming from the last sequence misses nothing.
    let mut resumed = watch(&app, after(3)).await;
    assert_eq!(expect_checkpoint(&mut resumed).await, 3);
    logout(&app, &account, &users[0]).await;
    assert_eq!(expect_event(&mut resumed).await.sequence, 4);
    // And a stream without a resume point is never out of range.
    assert!(matches!(
        watch_outcome(&app, from_now()).await,
        Ok(Item::Checkpoint(4))
    ));
}

async fn slow_consumer_loses_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 3).await;
    let mut watch = watch(&app, from_now()).await;
    assert_eq!(expect_checkpoint(&mut watch).await, 0);
    // Far more than the stream's buffer, while nobody reads.
    let total = 300;
    for i in 0..total {
        logout(&app, &account, &users[i % 3]).await;
    }
    let (events, _) = read_gap_free(&mut watch, 0, total as u64, false).await;
    assert_eq!(events.len(), total);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.user_id,
            users[i % 3],
            "events keep their commit order"
        );
    }
}

async fn replay_after_restart_reads_the_database(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 2).await;
    for i in 0..20 {
        logout(&app, &account, &users[i % 2]).await;
    }
    app.stop().await;
    let database = app.database.take().expect("the app owns its database");
    let key = app.admin_key.clone();
    // A new process has nothing in memory: the replay can only come from the database.
    let app = spawn_app_on(database, |s| s.bootstrap_key = Some(key)).await;

    let mut replay = watch(&app, after(5)).await;
    let (events, _) = read_gap_free(&mut replay, 5, 20, true).await;
    assert_eq!(events.len(), 15);
    let mut filtered = watch(
        &app,
        WatchChangesRequest {
            user_id: users[1].clone(),
            after_sequence: Some(0),
            ..Default::default()
        },
    )
    .await;
    let mut odd = Vec::new();
    loop {
        match next_item(&mut filtered).await {
            Item::Event(event) => odd.push(event.sequence),
            Item::Checkpoint(sequence) => {
                assert_eq!(
                    sequence, 20,
                    "the checkpoint covers the other user's events too"
                );
                break;
            }
        }
    }
    assert_eq!(odd, (1..=10).map(|i| i * 2).collect::<Vec<_>>());

    let live = logout(&app, &account, &users[0]).await;
    assert_eq!(live, 21, "the sequence continues across the restart");
    assert_eq!(expect_event(&mut replay).await.sequence, 21);
}

async fn concurrent_writers_are_seen_in_gap_free_order(backend: Backend) {
    const WRITERS: usize = 8;
    const OPERATIONS: usize = 15;
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", WRITERS).await;
    let numbers: Vec<String> = (0..WRITERS).map(|i| number(20 + i)).collect();
    app.order_business_numbers(&numbers).await;
    let total = (WRITERS * OPERATIONS) as u64;

    let mut stream = watch(&app, after(0)).await;
    let checker = tokio::spawn(async move {
        let mut previous = 0;
        let mut events = Vec::new();
        while previous < total {
            match next_item(&mut stream).await {
                Item::Event(event) => {
                    assert_eq!(event.sequence, previous + 1, "gap-free, in order");
                    previous = event.sequence;
                    events.push(event);
                }
                Item::Checkpoint(sequence) => assert_eq!(sequence, previous),
            }
        }
        events
    });

    let mut writers = Vec::new();
    for (user, number) in users.iter().cloned().zip(numbers.iter().cloned()) {
        let mut client = app.telephony();
        let account = account.clone();
        writers.push(tokio::spawn(async move {
            for op in 0..OPERATIONS {
                match op % 3 {
                    0 => {
                        assign_via(&mut client, &account, &user, &number, "")
                            .await
                            .unwrap();
                    }
                    1 => {
                        let on = settings(true, op % 2 == 0, true);
                        update_settings_via(&mut client, &account, &user, on, &[], "")
                            .await
                            .unwrap();
                    }
                    _ => {
                        unassign_via(&mut client, &account, &user, true, "")
                            .await
                            .unwrap();
                    }
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let history = app.all_changes("", "").await;
    assert_eq!(history.len() as u64, total);
    assert_eq!(history.last().unwrap().sequence, total);
    let seen = timeout(Duration::from_secs(30), checker)
        .await
        .expect("the watcher sees every event")
        .unwrap();
    assert_eq!(seen, history, "the stream and the history agree");
    // Each user's events follow their own operations.
    for user in &users {
        let kinds: Vec<i32> = seen
            .iter()
            .filter(|e| &e.user_id == user)
            .map(|e| e.kind)
            .collect();
        let expected: Vec<i32> = (0..OPERATIONS)
            .map(|op| match op % 3 {
                0 => ChangeKind::PhoneNumberAssigned as i32,
                1 => ChangeKind::TelephonySettingsUpdated as i32,
                _ => ChangeKind::PhoneNumberUnassigned as i32,
            })
            .collect();
        assert_eq!(kinds, expected);
    }
}

on_both_databases!(
    watch_without_resume_point_starts_after_the_present,
    replay_then_live_has_no_gap_or_duplicate,
    compacted_history_is_out_of_range,
    slow_consumer_loses_nothing,
    replay_after_restart_reads_the_database,
    concurrent_writers_are_seen_in_gap_free_order,
);
