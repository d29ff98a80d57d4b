//! The write engine on a real database (PostgreSQL at `TEST_DATABASE_URL`, or a SQLite file):
//! what a mutation or a joined run that fails after appending events leaves behind.

use std::time::Duration;

use futures::future::join_all;
use sea_orm::{ConnectionTrait, Database, DatabaseTransaction, Statement};

use super::mutation::{Mutation, TxnFuture};
use super::outbox::append_change;
use crate::domain::change::{ChangeKind, NewChange};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::telephony::TelephonySettings;
use crate::error::Error;
use crate::store::{Store, StoreOptions, WriterOptions};

/// A USER_SIGN_OUT_REQUESTED change of `user`, by `actor`.
fn sign_out_asked(account: &AccountId, user: &UserId, actor: &str) -> NewChange {
    NewChange {
        account_id: account.clone(),
        user_id: user.clone(),
        kind: ChangeKind::UserSignOutRequested,
        e164_phone_number: None,
        settings: TelephonySettings::OFF,
        actor: actor.to_owned(),
    }
}

/// Appends a sign-out event for `user` with `actor`, then fails if `fails`.
struct AppendThenMaybeFail {
    account: AccountId,
    user: UserId,
    actor: &'static str,
    fails: bool,
}

impl Mutation for AppendThenMaybeFail {
    type Output = u64;
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, u64> {
        Box::pin(async move {
            let change = sign_out_asked(&self.account, &self.user, self.actor);
            let event = append_change(txn, change).await?;
            if self.fails {
                return Err(Error::Internal("fails after appending".into()));
            }
            Ok(event.sequence)
        })
    }

    fn visit_sequences(output: &mut u64, visit: &mut dyn FnMut(&mut u64)) {
        visit(output);
    }
}

async fn fresh_database() -> String {
    let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL is set");
    let name = format!("telephony_engine_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url.as_str())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at TEST_DATABASE_URL is unreachable: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    admin.close().await.ok();
    let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.into()
}

/// Appends a sign-out event for `user` with `actor`. Joined with others, the run appends theirs
/// and then fails as a whole, as a set statement the database refuses would.
struct FailsJoined {
    account: AccountId,
    user: UserId,
    actor: String,
}

impl FailsJoined {
    fn change(&self) -> NewChange {
        sign_out_asked(&self.account, &self.user, &self.actor)
    }
}

impl Mutation for FailsJoined {
    type Output = u64;
    const APPENDS_CHANGES: bool = true;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, u64> {
        Box::pin(async move { Ok(append_change(txn, self.change()).await?.sequence) })
    }

    fn visit_sequences(output: &mut u64, visit: &mut dyn FnMut(&mut u64)) {
        visit(output);
    }

    fn joins(&self, _other: &Self) -> bool {
        true
    }

    fn run_together<'a>(
        all: Vec<&'a Self>,
        txn: &'a DatabaseTransaction,
    ) -> TxnFuture<'a, Vec<crate::error::Result<u64>>> {
        Box::pin(async move {
            for one in all {
                append_change(txn, one.change()).await?;
            }
            Err(Error::Internal("the joined run fails".into()))
        })
    }
}

fn batching() -> StoreOptions {
    StoreOptions {
        writer: WriterOptions {
            max_batch: 64,
            gather: Duration::from_millis(150),
        },
        ..StoreOptions::default()
    }
}

