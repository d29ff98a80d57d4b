//! Assembling the server: connect and migrate the store, make sure an API key exists, start the
//! change hub and the housekeeping, bind the listener, and serve every gRPC service with health
//! and reflection until shutdown.
//!
//! Shutdown: SIGINT/SIGTERM (or [`Application::shutdown_token`]) cancels one token. Health turns
//! NOT_SERVING, open watch streams end at once, the server stops accepting and drains in-flight
//! requests for at most the configured grace period, then the store is closed.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig, server::TcpIncoming};

use crate::api::{
    ApiContext, Limits, accounts::AccountApi, changes::ChangeApi, limits::LimitsLayer,
    phone_numbers::PhoneNumberApi, telephony::TelephonyApi, users::UserApi, webhooks::WebhookApi,
};
use crate::config::{ServeSettings, StorageSettings};
use crate::database_url::redact;
use crate::events::{ChangeHub, pg_listener};
use crate::keys::{self, Role, Scope};
use crate::proto::{
    self, account_service_server::AccountServiceServer, change_service_server::ChangeServiceServer,
    phone_number_service_server::PhoneNumberServiceServer,
    telephony_service_server::TelephonyServiceServer, user_service_server::UserServiceServer,
    webhook_service_server::WebhookServiceServer,
};
use crate::store::{Store, StoreOptions};
use crate::telemetry::RpcLogLayer;

/// Idle time before the kernel probes a connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Events the hub keeps in memory for live watchers.
const HUB_CAPACITY: usize = 8192;

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
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    deliveries: crate::delivery::Deliveries,
}

impl Application {
    pub async fn build(storage: &StorageSettings, settings: ServeSettings) -> anyhow::Result<Self> {
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem(
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?,
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?,
            )),
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

        let warm_up = tokio::task::spawn_blocking(crate::domain::phone_number::warm_up);
        let store = connect_store(
            storage,
            StoreOptions {
                deletion_queue_period: settings.deletion_queue_period,
                max_connections: settings.db_pool_size,
            },
        )
        .await?;
        store.migrate().await.context("database migration failed")?;
        ensure_api_key(&store, settings.bootstrap_key.as_deref()).await?;

        let shutdown = CancellationToken::new();
        let hub = ChangeHub::start(
            store.clone(),
            HUB_CAPACITY,
            settings.change_poll_interval,
            shutdown.clone(),
        )
        .await
        .context("cannot read the change log")?;
        if store.is_postgres() {
            pg_listener::spawn(store.clone(), shutdown.clone());
        }
        let deliveries =
            crate::delivery::spawn(store.clone(), &hub, settings.delivery(), shutdown.clone())
                .await
                .context("cannot start the webhook and mail deliveries")?;
        crate::maintenance::spawn(
            store.clone(),
            crate::maintenance::Retention {
                events: settings.event_retention,
                idempotency: settings.idempotency_window,
            },
            settings.maintenance_interval,
            shutdown.clone(),
        );

        let context = ApiContext::new(
            store.clone(),
            hub,
            Limits {
                max_page_size: settings.max_page_size,
                max_watchers_per_key: settings.max_watchers_per_key,
                checkpoint_interval: settings.checkpoint_interval,
                max_order_numbers: 1000,
            },
            shutdown.clone(),
        );

        warm_up
            .await
            .context("phone number metadata failed to load")?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let server = tokio::spawn(serve(
            listener,
            settings,
            tls,
            context,
            store,
            shutdown.clone(),
        ));
        tracing::info!(address = %local_addr, "listening");
        Ok(Self {
            local_addr,
            shutdown,
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

    /// Cancelling it stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown token.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            shutdown.cancel();
        });
        self.server.await.context("server task failed")?
    }
}

async fn serve(
    listener: TcpListener,
    settings: ServeSettings,
    tls: Option<Identity>,
    context: Arc<ApiContext>,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let max_message = settings.max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AccountServiceServer<AccountApi>>()
        .await;
    health.set_serving::<UserServiceServer<UserApi>>().await;
    health
        .set_serving::<PhoneNumberServiceServer<PhoneNumberApi>>()
        .await;
    health
        .set_serving::<TelephonyServiceServer<TelephonyApi>>()
        .await;
    health.set_serving::<ChangeServiceServer<ChangeApi>>().await;
    health
        .set_serving::<WebhookServiceServer<WebhookApi>>()
        .await;

    // The google.rpc types too, so that grpcurl can show error details.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl before 1.8.8 speaks only v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut builder = Server::builder()
        .max_concurrent_streams(settings.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(identity) = tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .context("invalid TLS certificate or key")?;
    }
    let router = builder
        .layer(RpcLogLayer)
        .layer(LimitsLayer {
            request_timeout: settings.request_timeout,
        })
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AccountServiceServer::new(AccountApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            UserServiceServer::new(UserApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            PhoneNumberServiceServer::new(PhoneNumberApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            TelephonyServiceServer::new(TelephonyApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            WebhookServiceServer::new(WebhookApi {
                context: context.clone(),
                policy: crate::domain::webhook::TargetPolicy {
                    allow_insecure: settings.webhook_allow_insecure,
                },
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            ChangeServiceServer::new(ChangeApi { context }).max_decoding_message_size(max_message),
        );

    let stopping = shutdown.clone();
    let health_on_stop = health.clone();
    let serving = router.serve_with_incoming_shutdown(incoming(listener), async move {
        stopping.cancelled().await;
        health_on_stop
            .set_not_serving::<AccountServiceServer<AccountApi>>()
            .await;
    });
    tokio::pin!(serving);
    let result = tokio::select! {
        result = &mut serving => result.map_err(anyhow::Error::from),
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(settings.shutdown_grace).await;
        } => {
            tracing::warn!(grace = ?settings.shutdown_grace, "in-flight requests did not finish in time; stopping anyway");
            Ok(())
        }
    };
    shutdown.cancel();
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the database failed");
    }
    tracing::info!("stopped");
    result
}

/// Accepted connections, with TCP_NODELAY (else any answer larger than a segment waits for the
/// client's delayed ACK, about 40 ms) and TCP keepalive (half-open peers are found and closed).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

/// On a database without keys, creates the first organisation admin key: from the configured
/// secret, or a new one printed once on standard output.
async fn ensure_api_key(store: &Store, bootstrap_secret: Option<&str>) -> anyhow::Result<()> {
    if store.count_api_keys().await? > 0 {
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
