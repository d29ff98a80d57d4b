//! Assembling the server: connect and migrate the store, make sure an API key exists, start the
//! change hub and the housekeeping, bind the listener, and serve every gRPC service with health
//! and reflection until shutdown.
//!
//! Health: every service, and the overall service `""`, is SERVING while the database answers a
//! periodic ping, and NOT_SERVING while it does not.
//!
//! Shutdown: SIGINT/SIGTERM (or [`Application::shutdown_token`]) asks to stop. Every service
//! turns NOT_SERVING at once, and the server keeps serving for the drain delay so that load
//! balancers stop sending requests. Then it stops accepting, open watch streams end with
//! UNAVAILABLE, in-flight requests finish (for at most the grace period; a watch stream whose
//! consumer does not read is not waited for), and the store is closed.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::rate_limit::{Rate, RateQuotas};
use crate::api::{ApiContext, Limits, in_flight::InFlight};
use crate::config::{ServeSettings, StorageSettings};
use crate::database_url::redact;
use crate::events::{ChangeHub, pg_listener};
use crate::keys::{self, Role, Scope};
use crate::store::{Store, StoreOptions, WriteStats};
use crate::tasks::BackgroundTasks;

mod coalesced_writes;
mod connection_lifecycle;
mod connections;
mod console;
pub mod database_lock;
mod health;
mod open_calls;
mod routes;
mod secrets_keys;
mod server;

pub use secrets_keys::{Rotation, rotate_secrets_key, secrets_keyring};

use connections::{Gate, guarded};
use database_lock::DatabaseLock;

use health::{health_service, set_health, watch_database};
use routes::{Routes, router};

/// Once no unary request is in flight, how long ended watch streams get to deliver their final
/// status before the remaining connections are closed.
const STREAM_END_ALLOWANCE: Duration = Duration::from_secs(1);

/// Connects to the configured database, creating the SQLite data directory if needed.
pub async fn connect_store(
    storage: &StorageSettings,
    options: StoreOptions,
) -> anyhow::Result<Store> {
    let (url, data_dir) = storage.resolve();
    if let Some(dir) = data_dir {
        create_dir(&dir)?;
    }
    let store = Store::connect(&url, options)
        .await
        .with_context(|| format!("cannot open the database ({})", redact(&url)))?;
    Ok(store)
}

