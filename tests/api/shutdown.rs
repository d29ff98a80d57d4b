//! Shutdown leaves nothing behind: once `run_until_stopped` returns, every background task (the
//! change hub, housekeeping, the key cache, the database pinger, the metrics listener and its
//! connections, the watch streams' tasks, and on PostgreSQL the listener) has ended.

use std::time::Duration;

use telephony_admin::proto::{WatchChangesRequest, change_service_client::ChangeServiceClient};
use telephony_admin::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::common::{Backend, TestDatabase, storage_for, test_settings};

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

on_both_databases!(no_task_outlives_run_until_stopped);
