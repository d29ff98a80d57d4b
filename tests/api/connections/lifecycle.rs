//! How served connections are asked to go (an HTTP/2 GOAWAY): at `--max-connection-age`, with
//! `--max-connection-age-grace` for the calls still open, and after `--max-connection-idle`
//! without an open call. A client that is asked to go sends its next calls on a new connection:
//! none fails.

use std::time::{Duration, Instant};

use telephony_admin::proto::{ListAccountsRequest, WatchChangesRequest, watch_changes_response};
use tokio::time::timeout;

use super::{CLOSED_TOTAL, CLOSED_WITHIN, OPEN, closed_for, metrics_until, own_connection, sample};
use crate::common::Backend;
use crate::common::clients::Clients;
use crate::common::process::TestProcess;
use crate::metrics::{Sample, scrape};

async fn spawn(backend: Backend, flags: &[&str]) -> TestProcess {
    let mut args = vec!["--metrics-listen", "127.0.0.1:0"];
    args.extend_from_slice(flags);
    TestProcess::spawn(backend, &args, &[]).await
}

/// Every connection the server has accepted: those closed after they were counted in, and
/// those open.
fn accepted(samples: &[Sample]) -> f64 {
    let closed: f64 = samples
        .iter()
        .filter(|s| {
            s.name == CLOSED_TOTAL && s.labels.get("reason").is_some_and(|r| r != "over_limit")
        })
        .map(|s| s.value)
        .sum();
    closed + sample(samples, OPEN, None)
}

/// A call the server never received: the client's transport canceled it before sending (it
/// was handed to the old connection in the instant the GOAWAY arrived, and hyper drops the
/// calls it had not sent yet when that connection closes), or it opened a stream the GOAWAY
/// had already refused (h2 reports the server's graceful GOAWAY, NO_ERROR, on it). gRPC
/// clients send such a call again by themselves ("transparent retry"); tonic's channel does
/// not, so the test does, for these alone.
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(error) = error.downcast_ref::<hyper::Error>() {
            // hyper does not expose h2's error kind; its Debug form names it.
            let refused = format!("{error:?}");
            let refused_by_goaway = refused.contains("GoAway")
                && refused.contains("NO_ERROR")
                && refused.contains("Remote");
            return (status.code() == tonic::Code::Cancelled && error.is_canceled())
                || refused_by_goaway;
        }
        source = error.source();
    }
    false
}

/// ListAccounts calls the server answered OK.
fn answered(samples: &[Sample]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            let label = |name: &str| s.labels.get(name).map(String::as_str);
            s.name == "rpc_server_duration_seconds_count"
                && label("rpc_method") == Some("ListAccounts")
                && label("rpc_grpc_status_code") == Some("0")
        })
        .map(|s| s.value)
        .sum()
}

