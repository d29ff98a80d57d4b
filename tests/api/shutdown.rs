//! Shutdown leaves nothing behind: once `run_until_stopped` returns, every background task (the
//! change hub, housekeeping, the key cache, the database pinger, the metrics listener and its
//! connections, the watch streams' tasks, the delivery supervisor and its webhook and mail
//! workers, and on PostgreSQL the listener) has ended.

use std::time::Duration;

use telephony_admin::proto::{
    CreateAccountRequest, CreateWebhookRequest, LogoutUserRequest, WatchChangesRequest,
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    user_service_client::UserServiceClient, webhook_service_client::WebhookServiceClient,
};
use telephony_admin::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::common::fixtures::new_user;
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::smtp_sink::SmtpSink;
use crate::common::{Backend, TestDatabase, storage_for, test_settings};
use crate::webhooks::fast_delivery;

const WAIT: Duration = Duration::from_secs(30);

async fn no_task_outlives_run_until_stopped(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let mut settings = test_settings();
    settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let admin_key = settings.bootstrap_key.clone().expect("bootstrap key");
    let app = Application::build(&storage_for(&database.url), settings)
        .await
        .expect("the application starts");
    let tasks = app.background_tasks();
    let stop = app.shutdown_token();
    let address = app.local_addr();
    let metrics_address = app.metrics_addr().expect("metrics are served");
    let server = tokio::spawn(app.run_until_stopped());

    // A watch stream that is never read, and a metrics connection kept open.
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let bearer: MetadataValue<_> = format!("Bearer {admin_key}").parse().unwrap();
    let mut changes =
        ChangeServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        });
    let _unread = changes
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("watch");
    let mut scraper = tokio::net::TcpStream::connect(metrics_address)
        .await
        .expect("connect to /metrics");
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 16];
    timeout(WAIT, scraper.read_exact(&mut first))
        .await
        .expect("metrics answer in time")
        .expect("metrics answer");
    assert!(
        tasks.running() >= 6,
        "hub, housekeeping, key cache, database pinger, metrics listener and its connection, watch: {} running",
        tasks.running()
    );

    stop.cancel();
    timeout(WAIT, server)
        .await
        .expect("the server stops in time")
        .expect("the server task")
        .expect("the server stops cleanly");
    assert_eq!(
        tasks.running(),
        0,
        "every background task ended before run_until_stopped returned"
    );
    drop(scraper);
}

/// With a webhook and mail configured, the delivery supervisor and both workers are tracked
/// tasks too: counted while they run, ended (their leases handed back) when the server returns.
async fn no_delivery_outlives_run_until_stopped(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let sink = SmtpSink::start().await;
    let mut settings = test_settings();
    fast_delivery(&mut settings);
    settings.smtp_url = Some(sink.url());
    settings.mail_from = Some("telephony@example.com".into());
    settings.smtp_plaintext_loopback = true;
    let admin_key = settings.bootstrap_key.clone().expect("bootstrap key");
    let storage = storage_for(&database.url);
    let app = Application::build(&storage, settings)
        .await
        .expect("the application starts");
    let tasks = app.background_tasks();
    let stop = app.shutdown_token();
    let address = app.local_addr();
    let server = tokio::spawn(app.run_until_stopped());
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let bearer: MetadataValue<_> = format!("Bearer {admin_key}").parse().unwrap();
    let authed = move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        Ok(request)
    };
    let receiver = Receiver::start(Mode::Accept).await;
    let created = WebhookServiceClient::with_interceptor(channel.clone(), authed.clone())
        .create_webhook(CreateWebhookRequest {
            url: receiver.url(),
            description: "shutdown".into(),
            filter: None,
        })
        .await
        .expect("create webhook")
        .into_inner();
    receiver.trust(&created.secret);
    let account = AccountServiceClient::with_interceptor(channel.clone(), authed.clone())
        .create_account(CreateAccountRequest {
            name: "Acme".into(),
        })
        .await
        .expect("create account")
        .into_inner()
        .account_id;
    let mut users = UserServiceClient::with_interceptor(channel, authed);
    let user = users
        .create_user(new_user(&account, "ann@example.com"))
        .await
        .expect("create user")
        .into_inner()
        .user_id;
    users
        .logout_user(LogoutUserRequest {
            account_id: account.clone(),
            user_id: user,
        })
        .await
        .expect("logout");
    // Both workers are running once both peers have the event.
    receiver.wait_for(1, WAIT).await;
    sink.wait_for(1, WAIT).await;
    // On PostgreSQL the change listener is one more.
    let expected = 7 + usize::from(backend == Backend::Postgres);
    assert!(
        tasks.running() >= expected,
        "hub, housekeeping, key cache, database pinger, delivery supervisor, webhook and mail workers: {} running, expected {expected}",
        tasks.running()
    );

    stop.cancel();
    timeout(WAIT, server)
        .await
        .expect("the server stops in time")
        .expect("the server task")
        .expect("the server stops cleanly");
    assert_eq!(
        tasks.running(),
        0,
        "every delivery task ended before run_until_stopped returned"
    );
    // The leases were handed back: a second server takes both deliveries over at once.
    let store = telephony_admin::startup::connect_store(&storage, Default::default())
        .await
        .expect("store");
    for sink in [
        telephony_admin::store::MAIL_SINK.to_owned(),
        telephony_admin::store::webhook_sink(&created.webhook.expect("webhook").webhook_id),
    ] {
        let state = store
            .deliveries()
            .state(&sink)
            .await
            .expect("read delivery")
            .expect("the delivery exists");
        assert_eq!(state.lease_owner, None, "{sink} was released");
    }
}

on_both_databases!(
    no_task_outlives_run_until_stopped,
    no_delivery_outlives_run_until_stopped,
);
