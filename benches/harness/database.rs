//! The databases a run uses: a fresh SQLite file under the build's temporary directory (the
//! project's disk, not a RAM disk), or a fresh PostgreSQL database created from
//! `BENCH_DATABASE_URL` and dropped afterwards. Also plain SQL on them: the raw commit rate
//! anchor, fixture inserts and the server version.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use crate::load::{Budget, Measured, one_in_flight};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the run's databases live.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite,
    /// The administrative URL databases are created from.
    Postgres(String),
}

impl Target {
    pub fn from_env() -> Self {
        match std::env::var("BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self::Postgres(url),
            _ => Self::Sqlite,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// A new, empty database of this kind.
    pub async fn create(&self) -> anyhow::Result<BenchDatabase> {
        match self {
            Self::Sqlite => {
                let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                Ok(BenchDatabase {
                    url,
                    dir: Some(dir),
                    postgres: None,
                })
            }
            Self::Postgres(admin_url) => {
                let name = format!("telephony_bench_{}", uuid::Uuid::new_v4().simple());
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(admin_url)
                    .await?;
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok(BenchDatabase {
                    url: replace_database(admin_url, &name),
                    dir: None,
                    postgres: Some((admin_url.clone(), name)),
                })
            }
        }
    }

    /// "SQLite 3.x" or "PostgreSQL 15.x", as the server reports it.
    pub async fn describe(&self) -> anyhow::Result<String> {
        Ok(match self {
            Self::Sqlite => {
                let pool = SqlitePool::connect("sqlite::memory:").await?;
                let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                    .fetch_one(&pool)
                    .await?;
                format!("SQLite {version} (WAL, synchronous=FULL)")
            }
            Self::Postgres(url) => {
                let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
                let version: String = sqlx::query_scalar("SHOW server_version")
                    .fetch_one(&pool)
                    .await?;
                format!("PostgreSQL {version}")
            }
        })
    }
}

/// A database that lives for one section.
pub struct BenchDatabase {
    pub url: String,
    dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl BenchDatabase {
    pub fn backend(&self) -> Backend {
        if self.postgres.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// The directory of the SQLite file.
    pub fn dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().to_owned())
    }

    /// A plain connection pool on it, outside the service.
    pub async fn connect(&self) -> anyhow::Result<Sql> {
        Ok(match self.backend() {
            Backend::Sqlite => Sql::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(sqlite_options(&self.url.parse::<SqliteConnectOptions>()?))
                    .await?,
            ),
            Backend::Postgres => Sql::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    // No ping before each use: the anchor is the database's cost, not a driver's.
                    .test_before_acquire(false)
                    .connect(&self.url)
                    .await?,
            ),
        })
    }

    /// Single-row UPDATE transactions in a loop, one at a time, on a table of their own: on
    /// SQLite in a second file beside the service's (same disk, same pragmas), on PostgreSQL in
    /// this database on the same server. The figure writes are compared against.
    pub async fn raw_commits(&self, budget: Budget) -> anyhow::Result<Measured> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                let path = self
                    .dir()
                    .ok_or_else(|| anyhow::anyhow!("no directory"))?
                    .join("raw-commits.db");
                Sql::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(sqlite_options(&SqliteConnectOptions::new().filename(path)))
                        .await?,
                )
            }
            Backend::Postgres => self.connect().await?,
        };
        sql.execute("CREATE TABLE raw_commits (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
            .await?;
        sql.execute("INSERT INTO raw_commits (id, n) VALUES (1, 0)")
            .await?;
        let measured = one_in_flight(budget_for_commits(budget), 50, usize::MAX, |_| {
            sql.commit_one()
        })
        .await?;
        sql.close().await;
        Ok(measured)
    }
}