/// A connection past `--max-connection-age` is asked to go: its client opens another and no
/// call fails, so long-lived clients spread over replicas as they come and go. (Before, the
/// connection was dropped at age + grace, failing the calls on it.)
async fn old_connections_are_asked_to_go_and_no_call_fails(backend: Backend) {
    let server = spawn(
        backend,
        &[
            "--max-connection-age",
            "400ms",
            "--max-connection-age-grace",
            "300ms",
        ],
    )
    .await;
    let mut accounts = server.accounts();
    let started = Instant::now();
    let (mut calls, mut sent_again) = (0, 0);
    while started.elapsed() < Duration::from_secs(3) {
        let mut answer = accounts.list_accounts(ListAccountsRequest::default()).await;
        // The channel may hand the call to the closing connection more than once before it
        // sees the GOAWAY.
        for _ in 0..3 {
            if !answer.as_ref().is_err_and(never_sent) {
                break;
            }
            sent_again += 1;
            answer = accounts.list_accounts(ListAccountsRequest::default()).await;
        }
        if let Err(status) = answer {
            panic!(
                "call {calls} failed {:?} after the start while connections were rotated: {status:?}",
                started.elapsed()
            );
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = metrics_until(&server, |s| sample(s, CLOSED_TOTAL, Some("max_age")) >= 2.0).await;
    let (aged, cut) = (
        sample(&samples, CLOSED_TOTAL, Some("max_age")),
        sample(&samples, CLOSED_TOTAL, Some("max_age_grace")),
    );
    println!(
        "{calls} calls in 3 s ({sent_again} canceled by the client before it sent them, sent \
         again); {aged} connections closed at their age, {cut} cut"
    );
    assert!(
        aged >= 2.0,
        "connections older than 400 ms closed after their GOAWAY: {aged} in {calls} calls"
    );
    assert_eq!(cut, 0.0, "no unary call outlived a 300 ms grace");
    assert_eq!(
        answered(&samples),
        f64::from(calls),
        "the server answered each call once: those sent again had never reached it"
    );
    assert!(
        sent_again < aged as u32,
        "at most the odd call meets a GOAWAY on its way out: {sent_again} in {calls}"
    );
}

/// A watch stream open when its connection reaches its age keeps going for the grace, and only
/// then ends (UNAVAILABLE or a plain end: either way its consumer resumes elsewhere).
async fn a_watch_stream_open_at_the_age_ends_after_the_grace(backend: Backend) {
    let server = spawn(
        backend,
        &[
            "--max-connection-age",
            "300ms",
            "--max-connection-age-grace",
            "700ms",
        ],
    )
    .await;
    let connected = Instant::now();
    let clients = own_connection(&server).await;
    let mut watch = clients
        .changes()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("a watch opens")
        .into_inner();
    let ended = timeout(CLOSED_WITHIN, async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends once the grace is over");
    let lived = connected.elapsed();
    println!("the watch stream ended after {lived:?}: {ended:?}");
    // The age less its jitter (at least 270 ms), then the grace (700 ms).
    assert!(
        lived >= Duration::from_millis(900),
        "the stream ended at the age, not after the grace: {lived:?}"
    );
    assert!(lived < Duration::from_secs(3), "{lived:?}");
    if let Some(status) = ended {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    let samples = metrics_until(&server, |s| {
        sample(s, CLOSED_TOTAL, Some("max_age_grace")) >= 1.0
    })
    .await;
    assert_eq!(
        sample(&samples, CLOSED_TOTAL, Some("max_age_grace")),
        1.0,
        "the watch's connection, cut at the end of its grace"
    );
}

/// Waits until the harness's own connection has closed as idle, and returns the metrics then:
/// what follows is the test's alone.
async fn quiet(server: &TestProcess) -> Vec<Sample> {
    // A call, so that the connection is surely counted in (the client's connect can return
    // before the server has accepted).
    server
        .accounts()
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("served");
    let samples = metrics_until(server, |s| sample(s, OPEN, None) == 0.0).await;
    assert_eq!(
        sample(&samples, OPEN, None),
        0.0,
        "the harness's connection closed as idle"
    );
    samples
}

/// A connection with no open call for `--max-connection-idle` is asked to go; its client is
/// served again on a new one.
async fn an_idle_connection_is_asked_to_go_and_its_client_served_again(backend: Backend) {
    let server = spawn(backend, &["--max-connection-idle", "300ms"]).await;
    let idle_before = sample(&quiet(&server).await, CLOSED_TOTAL, Some("idle"));
    let mut accounts = own_connection(&server).await.accounts();
    accounts
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("the first call");
    tokio::time::sleep(Duration::from_secs(1)).await;
    accounts
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("a call after the connection was closed as idle");
    assert_eq!(
        closed_for(&server, "idle").await - idle_before,
        1.0,
        "the first connection closed as idle"
    );
}

/// A connection holding a watch stream is not idle, however long the stream is quiet: a change
/// made after three idle timeouts still arrives, and a call made then shares its connection.
async fn a_connection_holding_a_watch_stream_is_not_idle(backend: Backend) {
    let server = spawn(backend, &["--max-connection-idle", "300ms"]).await;
    let (account, users, _) = Clients::of(&server).set_up(1, 0).await;
    let before = quiet(&server).await;

    let clients = own_connection(&server).await;
    let opened = Instant::now();
    let mut watch = clients
        .changes()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("a watch opens")
        .into_inner();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sequence = clients
        .logout(&account, &users[0])
        .await
        .expect("a change after 1 s");
    let delivered = timeout(CLOSED_WITHIN, async {
        loop {
            let message = watch.message().await.expect("the stream is open");
            let message = message.expect("the stream has not ended");
            if let Some(watch_changes_response::Kind::Event(event)) = message.kind {
                return event.sequence;
            }
        }
    })
    .await
    .expect("the change arrives");
    assert_eq!(delivered, sequence);
    tokio::time::sleep_until((opened + Duration::from_millis(1500)).into()).await;

    let after = scrape(&server).await.1;
    assert_eq!(
        (
            accepted(&after) - accepted(&before),
            sample(&after, OPEN, None),
            sample(&after, CLOSED_TOTAL, Some("idle"))
                - sample(&before, CLOSED_TOTAL, Some("idle")),
        ),
        (1.0, 1.0, 0.0),
        "(connections accepted, open, closed as idle) since the watch opened: the change was \
         asked for on the watch's connection, never asked to go"
    );
    drop(watch);
}

on_both_databases!(
    old_connections_are_asked_to_go_and_no_call_fails,
    a_watch_stream_open_at_the_age_ends_after_the_grace,
    an_idle_connection_is_asked_to_go_and_its_client_served_again,
    a_connection_holding_a_watch_stream_is_not_idle,
);
