//! What the store must keep safe under load and across tenants: purges that read only what they
//! delete, orders that cannot deadlock or hold numbers they do not change, assignment answers
//! that reveal nothing outside a key's account, account deletion that takes its keys along, and
//! idempotency records that belong to one tenant.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    CreatePhoneNumberOrderRequest, DeleteAccountRequest, DeletePhoneNumberRequest,
    GetPhoneNumberRequest, ListAccountsRequest, ListChangesRequest, OrderedPhoneNumberStatus,
    PhoneNumber, PhoneNumberOrder, PhoneNumberProductType, TelephonySettings,
};
use tonic::Code;

use crate::common::fixtures::{assign_via, number, unassign_via, update_settings_via};
use crate::common::{Backend, TestApp, TestDatabase, spawn_app, spawn_app_on_url};

on_both_databases!(
    purge_queries_use_their_indexes,
    purges_of_several_chunks_keep_the_log_and_records_consistent,
    assignment_answers_like_get_phone_number_outside_the_key_scope,
    deleting_an_account_revokes_its_keys,
    request_ids_are_scoped_by_tenant,
    a_refused_unassignment_is_not_remembered_and_confirm_is_part_of_the_request,
    overlapping_orders_in_opposite_orders_all_complete,
);

/// The user a number is assigned to, if any.
fn holder(number: &PhoneNumber) -> Option<&str> {
    number.association.as_ref().map(|a| a.user_id.as_str())
}

/// How long an operation that must not wait behind another is given, on a loaded machine.
const UNBLOCKED_WITHIN: Duration = Duration::from_secs(20);

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
    let app = spawn_app(backend).await;
    let (account, pairs) = users_with_numbers(&app, 10).await;
    let assigned = pairs.len();
    let old_ids = toggle_sms(&app, &account, &pairs, EXPIRED - assigned).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let kept_ids = toggle_sms(&app, &account, &pairs, 5).await;

    let purged = app
        .store
        .purge_changes_before(cutoff)
        .await
        .expect("purge the change log");
    assert_eq!(purged, EXPIRED as u64, "every expired event and no other");
    let forgotten = app
        .store
        .purge_idempotency_keys_before(cutoff)
        .await
        .expect("purge idempotency records");
    assert_eq!(forgotten, old_ids.len() as u64);

    let state = app.store.change_log_state().await.expect("log state");
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
    let after = app.store.change_log_state().await.expect("log state");
    assert_eq!(
        after.last_sequence, state.last_sequence,
        "a replayed request writes no event"
    );
}

async fn delete_number(app: &TestApp, e164: &str) {
    app.numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: e164.into(),
        })
        .await
        .expect("queue the number for deletion");
}

async fn assignment_answers_like_get_phone_number_outside_the_key_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await.account_id;
    let other = app.create_account("Other").await.account_id;
    let user = app.create_user(&own, "probe@example.com").await.user_id;
    let colleague = app.create_user(&own, "colleague@example.com").await.user_id;
    let stranger = app
        .create_user(&other, "stranger@example.com")
        .await
        .user_id;
    let (elsewhere, queued, absent, colleagues) = (number(1), number(2), number(3), number(4));
    app.order_business_numbers(&[&elsewhere, &queued, &colleagues])
        .await;
    app.assign(&other, &stranger, &elsewhere).await.unwrap();
    app.assign(&own, &colleague, &colleagues).await.unwrap();
    delete_number(&app, &queued).await;

    let key = app
        .create_key(Role::Admin, Scope::Account(own.clone()))
        .await;
    let mut as_account = app.telephony_as(Some(&key));
    for probe in [&elsewhere, &queued, &absent] {
        let read = app
            .numbers_as(Some(&key))
            .get_phone_number(GetPhoneNumberRequest {
                phone_number_id: probe.clone(),
            })
            .await
            .expect_err("GetPhoneNumber hides the number from the account key");
        let assigned = assign_via(&mut as_account, &own, &user, probe, "")
            .await
            .expect_err("the number cannot be assigned");
        assert_eq!(read.code(), Code::PermissionDenied, "{probe}: {read:?}");
        assert_eq!(
            (assigned.code(), assigned.message()),
            (read.code(), read.message()),
            "{probe}: assignment answers exactly as GetPhoneNumber does"
        );
    }
    // A number the key may see keeps its precise refusal.
    let taken = assign_via(&mut as_account, &own, &user, &colleagues, "")
        .await
        .expect_err("the colleague's number is taken");
    assert_eq!(taken.code(), Code::FailedPrecondition, "{taken:?}");

    // An organisation key still learns what is wrong.
    let mut as_org = app.telephony();
    let codes = [
        (&elsewhere, Code::FailedPrecondition),
        (&queued, Code::FailedPrecondition),
        (&absent, Code::NotFound),
    ];
    for (probe, code) in codes {
        let refused = assign_via(&mut as_org, &own, &user, probe, "")
            .await
            .expect_err("the number cannot be assigned");
        assert_eq!(refused.code(), code, "{probe}: {refused:?}");
    }
}

