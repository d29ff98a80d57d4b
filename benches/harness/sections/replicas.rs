//! Two replicas on one PostgreSQL database: do their writes queue behind each other? Two
//! instances of the service (in this process, each with its own pools, writer and sequencer)
//! serve LogoutUser, one write and its event, from 32 callers each. Their rate together is set
//! against one instance alone, and a sampler reads `pg_stat_activity` every millisecond for the
//! share of the database's busy connections that wait on a lock, with one instance and with
//! two: it shows whether the change-log counter row, which only the short sequencing
//! transactions lock (`store::engine::sequencer`), is what limits them. SQLite is one process per
//! database file: the section measures nothing there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tonic::transport::Channel;

use crate::Run;
use crate::api::{self, Bearer, LogoutUserRequest, UserServiceClient};
use crate::database::{Backend, BenchDatabase};
use crate::load::{Measured, closed_loop};
use crate::report::{Figure, Row};
use crate::server::InProcess;

const SECTION: &str = "replicas";
const CONNECTIONS: usize = 4;
const STREAMS: usize = 8;
const CALLERS: usize = CONNECTIONS * STREAMS;

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let database = run.target.create().await?;
    if database.backend() != Backend::Postgres {
        println!("   SQLite: one process per database file, nothing to measure");
        return Ok(Vec::new());
    }
    let first = InProcess::start(&database, |_| {}).await?;
    // The second instance finds the first one's key: both serve with it.
    let second = InProcess::start(&database, |_| {}).await?;
    let clients = &first.clients;
    let account_id = api::create_account(clients, "Replicas").await?;
    let mut users = Vec::with_capacity(2 * CALLERS);
    for i in 0..2 * CALLERS {
        users.push(
            api::create_user(clients, &account_id, &format!("replica{i}@example.com")).await?,
        );
    }
    let users = Arc::new(users);
    let logout = |bearer: Bearer, offset: usize| {
        let (users, account_id) = (users.clone(), account_id.clone());
        move |channel: Channel, caller: usize| {
            let request = LogoutUserRequest {
                account_id: account_id.clone(),
                user_id: users[offset + caller].clone(),
            };
            let bearer = bearer.clone();
            async move {
                UserServiceClient::with_interceptor(channel, bearer)
                    .logout_user(request)
                    .await
                    .map(drop)
            }
        }
    };
    let on_first = api::connect(first.address, CONNECTIONS).await?;
    let on_second = api::connect(second.address, CONNECTIONS).await?;

    let sampler = LockSampler::start(&database).await?;
    let alone = closed_loop(
        &on_first,
        STREAMS,
        run.budget,
        logout(clients.bearer.clone(), 0),
    )
    .await?;
    let waits_alone = sampler.take();
    let (a, b) = tokio::join!(
        closed_loop(
            &on_first,
            STREAMS,
            run.budget,
            logout(clients.bearer.clone(), 0)
        ),
        closed_loop(
            &on_second,
            STREAMS,
            run.budget,
            logout(clients.bearer.clone(), CALLERS)
        ),
    );
    let waits_both = sampler.take();
    sampler.stop().await;
    let (a, b): (Measured, Measured) = (a?, b?);
    let together = a.per_second() + b.per_second();
    println!(
        "   one instance {:.0}/s, two {:.0}/s; busy connections waiting on a lock: {:.0}% alone, {:.0}% with two",
        alone.per_second(),
        together,
        waits_alone * 100.0,
        waits_both * 100.0
    );
    first.stop().await?;
    second.stop().await?;
    Ok(vec![
        Row::new(
            SECTION,
            format!("LogoutUser/s, 2 instances x {CALLERS} callers (vs 1 instance)"),
            Figure::PerSecond(together),
        )
        .against(Figure::PerSecond(alone.per_second())),
        Row::new(
            SECTION,
            "busy connections waiting on a lock, 2 instances (vs 1)",
            Figure::Percent(waits_both * 100.0),
        )
        .against(Figure::Percent(waits_alone * 100.0)),
    ])
}

/// Samples `pg_stat_activity` every millisecond on a connection of its own: of the database's
/// active connections (other than its own), how many wait on a lock.
struct LockSampler {
    waiting: Arc<AtomicU64>,
    active: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl LockSampler {
    async fn start(database: &BenchDatabase) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&database.url)
            .await?;
        let (waiting, active, done) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let task = tokio::spawn({
            let (waiting, active, done) = (waiting.clone(), active.clone(), done.clone());
            async move {
                while !done.load(Ordering::Relaxed) {
                    let (locked, busy): (i64, i64) = sqlx::query_as(
                        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) \
                         FROM pg_stat_activity \
                         WHERE datname = current_database() AND state = 'active' \
                           AND pid <> pg_backend_pid()",
                    )
                    .fetch_one(&pool)
                    .await?;
                    waiting.fetch_add(locked as u64, Ordering::Relaxed);
                    active.fetch_add(busy as u64, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                pool.close().await;
                Ok(())
            }
        });
        Ok(Self {
            waiting,
            active,
            done,
            task,
        })
    }

    /// The share of busy connections seen waiting on a lock since the last call.
    fn take(&self) -> f64 {
        let waiting = self.waiting.swap(0, Ordering::Relaxed);
        let active = self.active.swap(0, Ordering::Relaxed);
        if active == 0 {
            0.0
        } else {
            waiting as f64 / active as f64
        }
    }

    async fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        if let Ok(Err(e)) = self.task.await {
            eprintln!("   the lock sampler failed: {e:#}");
        }
    }
}