/// Three joined requests, their batch's only group, run without a savepoint; their run fails
/// as a whole: the transaction is rolled back, nothing of the run is numbered, and each
/// request runs again on its own and commits its one event.
async fn a_failed_joined_run_alone_in_its_batch_runs_its_members_alone(url: &str) {
    let store = Store::connect(url, batching()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let account = AccountId::parse("account_id", &uuid::Uuid::new_v4().to_string()).unwrap();
    let user = UserId::parse("user_id", &uuid::Uuid::new_v4().to_string()).unwrap();
    let stats = store.write_stats();
    for round in 0.. {
        assert!(round < 10, "the three requests never shared a batch");
        let mutations = stats.mutations();
        let mutation = |n: usize| FailsJoined {
            account: account.clone(),
            user: user.clone(),
            actor: format!("r{round}-{n}"),
        };
        let engine = &store.engine;
        let answers = join_all([
            engine.write(mutation(0)),
            engine.write(mutation(1)),
            engine.write(mutation(2)),
        ])
        .await;
        let mut sequences: Vec<u64> = (answers.iter())
            .map(|answer| *answer.as_ref().expect("committed on its own"))
            .collect();
        sequences.sort_unstable();
        let log = logged(&store).await;
        let found: Vec<i64> = log.iter().map(|(sequence, _)| *sequence).collect();
        assert_eq!(
            found,
            (1..=log.len() as i64).collect::<Vec<_>>(),
            "gap-free"
        );
        let ours: Vec<u64> = (log.iter())
            .filter(|(_, actor)| actor.starts_with(&format!("r{round}-")))
            .map(|(sequence, _)| *sequence as u64)
            .collect();
        assert_eq!(sequences, ours, "one event each, named by its answer");
        assert_eq!(stats.joined_runs(), 0);
        // Three run together and failed, then three on their own.
        if stats.mutations() == mutations + 6 {
            break;
        }
    }
    store.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_joined_run_alone_in_its_batch_runs_its_members_alone_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    a_failed_joined_run_alone_in_its_batch_runs_its_members_alone(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn a_failed_joined_run_alone_in_its_batch_runs_its_members_alone_postgres() {
    let url = fresh_database().await;
    a_failed_joined_run_alone_in_its_batch_runs_its_members_alone(&url).await;
    drop_database(&url).await;
}

/// The events in the log, as (sequence, actor).
async fn logged(store: &Store) -> Vec<(i64, String)> {
    let backend = store.engine.reader().get_database_backend();
    let rows = (store.engine.reader())
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT sequence, actor FROM change_events ORDER BY sequence",
        ))
        .await
        .expect("read the log");
    rows.into_iter()
        .map(|row| {
            let sequence: i64 = row.try_get_by_index(0).expect("sequence");
            let actor: String = row.try_get_by_index(1).expect("actor");
            (sequence, actor)
        })
        .collect()
}

/// A mutation that fails after appending an event is rolled back to its savepoint: its event
/// is not numbered into the log, and the events of the mutations around it in the batch are,
/// gap-free, with the sequences their answers name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn a_failed_mutations_events_are_not_numbered() {
    let url = fresh_database().await;
    let store = Store::connect(&url, batching()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let account = AccountId::parse("account_id", &uuid::Uuid::new_v4().to_string()).unwrap();
    let user = UserId::parse("user_id", &uuid::Uuid::new_v4().to_string()).unwrap();
    let stats = store.write_stats();
    let mut numbered = 0;
    for round in 0.. {
        assert!(round < 10, "the three mutations never shared a batch");
        let batches = stats.batches();
        let mutation = |actor, fails| AppendThenMaybeFail {
            account: account.clone(),
            user: user.clone(),
            actor,
            fails,
        };
        let engine = &store.engine;
        let answers = join_all([
            engine.write(mutation("before", false)),
            engine.write(mutation("failing", true)),
            engine.write(mutation("after", false)),
        ])
        .await;
        assert!(answers[1].is_err(), "{:?}", answers[1]);
        let mut sequences: Vec<u64> = [&answers[0], &answers[2]]
            .iter()
            .map(|answer| *answer.as_ref().expect("committed"))
            .collect();
        sequences.sort_unstable();
        let log = logged(&store).await;
        assert!(log.iter().all(|(_, actor)| actor != "failing"), "{log:?}");
        let expected: Vec<i64> = (1..=numbered + 2).collect();
        let found: Vec<i64> = log.iter().map(|(sequence, _)| *sequence).collect();
        assert_eq!(found, expected, "gap-free");
        numbered += 2;
        let ours: Vec<u64> = log[log.len() - 2..]
            .iter()
            .map(|(sequence, _)| *sequence as u64)
            .collect();
        assert_eq!(sequences, ours, "the answers name their own events");
        if stats.batches() == batches + 1 {
            break;
        }
    }
    store.close().await.ok();
    drop_database(&url).await;
}

async fn drop_database(url: &str) {
    let url = url::Url::parse(url).expect("a URL");
    let name = url.path().trim_start_matches('/');
    let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL is set");
    let admin = Database::connect(admin_url.as_str())
        .await
        .expect("connect");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop the database");
    admin.close().await.ok();
}

/// Writes keeps a DELETE from a table that a foreign key references out of combined statements
/// (`db::writes::REFERENCED`): the list is every such table of the migrated schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn every_table_a_foreign_key_references_is_kept_apart_by_writes() {
    let url = fresh_database().await;
    let store = Store::connect(&url, batching()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let rows = store
        .engine
        .reader()
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
        ))
        .await
        .expect("the foreign keys");
    let referenced: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index(0).expect("a table"))
        .collect();
    let mut kept_apart = crate::store::db::writes::REFERENCED.to_vec();
    kept_apart.sort_unstable();
    assert_eq!(referenced, kept_apart);
    store.close().await.ok();
    drop_database(&url).await;
}