impl BenchDatabase {
    /// A pool of `connections` open connections to this database when it is PostgreSQL, for an
    /// anchor measured outside the service; `None` on SQLite.
    async fn postgres_pool(&self, connections: u32) -> anyhow::Result<Option<PgPool>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .min_connections(connections)
            .test_before_acquire(false)
            .connect(&self.url)
            .await?;
        Ok(Some(pool))
    }

    /// The stricter write anchor a PostgreSQL user compares with (what `pgbench -N` does):
    /// single-row UPDATE transactions from `connections` connections at once, each caller on a
    /// row of its own. `None` on SQLite, which has one writer.
    pub async fn parallel_commits(
        &self,
        connections: u32,
        callers: usize,
        budget: Budget,
    ) -> anyhow::Result<Option<f64>> {
        let Some(pool) = self.postgres_pool(connections).await? else {
            return Ok(None);
        };
        sqlx::raw_sql(
            "CREATE TABLE parallel_commits (id INTEGER PRIMARY KEY, n BIGINT NOT NULL); \
             INSERT INTO parallel_commits SELECT g, 0 FROM generate_series(0, 1023) AS g",
        )
        .execute(&pool)
        .await?;
        let commit = |pool: PgPool, row: i32| async move {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE parallel_commits SET n = n + 1 WHERE id = $1")
                .bind(row)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            anyhow::Ok(())
        };
        let committing = pool.clone();
        let rate = callers_rate(callers, budget, move |caller| {
            let row = i32::try_from(caller % 1024).unwrap_or(0);
            commit(committing.clone(), row)
        })
        .await?;
        pool.close().await;
        Ok(Some(rate))
    }

    /// The SQLite write anchor without a driver's worker thread: single-row UPDATE transactions
    /// in a loop through rusqlite, on the calling thread, in a file beside the service's (same
    /// disk, same pragmas), so that the anchor is the disk. `None` on PostgreSQL.
    pub fn disk_commits(&self, budget: Budget) -> anyhow::Result<Option<Measured>> {
        let Some(dir) = self.dir() else {
            return Ok(None);
        };
        let connection = rusqlite::Connection::open(dir.join("disk-commits.db"))?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             CREATE TABLE disk_commits (id INTEGER PRIMARY KEY, n BIGINT NOT NULL); \
             INSERT INTO disk_commits (id, n) VALUES (1, 0);",
        )?;
        let commit = || -> anyhow::Result<()> {
            connection
                .execute_batch("BEGIN; UPDATE disk_commits SET n = n + 1 WHERE id = 1; COMMIT;")?;
            Ok(())
        };
        let warm_until = Instant::now() + budget.warm_up;
        while Instant::now() < warm_until {
            commit()?;
        }
        let mut latencies = Vec::new();
        let started = Instant::now();
        let until = started + budget.load;
        while Instant::now() < until {
            let one = Instant::now();
            commit()?;
            latencies.push(one.elapsed());
        }
        Ok(Some(Measured::new(latencies, started.elapsed())))
    }

    /// PostgreSQL's own rate for the read GetUser makes: a prepared primary-key SELECT of a user
    /// row, from as many connections as the service's pool and as many callers as the gRPC load,
    /// outside the service (what `pgbench -S -M prepared` measures on its own table). `None` on
    /// SQLite, whose reads the echo anchors.
    pub async fn prepared_reads(
        &self,
        user_id: &str,
        connections: u32,
        callers: usize,
        budget: Budget,
    ) -> anyhow::Result<Option<f64>> {
        let Some(pool) = self.postgres_pool(connections).await? else {
            return Ok(None);
        };
        let read = |pool: PgPool, user_id: String| async move {
            sqlx::query("SELECT id, account_id, email, display_name FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(&pool)
                .await?;
            anyhow::Ok(())
        };
        let (reading, user_id) = (pool.clone(), user_id.to_owned());
        let rate = callers_rate(callers, budget, move |_| {
            read(reading.clone(), user_id.clone())
        })
        .await?;
        pool.close().await;
        Ok(Some(rate))
    }
}

/// Operations per second when `callers` tasks each run `operation` (given the caller's number)
/// back to back for the load window, after a warm-up by one caller.
async fn callers_rate<F, Fut>(callers: usize, budget: Budget, operation: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let warm_until = Instant::now() + budget.warm_up;
    while Instant::now() < warm_until {
        operation(0).await?;
    }
    let started = Instant::now();
    let until = started + budget.load;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    operation(caller).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// The raw commit loop runs as long as a load measurement: it is a rate.
fn budget_for_commits(budget: Budget) -> Budget {
    Budget {
        one_in_flight: budget.load,
        ..budget
    }
}

/// The service's SQLite settings: WAL, synchronous=FULL, foreign keys, a busy timeout.
fn sqlite_options(options: &SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .clone()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop may run inside the runtime: use a thread with a runtime of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let admin = PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&admin_url)
                        .await?;
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await?;
                    admin.close().await;
                    anyhow::Ok(())
                })
            })
            .join();
        }
    }
}

/// `postgres://user@host:port/db?x` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// A plain sqlx pool on either database.
pub enum Sql {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Sql {
    pub async fn execute(&self, sql: impl Into<String>) -> anyhow::Result<u64> {
        let sql = AssertSqlSafe(sql.into());
        Ok(match self {
            Self::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await?.rows_affected(),
            Self::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await?.rows_affected(),
        })
    }

    /// One text value from a one-row, one-column query.
    pub async fn text(&self, sql: impl Into<String>) -> anyhow::Result<String> {
        let sql = AssertSqlSafe(sql.into());
        Ok(match self {
            Self::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?,
            Self::Postgres(pool) => sqlx::query(sql).fetch_one(pool).await?.try_get(0)?,
        })
    }

    async fn commit_one(&self) -> anyhow::Result<()> {
        const UPDATE: &str = "UPDATE raw_commits SET n = n + 1 WHERE id = 1";
        match self {
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(UPDATE).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(UPDATE).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Seconds since `since`, for progress lines.
pub fn seconds(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