fn create_dir(dir: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

pub struct Application {
    local_addr: SocketAddr,
    /// Cancelled to ask for a graceful stop (what SIGTERM does).
    stop: CancellationToken,
    metrics_addr: Option<SocketAddr>,
    write_stats: Arc<WriteStats>,
    tasks: BackgroundTasks,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    deliveries: crate::delivery::Deliveries,
}

impl Application {
    pub async fn build(storage: &StorageSettings, settings: ServeSettings) -> anyhow::Result<Self> {
        settings.validate().map_err(anyhow::Error::msg)?;
        let tls = tls_config(&settings)?;
        if settings.metrics_listen.is_some() {
            // Before anything records, so that the first housekeeping run is counted too.
            crate::metrics::enable();
        }
        // Off the path to SERVING: it is ~100 ms of CPU, and a request that needs the metadata
        // before it is loaded waits for it anyway.
        let warm_up = tokio::task::spawn_blocking(crate::domain::phone_number::warm_up);
        tokio::spawn(async move {
            if let Err(error) = warm_up.await {
                tracing::error!(%error, "phone number metadata failed to load");
            }
        });
        // Held until the server has closed the store: `restore` refuses to run under it.
        let database_lock = (storage.sqlite_path())
            .map(|database| DatabaseLock::serving(&database))
            .transpose()?;
        let store = connect_and_migrate(storage, &settings).await?;

        let stop = CancellationToken::new();
        // Cancelled after the drain delay: stop accepting, end streams and background tasks.
        let tasks = BackgroundTasks::new(CancellationToken::new());
        let (context, deliveries) = start_background_tasks(&store, &settings, &tasks).await?;

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let console = settings.browser.console.then(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{local_addr}/")
        });
        let metrics_addr = match settings.metrics_listen {
            Some(address) => {
                Some(crate::metrics_server::start(address, store.clone(), &tasks).await?)
            }
            None => None,
        };
        let write_stats = store.write_stats();
        let serving = serve(
            listener,
            settings,
            tls,
            context,
            store,
            stop.clone(),
            tasks.clone(),
        );
        let server = tokio::spawn(async move {
            let served = serving.await;
            drop(database_lock);
            served
        });
        match console {
            Some(url) => tracing::info!(address = %local_addr, console = %url, "listening"),
            None => tracing::info!(address = %local_addr, "listening"),
        }
        Ok(Self {
            local_addr,
            stop,
            metrics_addr,
            write_stats,
            tasks,
            server,
            deliveries,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The webhook and mail deliveries this replica runs (their lag).
    pub fn deliveries(&self) -> &crate::delivery::Deliveries {
        &self.deliveries
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The database writer's counters (batches committed, their sizes).
    pub fn write_stats(&self) -> Arc<WriteStats> {
        self.write_stats.clone()
    }

    /// The tracked background tasks: a task spawned here is asked to stop at shutdown (through
    /// [`BackgroundTasks::shutdown_token`]) and awaited before the store closes and
    /// [`Self::run_until_stopped`] returns.
    pub fn background_tasks(&self) -> BackgroundTasks {
        self.tasks.clone()
    }

    /// Cancelling it stops the server gracefully, as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown token. When it returns, every background task
    /// has ended and the store is closed.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut server = self.server;
        tokio::select! {
            finished = &mut server => return finished.context("server task failed")?,
            _ = wait_for_signal() => {
                tracing::info!("shutdown requested");
                self.stop.cancel();
            }
        }
        server.await.context("server task failed")?
    }
}

/// Each API key's rate limits, from the flags.
fn rate_quotas(settings: &ServeSettings) -> RateQuotas {
    let rate = |per_period, burst| Rate { per_period, burst };
    RateQuotas {
        admin: rate(
            settings.rate_limits.admin_per_second,
            settings.rate_limits.admin_burst,
        ),
        viewer: rate(
            settings.rate_limits.viewer_per_second,
            settings.rate_limits.viewer_burst,
        ),
        session_service: rate(
            settings.rate_limits.session_service_per_second,
            settings.rate_limits.session_service_burst,
        ),
        watch_opens: rate(
            settings.rate_limits.watch_opens_per_minute,
            settings.rate_limits.watch_opens_burst,
        ),
    }
}

/// The TLS configuration, when a certificate and key are given (HTTP/2, or HTTP/1.1 for
/// browsers, by ALPN); refuses plaintext on a non-loopback address unless explicitly allowed.
fn tls_config(
    settings: &ServeSettings,
) -> anyhow::Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
            };
            let (cert, key) = (read(cert)?, read(key)?);
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .context("invalid TLS certificate or key")?;
            let key =
                PrivateKeyDer::from_pem_slice(&key).context("invalid TLS certificate or key")?;
            let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
                tokio_rustls::rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("invalid TLS certificate or key")?;
            // HTTP/1.1 too: browsers' gRPC-Web and the console may come without HTTP/2.
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(config))
        }
        _ => None,
    };
    if tls.is_none()
        && !settings.listen.ip().is_loopback()
        && !settings.allow_plaintext_non_loopback
    {
        bail!(
            "refusing to serve plaintext on the non-loopback address {}: give --tls-cert and --tls-key, or --allow-plaintext-non-loopback if TLS is terminated in front of the service",
            settings.listen
        );
    }
    Ok(tls)
}

/// Opens the store, migrates it and makes sure an API key exists.
async fn connect_and_migrate(
    storage: &StorageSettings,
    settings: &ServeSettings,
) -> anyhow::Result<Store> {
    let keys = secrets_keyring(storage)?;
    let options = StoreOptions {
        secrets: keys.clone(),
        ..settings.store_options()
    };
    let store = connect_store(storage, options).await?;
    store.migrate().await.context("database migration failed")?;
    // A process of an earlier version killed between a commit and the numbering of its events
    // left them staged: they are numbered before this server answers anyone, not at the first
    // sweep.
    let numbered = store
        .changes()
        .number_leftovers()
        .await
        .context("numbering the change events a stopped process left staged")?;
    if numbered > 0 {
        tracing::info!(
            events = numbered,
            "numbered change events a stopped process left staged"
        );
    }
    // Replicas starting together must not each create a key, nor seal a secret twice.
    store
        .with_setup_lock(async {
            ensure_api_key(&store, settings.bootstrap_key.as_deref()).await?;
            secrets_keys::seal_stored_secrets(&store, keys).await
        })
        .await??;
    Ok(store)
}

