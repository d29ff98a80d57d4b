//! Health: every service, and the overall service `""`, is SERVING while the database answers a
//! periodic ping, and NOT_SERVING while it does not (or while the server drains).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::{
    accounts::AccountApi, changes::ChangeApi, phone_numbers::PhoneNumberApi,
    telephony::TelephonyApi, users::UserApi, webhooks::WebhookApi,
};
use crate::proto::{
    account_service_server::AccountServiceServer, change_service_server::ChangeServiceServer,
    phone_number_service_server::PhoneNumberServiceServer,
    telephony_service_server::TelephonyServiceServer, user_service_server::UserServiceServer,
    webhook_service_server::WebhookServiceServer,
};
use crate::store::Store;
use crate::tasks::BackgroundTasks;

/// The health service names: every gRPC service and the overall `""`.
fn health_names() -> [&'static str; 7] {
    [
        "",
        <AccountServiceServer<AccountApi> as NamedService>::NAME,
        <UserServiceServer<UserApi> as NamedService>::NAME,
        <PhoneNumberServiceServer<PhoneNumberApi> as NamedService>::NAME,
        <TelephonyServiceServer<TelephonyApi> as NamedService>::NAME,
        <ChangeServiceServer<ChangeApi> as NamedService>::NAME,
        <WebhookServiceServer<WebhookApi> as NamedService>::NAME,
    ]
}

pub(super) async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in health_names() {
        health.set_service_status(name, status).await;
    }
}

/// Pings the database every `interval`: health follows its answers until shutdown.
pub(super) fn watch_database(
    store: Store,
    health: HealthReporter,
    interval: Duration,
    stop: CancellationToken,
    tasks: &BackgroundTasks,
) -> tokio::task::JoinHandle<()> {
    tasks.spawn(async move {
        let mut reachable = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let answered = tokio::time::timeout(
                interval.max(Duration::from_secs(1)),
                store.connection().ping(),
            )
            .await
            .map_err(|_| "no answer in time".to_owned())
            .and_then(|pinged| pinged.map_err(|e| e.to_string()));
            // A stop requested meanwhile owns the health status.
            if stop.is_cancelled() {
                return;
            }
            match answered {
                Ok(()) if !reachable => {
                    tracing::info!("the database answers again; serving");
                    set_health(&health, ServingStatus::Serving).await;
                    reachable = true;
                }
                Err(error) if reachable => {
                    tracing::error!(%error, "the database does not answer; health is NOT_SERVING");
                    set_health(&health, ServingStatus::NotServing).await;
                    reachable = false;
                }
                _ => {}
            }
        }
    })
}

/// The health service, every name SERVING.
pub(super) async fn health_service() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (health, service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    (health, service)
}
