//! ChangeService end to end: the event each change emits and its notice, gap-free ordered
//! delivery (replay, live, slow and concurrent), filters, checkpoints, compacted history,
//! watcher limits, shutdown and revocation, and the ListChanges history.

use std::time::Duration;

use crate::common::fixtures::{
    REVOCATION_WAIT, assign_via, number, unassign_via, unix_now, update_settings_via,
};
use crate::common::{Backend, TestApp, spawn_app, spawn_app_on, spawn_app_with};
use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeEvent, ChangeKind, DeleteUserRequest, ListChangesRequest,
    LogoutUserRequest, PhoneNumberStatus, TelephonySettings, WatchChangesRequest,
    WatchChangesResponse, user_service_client::UserServiceClient, watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::{Code, Status, Streaming};

/// The longest any single expected message may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

type Watch = Streaming<WatchChangesResponse>;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Event(ChangeEvent),
    Checkpoint(u64),
}

// ---------------------------------------------------------------------------------------------
// Set-up through the API
// ---------------------------------------------------------------------------------------------

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

const OFF: TelephonySettings = TelephonySettings {
    inbound_calling: false,
    outbound_calling: false,
    sms: false,
};

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

/// The id of the organisation admin key the server created at start (the tests' default key).
async fn bootstrap_key_id(app: &TestApp) -> String {
    app.store
        .list_api_keys()
        .await
        .expect("list keys")
        .into_iter()
        .find(|k| k.name == "bootstrap")
        .expect("the bootstrap key exists")
        .id
}

// ---------------------------------------------------------------------------------------------
// Watching
// ---------------------------------------------------------------------------------------------

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

/// The answer to a watch: the first message, or the error of the call or of the stream.
async fn watch_outcome(app: &TestApp, request: WatchChangesRequest) -> Result<Item, Status> {
    let mut stream = app.changes().watch_changes(request).await?.into_inner();
    let message = timeout(WAIT, stream.message())
        .await
        .expect("the stream answers in time")?
        .expect("the stream sends something before it ends");
    Ok(item(message))
}

