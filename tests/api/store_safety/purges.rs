//! Purges read only what they delete (their queries use indexes) and, chunk by chunk, keep the
//! change log and the idempotency records consistent.

use crate::common::fixtures::{number, update_settings_via};
use crate::common::{Backend, TestApp, spawn_app};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use std::time::Duration;
use telephony_admin::proto::{ListChangesRequest, TelephonySettings};

/// The query plan of `sql` (bound to `values`) as text. On PostgreSQL sequential scans are
/// turned off for the question, so that a tiny test table still shows whether an index could
/// serve the query at all.
async fn query_plan(app: &TestApp, sql: &str, values: Vec<sea_orm::Value>) -> String {
    let db = app.store.connection();
    let backend = db.get_database_backend();
    let txn = db.begin().await.expect("begin");
    let explain = match backend {
        DbBackend::Postgres => {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .expect("set enable_seqscan");
            format!("EXPLAIN {sql}")
        }
        _ => format!("EXPLAIN QUERY PLAN {sql}"),
    };
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(backend, explain, values))
        .await
        .expect("explain");
    let column = if backend == DbBackend::Postgres {
        "QUERY PLAN"
    } else {
        "detail"
    };
    let plan = rows
        .iter()
        .map(|row| row.try_get::<String>("", column).expect("plan line"))
        .collect::<Vec<_>>()
        .join("\n");
    txn.rollback().await.expect("rollback");
    plan
}

fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::Sqlite => "?".into(),
    }
}

async fn purge_queries_use_their_indexes(backend: Backend) {
    let app = spawn_app(backend).await;
    let cutoff = sea_orm::Value::from(chrono::Utc::now());
    let p = placeholder(backend, 1);

    // The newest expired event: how far the retention purge goes.
    let plan = query_plan(
        &app,
        &format!(
            "SELECT sequence FROM change_events WHERE occur_time < {p} \
             ORDER BY occur_time DESC, sequence DESC LIMIT 1"
        ),
        vec![cutoff.clone()],
    )
    .await;
    assert!(
        plan.contains("change_events_occur_time"),
        "the retention query reads the index on occur_time, not the retained log:\n{plan}"
    );

    // One chunk of expired idempotency records.
    let plan = query_plan(
        &app,
        &format!(
            "SELECT scope, request_id FROM idempotency_records WHERE create_time < {p} LIMIT 1000"
        ),
        vec![cutoff],
    )
    .await;
    assert!(
        plan.contains("idempotency_records_create_time"),
        "the idempotency purge reads the index on create_time:\n{plan}"
    );
}

/// An account with `users` users, each holding a number; returns the account and the
/// (user, number) pairs.
async fn users_with_numbers(app: &TestApp, users: usize) -> (String, Vec<(String, String)>) {
    let account = app.create_account("Purged").await.account_id;
    let numbers: Vec<String> = (0..users).map(number).collect();
    app.order_business_numbers(&numbers).await;
    let mut pairs = Vec::new();
    for (i, n) in numbers.into_iter().enumerate() {
        let user = app
            .create_user(&account, &format!("user{i}@example.com"))
            .await
            .user_id;
        app.assign(&account, &user, &n).await.expect("assign");
        pairs.push((user, n));
    }
    (account, pairs)
}

/// Toggles SMS `times` times over `pairs`, each call with a request id of its own; returns the
/// request ids.
async fn toggle_sms(
    app: &TestApp,
    account: &str,
    pairs: &[(String, String)],
    times: usize,
) -> Vec<String> {
    let mut tasks = Vec::new();
    for (lane, (user, _)) in pairs.iter().enumerate() {
        let mut client = app.telephony();
        let (account, user) = (account.to_owned(), user.clone());
        let calls = times / pairs.len() + usize::from(lane < times % pairs.len());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..calls {
                let id = uuid::Uuid::new_v4().to_string();
                let wanted = TelephonySettings {
                    sms: i % 2 == 0,
                    ..Default::default()
                };
                update_settings_via(&mut client, &account, &user, wanted, &["sms"], &id)
                    .await
                    .expect("toggle SMS");
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.expect("toggle task"));
    }
    ids
}

async fn purges_of_several_chunks_keep_the_log_and_records_consistent(backend: Backend) {
    // Chunks are 1,000 rows: 2,050 expired rows take three.
    const EXPIRED: usize = 2_050;
    // The writes run in this many concurrent lanes, one user each: the writer commits concurrent
    // writes together, so more lanes write the same rows in fewer commits.
    const LANES: usize = 50;
    let app = spawn_app(backend).await;
    let (account, pairs) = users_with_numbers(&app, LANES).await;
    let assigned = pairs.len();
    let old_ids = toggle_sms(&app, &account, &pairs, EXPIRED - assigned).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let kept_ids = toggle_sms(&app, &account, &pairs, 5).await;

    let purged = app
        .store
        .retention()
        .purge_changes_before(cutoff)
        .await
        .expect("purge the change log");
    assert_eq!(purged, EXPIRED as u64, "every expired event and no other");
    let forgotten = app
        .store
        .retention()
        .purge_answers_before(cutoff)
        .await
        .expect("purge idempotency records");
    assert_eq!(forgotten, old_ids.len() as u64);

    let state = app.store.changes().state().await.expect("log state");
    assert_eq!(state.purged_through, EXPIRED as u64);
    assert_eq!(state.last_sequence, EXPIRED as u64 + 5);
    let left = app
        .changes()
        .list_changes(ListChangesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list changes")
        .into_inner()
        .events;
    let sequences: Vec<u64> = left.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (EXPIRED as u64 + 1..=EXPIRED as u64 + 5).collect::<Vec<_>>(),
        "the retained events are exactly those after the cutoff, without a gap"
    );

    // A kept record still answers its retry, without writing anything again.
    let (user, _) = &pairs[0];
    let mut client = app.telephony();
    update_settings_via(
        &mut client,
        &account,
        user,
        TelephonySettings {
            sms: true,
            ..Default::default()
        },
        &["sms"],
        &kept_ids[0],
    )
    .await
    .expect("a kept record answers its retry");
    let after = app.store.changes().state().await.expect("log state");
    assert_eq!(
        after.last_sequence, state.last_sequence,
        "a replayed request writes no event"
    );
}

on_both_databases!(
    purge_queries_use_their_indexes,
    purges_of_several_chunks_keep_the_log_and_records_consistent,
);
