//! Connection hygiene: a connection that does not complete its handshake (TLS, then the HTTP/2
//! client preface and SETTINGS, or an HTTP/1.1 request's head) within `--handshake-timeout` is
//! closed, one beyond `--max-connections` is closed at once, and real clients are served
//! meanwhile. The metrics say how many closed, and why. [`lifecycle`]: how served connections are asked to go;
//! [`silent_sockets`]: thousands of sockets that never speak.

use std::sync::Arc;
use std::time::{Duration, Instant};

use telephony_admin::proto::{CreateAccountRequest, ListAccountsRequest};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::common::clients::Clients;
use crate::common::process::TestProcess;
use crate::common::{Backend, spawn_app_with};
use crate::metrics::{Sample, scrape};
use crate::transport::make_certificate;

mod lifecycle;
mod silent_sockets;

const CLOSED_TOTAL: &str = "telephony_admin_client_connections_closed_total";
const OPEN: &str = "telephony_admin_client_connections";

/// Handshake deadline of these servers; the closes are awaited with slack for a loaded machine.
const HANDSHAKE: &str = "500ms";
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

/// Waits until the peer closes `stream` (end of stream or an error, never data).
async fn closed_by_server(mut stream: impl AsyncReadExt + Unpin) {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(CLOSED_WITHIN, stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(_)) => panic!("the server sent data to a connection that never spoke"),
        Err(_) => panic!("the connection was still open after {CLOSED_WITHIN:?}"),
    }
}

fn sample(samples: &[Sample], name: &str, reason: Option<&str>) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name && reason.is_none_or(|r| s.labels.get("reason").is_some_and(|l| l == r))
        })
        .map_or(0.0, |s| s.value)
}

/// Clients with the server's admin key on a channel of their own: one connection, opened now.
async fn own_connection(server: &TestProcess) -> Clients {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.address))
        .unwrap()
        .connect()
        .await
        .expect("a new client connects");
    Clients {
        channel,
        key: server.admin_key.clone(),
    }
}

/// Connections closed for `reason` so far.
async fn closed_for(server: &TestProcess, reason: &str) -> f64 {
    sample(&scrape(server).await.1, CLOSED_TOTAL, Some(reason))
}

/// Waits (at most `CLOSED_WITHIN`) until `done` holds of the metrics; returns the last ones.
async fn metrics_until(server: &TestProcess, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + CLOSED_WITHIN;
    loop {
        let samples = scrape(server).await.1;
        if done(&samples) || Instant::now() >= deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn silent_and_excess_connections_are_closed_and_clients_still_served(backend: Backend) {
    let server = TestProcess::spawn(
        backend,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--handshake-timeout",
            HANDSHAKE,
            "--max-connections",
            "8",
        ],
        &[],
    )
    .await;
    // The test's own channel: one connection, served.
    server
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Before".into(),
        })
        .await
        .expect("served");

    // Ten that never speak: seven fill the cap, three are refused at once.
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(server.address).await.expect("connect"));
    }
    // A connection in use is served meanwhile.
    server
        .accounts()
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("served while silent connections are open");
    for stream in silent {
        closed_by_server(stream).await;
    }
    println!(
        "ten silent connections closed within {:?}",
        started.elapsed()
    );

    // A connection is counted out just after its socket closes: the counts settle at once.
    let counts = |samples: &[Sample]| {
        (
            sample(samples, CLOSED_TOTAL, Some("over_limit")),
            sample(samples, CLOSED_TOTAL, Some("handshake_timeout")),
            sample(samples, OPEN, None),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut settled = counts(&scrape(&server).await.1);
    while settled != (3.0, 7.0, 1.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        settled = counts(&scrape(&server).await.1);
    }
    assert_eq!(
        settled,
        (3.0, 7.0, 1.0),
        "(refused over the limit, closed on the handshake deadline, open)"
    );

    // The freed places serve new clients.
    let fresh = own_connection(&server).await.channel;
    let mut accounts =
        telephony_admin::proto::account_service_client::AccountServiceClient::new(fresh);
    let refused = accounts
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect_err("no key: refused, but by the service");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

/// A TLS client that trusts the test certificate and offers one protocol (ALPN).
fn tls_client(
    certificate: &crate::transport::TestCertificate,
    alpn: &[u8],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = certificate.cert_pem.as_bytes();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
        roots.add(cert.expect("the test certificate")).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// tonic's own TLS deadline ends with the TLS handshake: a client that completes it and then
/// says nothing must be closed too.
async fn a_tls_client_silent_after_its_handshake_is_closed(backend: Backend) {
    let certificate = make_certificate();
    let (cert, key) = (certificate.cert_path.clone(), certificate.key_path.clone());
    let app = spawn_app_with(backend, |s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
        s.handshake_timeout = humantime::parse_duration(HANDSHAKE).unwrap();
    })
    .await;

    let tcp = TcpStream::connect(app.address).await.unwrap();
    let tls = tls_client(&certificate, b"h2")
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the TLS handshake completes");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    closed_by_server(tls).await;
}

/// A browser's HTTP/1.1 request counts its head towards the handshake deadline: one that starts
/// a request line and then stalls is closed, as a silent socket is.
async fn a_stalled_http1_request_head_is_closed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.handshake_timeout = humantime::parse_duration(HANDSHAKE).unwrap();
    })
    .await;
    let mut tcp = TcpStream::connect(app.address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\nHost: stalled\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    closed_by_server(tcp).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed by the gate's deadline ({HANDSHAKE}), not a later one: {:?}",
        started.elapsed()
    );
}

/// Over TLS a browser may negotiate HTTP/1.1 (ALPN) and get the console's page.
async fn tls_offers_http1_to_browsers(backend: Backend) {
    let certificate = make_certificate();
    let (cert, key) = (certificate.cert_path.clone(), certificate.key_path.clone());
    let app = spawn_app_with(backend, |s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
    })
    .await;
    let tcp = TcpStream::connect(app.address).await.unwrap();
    let mut tls = tls_client(&certificate, b"http/1.1")
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("an HTTP/1.1-only client completes the handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tokio::io::AsyncWriteExt::write_all(
        &mut tls,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(CLOSED_WITHIN, tls.read_to_end(&mut answer))
        .await
        .expect("answered")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("content-security-policy"), "{answer}");
}

on_both_databases!(
    silent_and_excess_connections_are_closed_and_clients_still_served,
    a_tls_client_silent_after_its_handshake_is_closed,
    a_stalled_http1_request_head_is_closed,
    tls_offers_http1_to_browsers,
);