fn assert_event(
    event: &ChangeEvent,
    kind: ChangeKind,
    sequence: u64,
    account_id: &str,
    user_id: &str,
    actor: &str,
) {
    assert_eq!(event.kind, kind as i32, "{event:?}");
    assert_eq!(event.sequence, sequence, "{event:?}");
    assert_eq!(event.account_id, account_id);
    assert_eq!(event.user_id, user_id);
    assert_eq!(
        event.actor, actor,
        "the actor is the API key that made the change"
    );
    assert!(event.sign_out_required, "every change needs a new sign-in");
    uuid::Uuid::try_parse(&event.event_id)
        .unwrap_or_else(|_| panic!("event_id {:?} is a UUID", event.event_id));
    let occurred = event
        .occur_time
        .as_ref()
        .expect("occur_time is set")
        .seconds;
    let now = unix_now();
    assert!(
        (now - 60..=now + 5).contains(&occurred),
        "occur_time {occurred} is about now ({now})"
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

async fn every_event_kind_carries_its_fields_and_notice(backend: Backend) {
    let app = spawn_app(backend).await;
    let actor = bootstrap_key_id(&app).await;
    let (account, users) = account_with_users(&app, "acme", 1).await;
    let user = &users[0];
    let n = number(0);
    app.order_business_numbers(std::slice::from_ref(&n)).await;
    let mut watch = watch(&app, from_now()).await;
    assert_eq!(
        expect_checkpoint(&mut watch).await,
        0,
        "nothing has changed yet"
    );
    let mut streamed = Vec::new();

    app.assign(&account, user, &n).await.unwrap();
    let assigned = expect_event(&mut watch).await;
    assert_event(
        &assigned,
        ChangeKind::PhoneNumberAssigned,
        1,
        &account,
        user,
        &actor,
    );
    assert_eq!(assigned.e164_phone_number, n);
    assert_eq!(assigned.telephony_settings, Some(OFF));
    assert!(
        assigned.notice.contains(&n) && assigned.notice.contains("Sign out and sign back in"),
        "{}",
        assigned.notice
    );
    streamed.push(assigned);

    app.update_settings(&account, user, settings(true, false, true), &[])
        .await
        .unwrap();
    let updated = expect_event(&mut watch).await;
    assert_event(
        &updated,
        ChangeKind::TelephonySettingsUpdated,
        2,
        &account,
        user,
        &actor,
    );
    assert_eq!(updated.e164_phone_number, n, "the user's current number");
    assert_eq!(
        updated.telephony_settings,
        Some(settings(true, false, true))
    );
    for fragment in [
        "inbound calling is on",
        "outbound calling is off",
        "SMS is on",
        "Sign out and sign back in",
    ] {
        assert!(
            updated.notice.contains(fragment),
            "{fragment:?} in {}",
            updated.notice
        );
    }
    streamed.push(updated);

    let sequence = logout(&app, &account, user).await;
    let signed_out = expect_event(&mut watch).await;
    assert_event(
        &signed_out,
        ChangeKind::UserSignOutRequested,
        3,
        &account,
        user,
        &actor,
    );
    assert_eq!(sequence, 3, "LogoutUser answers with its event's sequence");
    assert_eq!(signed_out.e164_phone_number, n);
    assert_eq!(
        signed_out.telephony_settings,
        Some(settings(true, false, true)),
        "a sign-out leaves the settings as they are"
    );
    assert!(
        signed_out.notice.contains("sign out"),
        "{}",
        signed_out.notice
    );
    streamed.push(signed_out);

    app.unassign(&account, user, true).await.unwrap();
    let unassigned = expect_event(&mut watch).await;
    assert_event(
        &unassigned,
        ChangeKind::PhoneNumberUnassigned,
        4,
        &account,
        user,
        &actor,
    );
    assert_eq!(unassigned.e164_phone_number, n, "the number removed");
    assert_eq!(unassigned.telephony_settings, Some(OFF));
    assert!(
        unassigned.notice.contains(&n)
            && unassigned.notice.contains("removed")
            && unassigned.notice.contains("Sign out and sign back in"),
        "{}",
        unassigned.notice
    );
    streamed.push(unassigned);

    app.assign(&account, user, &n).await.unwrap();
    streamed.push(expect_event(&mut watch).await);
    app.users()
        .delete_user(DeleteUserRequest {
            account_id: account.clone(),
            user_id: user.clone(),
        })
        .await
        .unwrap();
    let deleted = expect_event(&mut watch).await;
    assert_event(&deleted, ChangeKind::UserDeleted, 6, &account, user, &actor);
    assert_eq!(
        deleted.e164_phone_number, n,
        "the number the deletion freed"
    );
    assert_eq!(deleted.telephony_settings, Some(OFF));
    assert!(
        deleted.notice.contains(&n)
            && deleted.notice.contains("deleted")
            && deleted.notice.contains("signed out"),
        "{}",
        deleted.notice
    );
    streamed.push(deleted);

    let ids: std::collections::HashSet<_> = streamed.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), streamed.len(), "every event has its own id");
    assert_eq!(
        app.all_changes("", "").await,
        streamed,
        "the history holds exactly what was streamed"
    );
}

async fn refused_and_no_op_changes_emit_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account, users) = account_with_users(&app, "acme", 2).await;
    let (first, second) = (&users[0], &users[1]);
    let (n0, n1) = (number(10), number(11));
    app.order_business_numbers(&[n0.clone(), n1.clone()]).await;

    app.assign(&account, first, &n0).await.unwrap();
    let taken = app.assign(&account, second, &n0).await.unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition, "{taken:?}");
    assert!(taken.message().contains("already assigned"), "{taken:?}");
    let second_number = app.assign(&account, first, &n1).await.unwrap_err();
    assert_eq!(
        second_number.code(),
        Code::FailedPrecondition,
        "{second_number:?}"
    );
    let unconfirmed = app.unassign(&account, first, false).await.unwrap_err();
    assert_eq!(unconfirmed.code(), Code::InvalidArgument, "{unconfirmed:?}");
    assert!(unconfirmed.message().contains("confirm"), "{unconfirmed:?}");
    let nothing_to_unassign = app.unassign(&account, second, true).await.unwrap_err();
    assert_eq!(nothing_to_unassign.code(), Code::FailedPrecondition);
    let no_number = app
        .update_settings(&account, second, settings(true, true, true), &[])
        .await
        .unwrap_err();
    assert_eq!(no_number.code(), Code::FailedPrecondition, "{no_number:?}");

    // Already all off: nothing changes, so nothing is emitted.
    let unchanged = app
        .update_settings(&account, first, OFF, &[])
        .await
        .unwrap();
    assert_eq!(unchanged, OFF);
    app.update_settings(&account, first, settings(false, false, true), &["sms"])
        .await
        .unwrap();
    // The same value again, and a change to a field outside the mask: both no-ops.
    app.update_settings(&account, first, settings(false, false, true), &["sms"])
        .await
        .unwrap();
    let masked = app
        .update_settings(&account, first, settings(true, true, true), &["sms"])
        .await
        .unwrap();
    assert_eq!(masked, settings(false, false, true));

    // A retried assignment with the same request id changes nothing more.
    let request = AssignPhoneNumberRequest {
        account_id: account.clone(),
        user_id: second.clone(),
        e164_phone_number: n1.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    for _ in 0..2 {
        app.telephony()
            .assign_phone_number(request.clone())
            .await
            .unwrap();
    }

    let kinds: Vec<(u64, i32, String)> = app
        .all_changes("", "")
        .await
        .into_iter()
        .map(|e| (e.sequence, e.kind, e.user_id))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, ChangeKind::PhoneNumberAssigned as i32, first.clone()),
            (
                2,
                ChangeKind::TelephonySettingsUpdated as i32,
                first.clone()
            ),
            (3, ChangeKind::PhoneNumberAssigned as i32, second.clone()),
        ],
        "one event per effective change, none for refusals or no-ops"
    );
    // The stream agrees: a full replay ends at 3.
    let mut replay = watch(&app, after(0)).await;
    let (events, _) = read_gap_free(&mut replay, 0, 3, true).await;
    assert_eq!(events.len(), 3);
    // The refusals left the state alone.
    assert_eq!(app.get_user(&account, first).await.primary_phone_number, n0);
    assert_eq!(
        app.get_user(&account, second).await.primary_phone_number,
        n1
    );
    let held = app.get_number(&n0).await;
    assert_eq!(held.status, PhoneNumberStatus::Assigned as i32);
    assert_eq!(held.association.unwrap().user_id, *first);
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

