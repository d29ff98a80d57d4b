//! Rolling upgrades: an event whose kind this build does not know (a newer replica wrote it) is
//! read as its number and name, passed to watchers, ListChanges and unfiltered webhooks as
//! written, counted in a metric, and stops nothing: the events after it still arrive.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use telephony_admin::proto::{ChangeKind, ListChangesRequest, WebhookFilter};

use super::{from_now, logout, read_gap_free, watch};
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::{Backend, TestApp, spawn_app_with};
use crate::webhooks::{account_and_user, create_for, fast_delivery, wait_until};

const NEWER_CODE: i32 = 99;
const NEWER_NAME: &str = "SOMETHING_NEWER";
const NOTICE: &str = "Something newer happened.";

/// What a newer version writes for a change of a kind it knows and this build does not: on
/// SQLite numbered at once, on PostgreSQL staged for this build's sequencer to number.
async fn write_newer_event(app: &TestApp, backend: Backend, account: &str, user: &str) {
    let db = app.store.connection();
    let columns = "event_id, account_id, user_id, kind, kind_code, e164, inbound_calling, \
                   outbound_calling, sms, notice, actor, occur_time";
    let values = |first: u32| -> String {
        (first..first + 12)
            .map(|n| match backend {
                Backend::Postgres => format!("${n}"),
                Backend::Sqlite => "?".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut bound: Vec<sea_orm::Value> = vec![
        uuid::Uuid::new_v4().to_string().into(),
        account.into(),
        user.into(),
        NEWER_NAME.into(),
        NEWER_CODE.into(),
        "".into(),
        false.into(),
        false.into(),
        false.into(),
        NOTICE.into(),
        "newer-replica".into(),
        chrono::Utc::now().into(),
    ];
    match backend {
        Backend::Postgres => {
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "INSERT INTO change_events_staged ({columns}) VALUES ({})",
                    values(1)
                ),
                bound,
            ))
            .await
            .expect("stage the newer event");
            // Left staged, as by a newer replica gone before numbering it: the sweeper numbers
            // it within a second.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let left: i64 = db
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT count(*) FROM change_events_staged",
                    ))
                    .await
                    .unwrap()
                    .expect("a count")
                    .try_get_by_index(0)
                    .unwrap();
                if left == 0 {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "never numbered");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Backend::Sqlite => {
            let txn = db.begin().await.unwrap();
            let sequence: i64 = txn
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "UPDATE change_log SET last_sequence = last_sequence + 1 WHERE id = 1 \
                     RETURNING last_sequence",
                ))
                .await
                .unwrap()
                .expect("the counter row")
                .try_get_by_index(0)
                .unwrap();
            bound.insert(0, sequence.into());
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!(
                    "INSERT INTO change_events (sequence, {columns}) VALUES (?, {})",
                    values(1)
                ),
                bound,
            ))
            .await
            .expect("write the newer event");
            txn.commit().await.unwrap();
        }
    }
}

fn unknown_kinds_counted() -> u64 {
    let text = telephony_admin::metrics::enable().encode(None);
    text.lines()
        .find(|line| line.starts_with("telephony_admin_change_events_unknown_kind_total "))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

async fn an_event_of_a_kind_unknown_to_this_build_passes(backend: Backend) {
    assert!(
        ChangeKind::try_from(NEWER_CODE).is_err(),
        "the kind is unknown to this build"
    );
    // The registry is the test binary's: other tests may count too, so only a rise is checked.
    telephony_admin::metrics::enable();
    let counted_before = unknown_kinds_counted();
    let app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let everything = Receiver::start(Mode::Accept).await;
    let all_kinds = create_for(&app, &everything, None).await;
    let sign_outs_only = Receiver::start(Mode::Accept).await;
    let filtered = create_for(
        &app,
        &sign_outs_only,
        Some(WebhookFilter {
            kinds: vec![ChangeKind::UserSignOutRequested as i32],
            ..Default::default()
        }),
    )
    .await;
    let mut live = watch(&app, from_now()).await;

    let first = logout(&app, &account, &user).await;
    write_newer_event(&app, backend, &account, &user).await;
    let third = logout(&app, &account, &user).await;
    assert_eq!(
        third,
        first + 2,
        "the newer event was numbered between the two"
    );

    let check = |events: &[telephony_admin::proto::ChangeEvent]| {
        let kinds: Vec<i32> = events.iter().map(|e| e.kind).collect();
        let known = ChangeKind::UserSignOutRequested as i32;
        assert_eq!(kinds, [known, NEWER_CODE, known]);
        let newer = &events[1];
        assert_eq!(newer.notice, NOTICE);
        assert_eq!(newer.account_id, account);
        assert_eq!(newer.user_id, user);
        assert!(newer.sign_out_required);
    };
    // Live, from the hub's ring.
    let (events, _) = read_gap_free(&mut live, first - 1, third, false).await;
    check(&events);
    // Replayed from the database.
    let mut replay = watch(&app, super::after(first - 1)).await;
    let (events, _) = read_gap_free(&mut replay, first - 1, third, false).await;
    check(&events);
    // The history.
    let listed = app
        .changes()
        .list_changes(ListChangesRequest {
            after_sequence: first - 1,
            ..Default::default()
        })
        .await
        .expect("ListChanges")
        .into_inner()
        .events;
    check(&listed[..3]);

    // Webhooks: an unfiltered one gets it with its name; a filter on known kinds passes it by.
    let received = everything.wait_for(3, super::WAIT).await;
    assert_eq!(everything.sequences(), [first, first + 1, third]);
    assert_eq!(received[1].kind, format!("CHANGE_KIND_{NEWER_NAME}"));
    assert_eq!(
        received[1].body["data"]["kind"],
        format!("CHANGE_KIND_{NEWER_NAME}")
    );
    wait_until(&app, &filtered.webhook_id, "past the newer event", |w| {
        w.last_delivered_sequence == third
    })
    .await;
    assert_eq!(sign_outs_only.sequences(), [first, third]);
    wait_until(&app, &all_kinds.webhook_id, "caught up", |w| {
        w.last_delivered_sequence == third
    })
    .await;

    assert!(
        unknown_kinds_counted() > counted_before,
        "the hub counted the unknown kind"
    );
}

on_both_databases!(an_event_of_a_kind_unknown_to_this_build_passes);
