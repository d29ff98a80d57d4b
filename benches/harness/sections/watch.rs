//! 10,000 WatchChanges streams on one server process (the release binary, so that its memory is
//! its own): how long one change takes to reach all of them, from just before the write is sent
//! to each stream's receipt, and the server's resident memory per idle watcher.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::Run;
use crate::api::{
    self, Authed, Bearer, ChangeServiceClient, Clients, TelephonySettings,
    UpdateTelephonySettingsRequest, WatchChangesRequest, WatchKind,
};
use crate::load::percentile;
use crate::report::{Figure, Row, Target};
use crate::server::Process;

const SECTION: &str = "watch";
const WATCHERS: usize = 10_000;
/// The server allows 200 streams per connection.
const STREAMS_PER_CONNECTION: usize = 160;

enum Report {
    /// The stream is open and caught up.
    Ready,
    Delivered(Instant),
}

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let rounds = if run.short { 2 } else { 5 };
    let database = run.target.create().await?;
    Process::migrate(&database).await?;
    let secret = telephony_admin::keys::generate_secret();
    let watchers = WATCHERS.to_string();
    let (server, _) = Process::serve(
        &database,
        &secret,
        &[("TELEPHONY_ADMIN_MAX_WATCHERS_PER_KEY", &watchers)],
    )
    .await?;
    let bearer = Bearer::new(&secret)?;
    let clients = Clients::new(
        api::connect(server.address, 1).await?.remove(0),
        bearer.clone(),
    );
    let (account_id, user_id) =
        api::user_with_number(&clients, "watched@example.com", "+12065550100", None).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;

    let connections = WATCHERS.div_ceil(STREAMS_PER_CONNECTION);
    let channels = api::connect(server.address, connections).await?;
    let (reports, mut received) = mpsc::unbounded_channel();
    let mut streams = Vec::with_capacity(WATCHERS);
    for i in 0..WATCHERS {
        let client = ChangeServiceClient::with_interceptor(
            channels[i / STREAMS_PER_CONNECTION].clone(),
            bearer.clone(),
        );
        streams.push(tokio::spawn(follow(client, reports.clone())));
    }
    drop(reports);
    let opening = Instant::now();
    for _ in 0..WATCHERS {
        match tokio::time::timeout(Duration::from_secs(60), received.recv()).await {
            Ok(Some(Report::Ready)) => {}
            Ok(Some(Report::Delivered(_))) => anyhow::bail!("an event before any change"),
            Ok(None) | Err(_) => anyhow::bail!("not every watch stream opened"),
        }
    }
    println!(
        "   {WATCHERS} streams over {connections} connections open in {:.1} s",
        opening.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib()?;
    let per_watcher = after.saturating_sub(before) as f64 / WATCHERS as f64;

    let mut latencies = Vec::with_capacity(WATCHERS * rounds);
    let mut telephony = clients.telephony();
    for round in 0..rounds {
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
            .await?;
        for _ in 0..WATCHERS {
            match tokio::time::timeout(Duration::from_secs(60), received.recv()).await {
                Ok(Some(Report::Delivered(at))) => latencies.push(at - sent),
                Ok(Some(Report::Ready)) => anyhow::bail!("a stream was caught up twice"),
                Ok(None) | Err(_) => {
                    anyhow::bail!("round {round}: not every stream got the change")
                }
            }
        }
    }
    latencies.sort_unstable();
    for stream in streams {
        stream.abort();
    }
    server.stop().await?;

    let delivery = |p: f64| {
        Row::new(
            SECTION,
            format!("one change to {WATCHERS} streams, p{p} delivery ({rounds} changes)"),
            Figure::Latency(percentile(&latencies, p)),
        )
    };
    Ok(vec![
        delivery(50.0),
        delivery(99.0).target(Target::AtMost(100.0)),
        Row::new(
            SECTION,
            format!(
                "server RSS per idle watcher ({:.0} MiB with {WATCHERS})",
                after as f64 / 1024.0
            ),
            Figure::KiB(per_watcher),
        )
        .target(Target::AtMost(16.0)),
    ])
}

/// Reads one stream until it ends: reports when it is caught up and each event's arrival.
async fn follow(mut client: ChangeServiceClient<Authed>, reports: mpsc::UnboundedSender<Report>) {
    let Ok(response) = client.watch_changes(WatchChangesRequest::default()).await else {
        return;
    };
    let mut stream = response.into_inner();
    let mut ready = false;
    while let Ok(Some(message)) = stream.message().await {
        let report = match message.kind {
            Some(WatchKind::Event(_)) => Report::Delivered(Instant::now()),
            Some(WatchKind::Checkpoint(_)) if !ready => {
                ready = true;
                Report::Ready
            }
            _ => continue,
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}