async fn list_changes_pages_through_the_same_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, a_users) = account_with_users(&app, "alpha", 2).await;
    let (b, b_users) = account_with_users(&app, "beta", 1).await;
    for i in 0..10 {
        match i % 3 {
            0 => logout(&app, &a, &a_users[0]).await,
            1 => logout(&app, &a, &a_users[1]).await,
            _ => logout(&app, &b, &b_users[0]).await,
        };
    }
    let mut stream = watch(&app, after(0)).await;
    let (streamed, _) = read_gap_free(&mut stream, 0, 10, true).await;

    let mut paged = Vec::new();
    let mut page_sizes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .changes()
            .list_changes(ListChangesRequest {
                page_size: 3,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        page_sizes.push(page.events.len());
        paged.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(page_sizes, vec![3, 3, 3, 1]);
    assert_eq!(paged, streamed, "pages hold what the stream sent");

    let later: Vec<u64> = app
        .all_changes_as(
            &app.admin_key,
            ListChangesRequest {
                after_sequence: 4,
                ..Default::default()
            },
        )
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(later, (5..=10).collect::<Vec<_>>());
    let of_b: Vec<ChangeEvent> = app.all_changes(&b, "").await;
    assert_eq!(
        of_b,
        streamed
            .iter()
            .filter(|e| e.account_id == b)
            .cloned()
            .collect::<Vec<_>>()
    );
    let of_user: Vec<u64> = app
        .all_changes("", &a_users[1])
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(of_user, vec![2, 5, 8]);

    let garbage = app
        .changes()
        .list_changes(ListChangesRequest {
            page_token: "certainly-not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    assert!(garbage.message().contains("page_token"), "{garbage:?}");
    // A token is bound to the filters it was made for.
    let first = app
        .changes()
        .list_changes(ListChangesRequest {
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let other_filter = app
        .changes()
        .list_changes(ListChangesRequest {
            account_id: a.clone(),
            page_size: 3,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        other_filter.code(),
        Code::InvalidArgument,
        "{other_filter:?}"
    );
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
        .list_api_keys()
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
    app.store.revoke_api_key(&key_id).await.unwrap();
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
    every_event_kind_carries_its_fields_and_notice,
    refused_and_no_op_changes_emit_nothing,
    watch_without_resume_point_starts_after_the_present,
    replay_then_live_has_no_gap_or_duplicate,
    filters_deliver_only_matching_events,
    filtered_checkpoint_advances_while_other_events_flow,
    idle_stream_receives_periodic_checkpoints,
    compacted_history_is_out_of_range,
    slow_consumer_loses_nothing,
    replay_after_restart_reads_the_database,
    dropped_stream_releases_its_watch_slot,
    concurrent_writers_are_seen_in_gap_free_order,
    list_changes_pages_through_the_same_history,
    shutdown_ends_open_streams,
    revoked_key_ends_its_stream,
);
