//! Thousands of sockets that connect and never speak: the server closes every one at its
//! handshake deadline, serves a real client throughout, and does not keep their memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use telephony_admin::proto::{GetPhoneNumberRequest, ListAccountsRequest};
use tokio::net::TcpStream;

use super::{CLOSED_TOTAL, HANDSHAKE, OPEN, closed_by_server, metrics_until, sample};
use crate::common::Backend;
use crate::common::process::TestProcess;
use crate::metrics::scrape;

/// Silent sockets open at once (the server's default `--max-connections` is 4,096; the
/// machine's descriptor limit 20,000, both ends of each socket counting here).
const SILENT: usize = 3000;
/// Rounds of them: see the memory bound below.
const ROUNDS: usize = 5;
/// Connections being opened at once. The kernel completes a connection before the server
/// accepts it, so this does not bound the listener's backlog: when the server falls behind
/// (a debug build on a busy machine), a connection the full backlog drops is made by the
/// kernel's retry a second later, and fewer are open at once.
const CONNECTING_AT_ONCE: usize = 64;
/// How much larger the server's resident memory may be after every round than before the
/// first.
///
/// Each silent connection costs the server about 2 KiB while it is open (a task, its socket's
/// registration, the handshake's buffer): about 6.5 MiB for a round of 3,000, as the peak of
/// a round shows. The allocator keeps that memory for the next round rather than giving it
/// back, so after the rounds the server is larger by about one round's worth, ~7 MiB, if every
/// connection is freed. Were none freed, the five rounds would hold 15,000 of them, ~33 MiB:
/// above this bound, which leaves room for the noise of a debug build serving the client.
const MARGIN_KIB: u64 = 20 * 1024;

/// The server's resident memory (`VmRSS`), in KiB.
fn rss_kib(server: &TestProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("the server's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Opens `SILENT` sockets that never speak, and waits until the server has closed them all.
/// Returns the server's memory while they were open and how many it had open then.
async fn round(server: &TestProcess, round: usize) -> (u64, f64) {
    let started = Instant::now();
    let silent: Vec<TcpStream> = futures::stream::iter(0..SILENT)
        .map(|_| TcpStream::connect(server.address))
        .buffer_unordered(CONNECTING_AT_ONCE)
        .map(|connected| connected.expect("connect"))
        .collect()
        .await;
    let connected_in = started.elapsed();
    let peak = rss_kib(server);
    let open_at_peak = sample(&scrape(server).await.1, OPEN, None);
    // Each must be closed by the server within `CLOSED_WITHIN`.
    futures::future::join_all(silent.into_iter().map(closed_by_server)).await;
    println!(
        "round {round}: {SILENT} connected in {connected_in:?}, {open_at_peak} open at once; \
         all closed by the server {:?} after the first connected",
        started.elapsed()
    );
    // A connection is counted out just after its socket closes: the counts settle at once.
    let closed = (round * SILENT) as f64;
    let samples = metrics_until(server, |s| {
        sample(s, CLOSED_TOTAL, Some("handshake_timeout")) == closed && sample(s, OPEN, None) == 1.0
    })
    .await;
    assert_eq!(
        (
            sample(&samples, CLOSED_TOTAL, Some("handshake_timeout")),
            sample(&samples, OPEN, None)
        ),
        (closed, 1.0),
        "(closed at the handshake deadline, open: the client's)"
    );
    (peak, open_at_peak)
}

async fn thousands_of_silent_sockets_are_closed_and_their_memory_not_kept(backend: Backend) {
    let server = TestProcess::spawn(
        backend,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--handshake-timeout",
            HANDSHAKE,
        ],
        &[],
    )
    .await;
    // The phone number metadata loads after start: loaded before the first figure.
    let _ = server
        .numbers()
        .get_phone_number(GetPhoneNumberRequest {
            phone_number_id: "+12065550100".into(),
        })
        .await;
    // A real client calls throughout; every call must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let caller = tokio::spawn({
        let (mut accounts, stop) = (server.accounts(), stop.clone());
        async move {
            let mut calls = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Err(status) = accounts.list_accounts(ListAccountsRequest::default()).await {
                    panic!("call {calls} failed while silent sockets were open: {status:?}");
                }
                calls += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            calls
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(&server);

    let mut peak = (0, 0.0);
    for number in 1..=ROUNDS {
        // The peak: the round with the most open at once (the memory never goes down).
        let (memory, open) = round(&server, number).await;
        if open > peak.1 || (open == peak.1 && memory > peak.0) {
            peak = (memory, open);
        }
    }
    let after = rss_kib(&server);
    stop.store(true, Ordering::Relaxed);
    let calls = caller.await.expect("the client's calls");
    println!(
        "server RSS: {before} KiB before, {} KiB at the peak ({} open), {after} KiB after \
         {ROUNDS} rounds; {calls} client calls served meanwhile",
        peak.0, peak.1
    );
    assert!(calls > 0, "the client was served");
    assert!(
        after <= before + MARGIN_KIB,
        "the server kept the memory of closed connections: {before} KiB before, {after} KiB \
         after {} of them",
        ROUNDS * SILENT
    );
}

on_both_databases!(thousands_of_silent_sockets_are_closed_and_their_memory_not_kept,);
