//! Fan-out of changes to 1,000 open WatchChanges streams: per-stream delivery latency (from just
//! before the changing RPC is sent to the event's receipt) and deliveries per second, on SQLite
//! and, when TEST_DATABASE_URL is set, PostgreSQL. Prints figures; judges nothing.
//!
//! Run with `cargo bench --bench watch_fanout`.

#[path = "../tests/api/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Backend, Bearer, TestApp, spawn_app};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, CreateAccountRequest, CreatePhoneNumberOrderRequest,
    CreateUserRequest, LicenseType, PhoneNumberProductType, TelephonySettings,
    UpdateTelephonySettingsRequest, WatchChangesRequest,
    change_service_client::ChangeServiceClient, watch_changes_response::Kind,
};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// A connection carries at most `max_concurrent_streams` (200) streams: spread them.
const CONNECTIONS: usize = 10;
const STREAMS_PER_CONNECTION: usize = 100;
const ROUNDS: usize = 50;

enum Report {
    /// The stream is caught up at this sequence.
    Ready(u64),
    Delivered(u64, Instant),
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run(Backend::Sqlite).await;
        if std::env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
            run(Backend::Postgres).await;
        } else {
            println!("\nPostgreSQL: skipped (set TEST_DATABASE_URL to include it)");
        }
    });
}

async fn run(backend: Backend) {
    let streams = CONNECTIONS * STREAMS_PER_CONNECTION;
    println!(
        "\n{backend:?}: {streams} watch streams over {CONNECTIONS} connections, {ROUNDS} changes"
    );
    let mut app = spawn_app(backend).await;
    let (account_id, user_id) = user_with_number(&app).await;

    let (reports, mut received) = mpsc::unbounded_channel();
    let mut watchers = Vec::with_capacity(streams);
    for _ in 0..CONNECTIONS {
        let channel = Channel::from_shared(format!("http://{}", app.address))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        for _ in 0..STREAMS_PER_CONNECTION {
            let client = ChangeServiceClient::with_interceptor(channel.clone(), bearer(&app));
            watchers.push(tokio::spawn(follow(client, reports.clone())));
        }
    }
    drop(reports);

    let opening = Instant::now();
    let mut base = None;
    for _ in 0..streams {
        match tokio::time::timeout(Duration::from_secs(120), received.recv()).await {
            Ok(Some(Report::Ready(sequence))) => {
                assert!(
                    base.is_none_or(|b| b == sequence),
                    "all streams start together"
                );
                base = Some(sequence);
            }
            Ok(Some(Report::Delivered(..))) => panic!("an event before any change"),
            Ok(None) | Err(_) => panic!("not every stream opened"),
        }
    }
    let base = base.expect("at least one stream");
    println!(
        "  {streams} streams open and caught up in {:.0} ms",
        opening.elapsed().as_secs_f64() * 1000.0
    );

    let mut telephony = app.telephony();
    let mut latencies = Vec::with_capacity(streams * ROUNDS);
    let mut rpc_latencies = Vec::with_capacity(ROUNDS);
    let started = Instant::now();
    for round in 0..ROUNDS {
        let expected = base + 1 + round as u64;
        let sent = Instant::now();
        telephony
            .update_telephony_settings(UpdateTelephonySettingsRequest {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                telephony_settings: Some(TelephonySettings {
                    inbound_calling: false,
                    outbound_calling: false,
                    sms: round % 2 == 0,
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["sms".into()],
                }),
                request_id: String::new(),
            })
            .await
            .expect("toggle sms");
        rpc_latencies.push(sent.elapsed());
        for _ in 0..streams {
            match tokio::time::timeout(Duration::from_secs(60), received.recv()).await {
                Ok(Some(Report::Delivered(sequence, at))) => {
                    assert_eq!(sequence, expected, "one change at a time, in order");
                    latencies.push(at - sent);
                }
                Ok(Some(Report::Ready(_))) => panic!("a stream was caught up twice"),
                Ok(None) | Err(_) => panic!("round {round}: not every stream got the event"),
            }
        }
    }
    let elapsed = started.elapsed();

    latencies.sort();
    rpc_latencies.sort();
    println!(
        "  delivery latency over {} deliveries: p50 {}  p99 {}  max {}",
        latencies.len(),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(*latencies.last().unwrap()),
    );
    println!(
        "  UpdateTelephonySettings latency: p50 {}  max {}",
        ms(percentile(&rpc_latencies, 50)),
        ms(*rpc_latencies.last().unwrap()),
    );
    println!(
        "  throughput: {:.0} deliveries/s ({:.1} changes/s fanned out to {streams} streams each)",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ROUNDS as f64 / elapsed.as_secs_f64(),
    );

    for watcher in watchers {
        watcher.abort();
    }
    app.stop().await;
}

/// Reads one stream until it ends, reporting when it is caught up and every event's arrival.
async fn follow(
    mut client: ChangeServiceClient<common::Authed>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let Ok(response) = client.watch_changes(WatchChangesRequest::default()).await else {
        return;
    };
    let mut stream = response.into_inner();
    let mut ready = false;
    while let Ok(Some(message)) = stream.message().await {
        let report = match message.kind {
            Some(Kind::Event(event)) => Report::Delivered(event.sequence, Instant::now()),
            Some(Kind::Checkpoint(checkpoint)) if !ready => {
                ready = true;
                Report::Ready(checkpoint.sequence)
            }
            _ => continue,
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}

async fn user_with_number(app: &TestApp) -> (String, String) {
    let account_id = app
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Bench".into(),
        })
        .await
        .expect("account")
        .into_inner()
        .account_id;
    let user_id = app
        .users()
        .create_user(CreateUserRequest {
            account_id: account_id.clone(),
            email: "bench@example.com".into(),
            display_name: "Bench".into(),
            license_type: LicenseType::Pro as i32,
        })
        .await
        .expect("user")
        .into_inner()
        .user_id;
    let number = "+12065550150".to_owned();
    app.numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: vec![number.clone()],
        })
        .await
        .expect("order");
    app.telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            e164_phone_number: number,
            request_id: String::new(),
        })
        .await
        .expect("assign");
    (account_id, user_id)
}

fn bearer(app: &TestApp) -> Bearer {
    Bearer(Some(
        format!("Bearer {}", app.admin_key)
            .parse()
            .expect("ASCII key"),
    ))
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