/// Calls ListAccounts with `key` until it is refused as unauthenticated.
async fn key_works(app: &TestApp, key: &str) -> bool {
    app.accounts_as(Some(key))
        .list_accounts(ListAccountsRequest::default())
        .await
        .is_ok()
}

async fn deleting_an_account_revokes_its_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    // On PostgreSQL, a second replica must drop the keys from its cache too.
    let replica = match backend {
        Backend::Postgres => Some(app.spawn_replica().await),
        Backend::Sqlite => None,
    };
    let gone = app.create_account("Gone").await.account_id;
    let stays = app.create_account("Stays").await.account_id;
    let admin = app
        .create_key(Role::Admin, Scope::Account(gone.clone()))
        .await;
    let viewer = app
        .create_key(Role::Viewer, Scope::Account(gone.clone()))
        .await;
    let neighbour = app
        .create_key(Role::Admin, Scope::Account(stays.clone()))
        .await;
    let servers: Vec<&TestApp> = std::iter::once(&app).chain(replica.as_ref()).collect();
    for server in &servers {
        for key in [&admin, &viewer, &neighbour] {
            assert!(
                key_works(server, key).await,
                "each key works (and is cached)"
            );
        }
    }

    app.accounts()
        .delete_account(DeleteAccountRequest {
            account_id: gone.clone(),
        })
        .await
        .expect("delete the account");

    for server in &servers {
        server.wait_until_refused(&admin).await;
        server.wait_until_refused(&viewer).await;
        assert!(
            key_works(server, &neighbour).await,
            "another account's key is untouched"
        );
    }
    let keys = app.store.list_api_keys().await.expect("list keys");
    let revoked = keys
        .iter()
        .filter(|k| k.account_id.as_deref() == Some(gone.as_str()))
        .collect::<Vec<_>>();
    assert_eq!(revoked.len(), 2);
    assert!(
        revoked.iter().all(|k| k.revoke_time.is_some()),
        "the keys are revoked, not deleted: {revoked:?}"
    );
}

async fn request_ids_are_scoped_by_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.create_account("First").await.account_id;
    let second = app.create_account("Second").await.account_id;
    let first_user = app.create_user(&first, "a@example.com").await.user_id;
    let second_user = app.create_user(&second, "b@example.com").await.user_id;
    app.order_business_numbers(&[number(1), number(2)]).await;
    let first_key = app
        .create_key(Role::Admin, Scope::Account(first.clone()))
        .await;
    let second_key = app
        .create_key(Role::Admin, Scope::Account(second.clone()))
        .await;
    let request_id = uuid::Uuid::new_v4().to_string();

    let mut first_client = app.telephony_as(Some(&first_key));
    let mut second_client = app.telephony_as(Some(&second_key));
    let a = assign_via(
        &mut first_client,
        &first,
        &first_user,
        &number(1),
        &request_id,
    )
    .await
    .expect("the first account's assignment");
    let b = assign_via(
        &mut second_client,
        &second,
        &second_user,
        &number(2),
        &request_id,
    )
    .await
    .expect("the same request_id in another account is another request");
    assert_eq!(a.primary_phone_number, number(1));
    assert_eq!(b.primary_phone_number, number(2));
    assert_eq!(
        holder(&app.get_number(&number(2)).await),
        Some(second_user.as_str())
    );

    // Each tenant's retry gets its own first result back.
    let a_again = assign_via(
        &mut first_client,
        &first,
        &first_user,
        &number(1),
        &request_id,
    )
    .await
    .expect("retry");
    let b_again = assign_via(
        &mut second_client,
        &second,
        &second_user,
        &number(2),
        &request_id,
    )
    .await
    .expect("retry");
    assert_eq!((a_again, b_again), (a, b));
}

async fn a_refused_unassignment_is_not_remembered_and_confirm_is_part_of_the_request(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Confirm").await.account_id;
    let user = app.create_user(&account, "c@example.com").await.user_id;
    app.order_business_numbers(&[number(1)]).await;
    app.assign(&account, &user, &number(1)).await.unwrap();
    let mut client = app.telephony();

    // A refusal is not kept: the corrected request with the same id is decided afresh.
    let request_id = uuid::Uuid::new_v4().to_string();
    let refused = unassign_via(&mut client, &account, &user, false, &request_id)
        .await
        .expect_err("unconfirmed");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let done = unassign_via(&mut client, &account, &user, true, &request_id)
        .await
        .expect("the confirmed request with the same id");
    assert_eq!(done.primary_phone_number, "");
    assert_eq!(holder(&app.get_number(&number(1)).await), None);

    // The success is kept, for the same request only: the same id without confirm is another
    // request, refused as such rather than answered with the stored success.
    app.assign(&account, &user, &number(1)).await.unwrap();
    let reused = unassign_via(&mut client, &account, &user, false, &request_id)
        .await
        .expect_err("a different request under a used id");
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert!(
        reused.message().contains("request_id"),
        "the refusal names the reused id: {reused:?}"
    );
    assert_eq!(
        holder(&app.get_number(&number(1)).await),
        Some(user.as_str()),
        "nothing was unassigned"
    );
}