/// Starts the change hub, the PostgreSQL listener, the deliveries, housekeeping and the key cache;
/// returns what the handlers share, and the deliveries.
async fn start_background_tasks(
    store: &Store,
    settings: &ServeSettings,
    tasks: &BackgroundTasks,
) -> anyhow::Result<(Arc<ApiContext>, crate::delivery::Deliveries)> {
    let hub = ChangeHub::start(
        store.clone(),
        settings.change_ring_capacity,
        settings.change_poll_interval,
        tasks,
    )
    .await
    .context("cannot read the change log")?;
    if store.connection().get_database_backend() == sea_orm::DbBackend::Postgres {
        pg_listener::spawn(store.clone(), tasks);
    }
    let deliveries = crate::delivery::spawn(store.clone(), &hub, settings.delivery(), tasks)
        .await
        .context("cannot start the webhook and mail deliveries")?;
    crate::maintenance::spawn(
        store.clone(),
        crate::maintenance::Retention {
            events: settings.event_retention,
            idempotency: settings.idempotency_window,
        },
        settings.maintenance_interval,
        tasks,
    );
    let context = ApiContext::new(
        store.clone(),
        hub,
        Limits {
            max_page_size: settings.max_page_size,
            max_watchers_per_key: settings.max_watchers_per_key,
            checkpoint_interval: settings.checkpoint_interval,
            max_order_numbers: 1000,
            max_batch_items: settings.max_batch_items,
            rate: rate_quotas(settings),
        },
        tasks.clone(),
    );
    Ok((context, deliveries))
}

async fn serve(
    listener: TcpListener,
    settings: ServeSettings,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    context: Arc<ApiContext>,
    store: Store,
    stop: CancellationToken,
    tasks: BackgroundTasks,
) -> anyhow::Result<()> {
    let (health, health_service) = health_service().await;
    let database_watch = watch_database(
        store.clone(),
        health.clone(),
        settings.database_check_interval,
        stop.clone(),
        &tasks,
    );
    let in_flight = InFlight::default();
    let routes = Routes {
        context,
        health_service,
        in_flight: in_flight.clone(),
    };
    let gate = Gate::new(
        settings.max_client_connections,
        settings.handshake_timeout,
        tls,
    );
    let serving = server::serve(
        guarded(server::incoming(listener), gate),
        router(&settings, routes)?,
        &settings,
        tasks.shutdown_token(),
    );
    let result = drain_then_stop(serving, &settings, &health, &stop, &tasks, &in_flight).await;

    stop.cancel();
    let _ = database_watch.await;
    // Nothing may touch the store once it is closed, and nothing may outlive the server.
    tasks.shut_down().await;
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the database failed");
    }
    tracing::info!("stopped");
    result
}

/// Serves until `stop`; then NOT_SERVING for the drain delay, then stops accepting and waits
/// for in-flight requests (at most the grace period).
async fn drain_then_stop<E: Into<anyhow::Error>>(
    serving: impl Future<Output = Result<(), E>>,
    settings: &ServeSettings,
    health: &HealthReporter,
    stop: &CancellationToken,
    tasks: &BackgroundTasks,
    in_flight: &InFlight,
) -> anyhow::Result<()> {
    let shutdown = tasks.shutdown_token();
    let draining = async {
        stop.cancelled().await;
        set_health(health, ServingStatus::NotServing).await;
        tracing::info!(delay = ?settings.shutdown_drain_delay, "draining: health is NOT_SERVING");
        tokio::time::sleep(settings.shutdown_drain_delay).await;
        shutdown.cancel();
    };
    tokio::pin!(serving);
    tokio::pin!(draining);
    let mut drained = false;
    loop {
        tokio::select! {
            result = &mut serving => break result.map_err(Into::into),
            _ = &mut draining, if !drained => drained = true,
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(settings.shutdown_grace).await;
            } => {
                tracing::warn!(grace = ?settings.shutdown_grace, "in-flight requests did not finish in time; stopping anyway");
                break Ok(());
            }
            _ = async {
                shutdown.cancelled().await;
                in_flight.idle().await;
                tokio::time::sleep(STREAM_END_ALLOWANCE).await;
            } => {
                tracing::info!("no request in flight; closing the connections of streams that are not read");
                break Ok(());
            }
        }
    }
}

/// On a database without keys, creates the first organisation admin key: from the configured
/// secret, or a new one printed once on standard output.
async fn ensure_api_key(store: &Store, bootstrap_secret: Option<&str>) -> anyhow::Result<()> {
    if store.keys().count().await? > 0 {
        return Ok(());
    }
    if bootstrap_secret.is_some_and(|secret| secret.len() < 32) {
        bail!("the bootstrap key must be at least 32 characters long");
    }
    let created = keys::create_key(
        store,
        "bootstrap",
        Role::Admin,
        &Scope::Organisation,
        bootstrap_secret.map(str::to_owned),
    )
    .await;
    match created {
        Ok((record, secret)) => {
            tracing::info!(key_id = %record.id, "bootstrap organisation admin key created");
            if bootstrap_secret.is_none() {
                println!(
                    "\nNo API key existed, so an organisation admin key was created (id {}).\nIts secret is shown only this once; keep it:\n\n    {secret}\n\nSend it as the metadata  authorization: Bearer {secret}\n",
                    record.id
                );
            }
            Ok(())
        }
        // Another replica bootstrapped the same key at the same moment.
        Err(crate::error::Error::Domain(crate::domain::DomainError::Aborted(_))) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
