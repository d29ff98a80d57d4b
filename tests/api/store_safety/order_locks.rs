//! Orders under contention: overlapping orders cannot deadlock, and an order holds no lock on
//! numbers it does not change.

use super::holder;
use crate::common::fixtures::unassign_via;
use crate::common::{Backend, TestApp, TestDatabase, spawn_app, spawn_app_on_url};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use std::time::Duration;
use telephony_admin::proto::{
    CreatePhoneNumberOrderRequest, OrderedPhoneNumberStatus, PhoneNumberOrder,
    PhoneNumberProductType,
};

/// How long an operation that must not wait behind another is given, on a loaded machine.
const UNBLOCKED_WITHIN: Duration = Duration::from_secs(20);

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

on_both_databases!(overlapping_orders_in_opposite_orders_all_complete,);
