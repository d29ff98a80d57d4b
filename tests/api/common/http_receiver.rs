//! A real webhook receiver: an HTTP/1.1 server (hyper) on a loopback port that verifies every
//! request's Standard Webhooks signature with the `standardwebhooks` reference library, answers
//! as its mode says (accept, fail every other request, or be down: the port closed), and records
//! what it accepted, in order.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 500 for every other request (the first fails).
    FailEveryOther,
}

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub sequence: u64,
    pub kind: String,
    pub body: serde_json::Value,
    pub at: Instant,
    pub at_system: std::time::SystemTime,
}

#[derive(Default)]
struct State {
    accepted: Vec<Received>,
    requests: usize,
    refused: usize,
    bad_signatures: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
    secrets: Vec<String>,
}

pub struct Receiver {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    /// How long each request is held before the answer (to make overlaps visible).
    hold: Duration,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Self {
        Self::start_holding(mode, Duration::ZERO).await
    }

    /// A receiver that holds every request for `hold` before answering.
    pub async fn start_holding(mode: Mode, hold: Duration) -> Self {
        let mut receiver = Self {
            address: "127.0.0.1:0".parse().unwrap(),
            state: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            hold,
            server: None,
        };
        receiver.up().await;
        receiver
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/telephony?source=test", self.address)
    }

    /// Verifies signatures with these secrets (any of them may match).
    pub fn trust(&self, secret: &str) {
        self.state.lock().unwrap().secrets.push(secret.to_owned());
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Closes the port: connections are refused until [`Receiver::up`].
    pub async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens (again) on the same port.
    pub async fn up(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.address).unwrap();
        let listener = socket.listen(128).unwrap();
        self.address = listener.local_addr().unwrap();
        let state = self.state.clone();
        let mode = self.mode.clone();
        let hold = self.hold;
        self.server = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let state = state.clone();
                let mode = mode.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        handle(request, state.clone(), mode.clone(), hold)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn sequences(&self) -> Vec<u64> {
        self.accepted().iter().map(|r| r.sequence).collect()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Requests whose signature did not verify (with why).
    pub fn bad_signatures(&self) -> Vec<String> {
        self.state.lock().unwrap().bad_signatures.clone()
    }

    /// Waits until `count` deliveries were accepted.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        self.wait_until(count, within, |accepted| accepted.len())
            .await
    }

    /// Waits until `count` different events were accepted (a repeated delivery counts once).
    pub async fn wait_for_distinct(&self, count: usize, within: Duration) -> Vec<Received> {
        self.wait_until(count, within, |accepted| {
            let mut ids: Vec<&str> = accepted.iter().map(|r| r.webhook_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
        .await
    }

    async fn wait_until(
        &self,
        count: usize,
        within: Duration,
        counted: impl Fn(&[Received]) -> usize,
    ) -> Vec<Received> {
        super::wait_for_count(count, within, || self.accepted(), counted, |got| {
            format!(
                "the receiver got {got} of {count} deliveries within {within:?} ({} requests, {} refused, bad signatures: {:?})",
                self.requests(),
                self.refused(),
                self.bad_signatures()
            )
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    hold: Duration,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let refuse = {
        let mut state = state.lock().unwrap();
        state.requests += 1;
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        *mode.lock().unwrap() == Mode::FailEveryOther && state.requests % 2 == 1
    };
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let answer = {
        let mut state = state.lock().unwrap();
        state.in_flight -= 1;
        if refuse {
            state.refused += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            match verify(&state.secrets, &parts, &body) {
                Ok(received) => {
                    state.accepted.push(received);
                    StatusCode::NO_CONTENT
                }
                Err(why) => {
                    state.bad_signatures.push(why);
                    StatusCode::UNAUTHORIZED
                }
            }
        }
    };
    Ok(Response::builder()
        .status(answer)
        .body(Full::new(Bytes::from_static(b"test receiver")))
        .unwrap())
}

fn verify(
    secrets: &[String],
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Received, String> {
    if parts.method != http::Method::POST || parts.uri.path() != "/hooks/telephony" {
        return Err(format!("unexpected {} {}", parts.method, parts.uri));
    }
    if parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return Err("content-type is not application/json".into());
    }
    let verified = secrets.iter().any(|secret| {
        standardwebhooks::Webhook::new(secret)
            .and_then(|w| w.verify(body, &parts.headers))
            .is_ok()
    });
    if !verified {
        return Err(format!(
            "no trusted secret verifies {:?}",
            parts.headers.get("webhook-signature")
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let webhook_id = parts.headers["webhook-id"].to_str().unwrap().to_owned();
    if json["data"]["event_id"] != webhook_id.as_str() {
        return Err("webhook-id is not the event id".into());
    }
    let sequence = json["data"]["sequence"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or("data.sequence is not a decimal string")?;
    Ok(Received {
        webhook_id,
        sequence,
        kind: json["type"].as_str().unwrap_or_default().to_owned(),
        body: json,
        at: Instant::now(),
        at_system: std::time::SystemTime::now(),
    })
}