/// `count` BUSINESS_CALLING numbers in E.164 order: +1 212 555 01nn, then +1 415 555 01nn.
fn order_numbers(count: usize) -> Vec<String> {
    ["212", "415"]
        .iter()
        .flat_map(|area| (0..100).map(move |nn| format!("+1{area}55501{nn:02}")))
        .take(count)
        .collect()
}

async fn place_order(
    app: &TestApp,
    numbers: Vec<String>,
) -> Result<PhoneNumberOrder, tonic::Status> {
    app.numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: numbers,
        })
        .await
        .map(|r| r.into_inner())
}

async fn overlapping_orders_in_opposite_orders_all_complete(backend: Backend) {
    const ROUNDS: usize = 4;
    const PER_ORDER: usize = 40;
    let app = spawn_app(backend).await;
    // Two writers on PostgreSQL (two replicas); SQLite has one writer per database file.
    let replica = match backend {
        Backend::Postgres => Some(app.spawn_replica().await),
        Backend::Sqlite => None,
    };
    let other = replica.as_ref().unwrap_or(&app);
    let all = order_numbers(ROUNDS * PER_ORDER);
    for round in all.chunks(PER_ORDER) {
        let forward = round.to_vec();
        let backward: Vec<String> = round.iter().rev().cloned().collect();
        let (a, b) = tokio::join!(place_order(&app, forward), place_order(other, backward));
        let (a, b) = (
            a.expect("the forward order completes"),
            b.expect("the backward order completes"),
        );
        for e164 in round {
            let acquired = [&a, &b]
                .iter()
                .flat_map(|order| order.ordered_phone_numbers.iter())
                .filter(|item| {
                    &item.e164_phone_number == e164
                        && item.status() == OrderedPhoneNumberStatus::Acquired
                })
                .count();
            assert_eq!(acquired, 1, "{e164} is acquired by exactly one order");
        }
        // Items are reported in the request's order, whatever order they were written in.
        let reported: Vec<&String> = b
            .ordered_phone_numbers
            .iter()
            .map(|i| &i.e164_phone_number)
            .collect();
        assert_eq!(reported, round.iter().rev().collect::<Vec<_>>());
    }
}

/// On PostgreSQL an order must not lock numbers it does not change: while an order is held up
/// (here by a lock the test takes on the order table), a number it names that is already
/// assigned can still be unassigned on another replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn an_order_does_not_hold_numbers_already_in_the_inventory() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let app = spawn_app_on_url(&database.url, |_| {}).await;
    let replica = app.spawn_replica().await;
    let account = app.create_account("Busy").await.account_id;
    let user = app.create_user(&account, "busy@example.com").await.user_id;
    let [held, fresh] = [order_numbers(2)[0].clone(), order_numbers(2)[1].clone()];
    app.order_business_numbers(&[&held]).await;
    app.assign(&account, &user, &held).await.unwrap();

    // Hold the order back at its last write: recording the order itself.
    let blocker = app.store.connection().begin().await.expect("begin");
    blocker
        .execute_unprepared("LOCK TABLE phone_number_orders IN EXCLUSIVE MODE")
        .await
        .expect("lock the order table");
    let mut client = app.numbers();
    let numbers = vec![fresh.clone(), held.clone()];
    let order = tokio::spawn(async move {
        client
            .create_phone_number_order(CreatePhoneNumberOrderRequest {
                product_type: PhoneNumberProductType::BusinessCalling as i32,
                e164_phone_numbers: numbers,
            })
            .await
            .map(|r| r.into_inner())
    });
    // Let the order reach its held-back write.
    let deadline = tokio::time::Instant::now() + UNBLOCKED_WITHIN;
    loop {
        let waiting = app
            .store
            .connection()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'phone_number_orders'::regclass",
            ))
            .await
            .expect("pg_locks")
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .unwrap_or(0);
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order never reached its write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let unassigned = tokio::time::timeout(
        UNBLOCKED_WITHIN,
        unassign_via(&mut replica.telephony(), &account, &user, true, ""),
    )
    .await;
    blocker.rollback().await.expect("release the order table");
    let unassigned = unassigned.expect("the unassignment does not wait for the order");
    unassigned.expect("the unassignment succeeds");

    let order = order
        .await
        .expect("order task")
        .expect("the order completes");
    let outcome: Vec<(String, bool)> = order
        .ordered_phone_numbers
        .iter()
        .map(|i| {
            (
                i.e164_phone_number.clone(),
                i.status() == OrderedPhoneNumberStatus::Acquired,
            )
        })
        .collect();
    assert_eq!(outcome, vec![(fresh, true), (held.clone(), false)]);
    assert_eq!(holder(&app.get_number(&held).await), None);
}
