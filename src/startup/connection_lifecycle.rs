//! The life of one served connection, and why it ends.
//!
//! tonic 0.14 cannot do this for us: with a grace set, its `max_connection_age` never sends a
//! GOAWAY (it sleeps for age + grace, then drops the connection, failing whatever was open on
//! it), and it has no idle timeout. So each connection is served by hyper here and asked to go
//! (`graceful_shutdown`: a GOAWAY, after which the client opens a new connection for new calls,
//! and this one closes when its open calls end) when
//! - it reaches `--max-connection-age`, less up to a tenth so that clients that connected
//!   together do not all reconnect together; calls still open `--max-connection-age-grace`
//!   later end with UNAVAILABLE, and the connection is closed when they have (at most
//!   [`CUT_ALLOWANCE`] later);
//! - it has had no open call for `--max-connection-idle` (see [`super::open_calls`]);
//! - the server shuts down: the drain (`drain_then_stop`) bounds how long its calls may take.
//!
//! Why it closed is counted in `telephony_admin_client_connections_closed_total{reason}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::coalesced_writes::CoalescedWrites;
use super::connections::Connection;
use super::open_calls::OpenCalls;
use crate::metrics::ConnectionClosed;

/// How long calls ended at the end of the grace get to send their status before the
/// connection is closed under them (a client that does not read holds it up).
const CUT_ALLOWANCE: Duration = Duration::from_secs(1);

/// When a connection is asked to go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetimes {
    pub(super) max_age: Duration,
    pub(super) max_age_grace: Duration,
    pub(super) max_idle: Duration,
}

/// Serves `connection` with `service` until it closes, asking it to go when `lifetimes` or
/// `shutdown` say so.
pub(super) async fn serve<S>(
    connection: Connection,
    service: S,
    http: Arc<Builder<TokioExecutor>>,
    lifetimes: Lifetimes,
    shutdown: CancellationToken,
) where
    S: Service<
            http::Request<Incoming>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let started = Instant::now();
    let closed = connection.close_reason();
    let calls = OpenCalls::new();
    let served = http.serve_connection(
        TokioIo::new(CoalescedWrites::new(connection)),
        TowerToHyperService::new(calls.count(service)),
    );
    tokio::pin!(served);
    let age = tokio::time::sleep(jittered(lifetimes.max_age));
    tokio::pin!(age);
    // The end of the grace, then of the allowance after it.
    let deadline = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(deadline);
    // Why it was asked to go; whether its grace after its age has started, and is over.
    let (mut going, mut aged, mut cut) = (None, false, false);
    loop {
        let ask_to_go = tokio::select! {
            result = &mut served => {
                if let Err(error) = result {
                    tracing::debug!(%error, "a client connection ended with an error");
                }
                break;
            }
            () = &mut age, if !aged => {
                aged = true;
                deadline.as_mut().reset(Instant::now() + lifetimes.max_age_grace);
                if going.is_some() {
                    // Already asked to go (a call came as it went idle): the grace bounds it.
                    continue;
                }
                ConnectionClosed::MaxAge
            }
            () = shutdown.cancelled(), if going.is_none() => ConnectionClosed::Shutdown,
            () = idle(&calls, lifetimes.max_idle), if going.is_none() => ConnectionClosed::Idle,
            () = &mut deadline, if aged => {
                if cut {
                    // Dropping the connection closes the socket under the calls.
                    break;
                }
                tracing::debug!("the grace is over: the calls still open end with UNAVAILABLE");
                calls.cut();
                cut = true;
                going = Some(ConnectionClosed::MaxAgeGrace);
                closed.set(ConnectionClosed::MaxAgeGrace);
                deadline.as_mut().reset(Instant::now() + CUT_ALLOWANCE);
                continue;
            }
        };
        tracing::debug!(
            reason = ask_to_go.label(),
            "a client connection is asked to go (GOAWAY)"
        );
        served.as_mut().graceful_shutdown();
        going = Some(ask_to_go);
        closed.set(ask_to_go);
    }
    let reason = going.unwrap_or(ConnectionClosed::Served);
    tracing::debug!(
        reason = reason.label(),
        lived = ?started.elapsed(),
        "a client connection closed"
    );
}

/// `max_age` less a random part of up to a tenth of it.
fn jittered(max_age: Duration) -> Duration {
    max_age.mul_f64(rand::random_range(0.9..=1.0))
}

/// Returns once the connection has had no open call for `max_idle`.
async fn idle(calls: &OpenCalls, max_idle: Duration) {
    loop {
        let now = Instant::now();
        match calls.idle_since() {
            Some(since) if since + max_idle <= now => return,
            Some(since) => tokio::time::sleep_until(since + max_idle).await,
            // It cannot be idle for long enough before then.
            None => tokio::time::sleep_until(now + max_idle).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[test]
    fn the_age_is_at_most_the_maximum_and_at_least_nine_tenths_of_it() {
        let max = Duration::from_secs(1800);
        for _ in 0..1000 {
            let age = jittered(max);
            assert!(age <= max && age >= max.mul_f64(0.9), "{age:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_the_last_call_to_close() {
        let max_idle = Duration::from_secs(10);
        let calls = OpenCalls::new();
        let mut counted = calls.count(tower::service_fn(|_: ()| {
            futures::future::ready(Ok::<_, Infallible>(http::Response::new(String::new())))
        }));
        let started = Instant::now();
        tokio::time::advance(Duration::from_secs(4)).await;
        let response = counted.ready().await.unwrap().call(()).await.unwrap();
        let closing = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(response);
        };
        let ((), ()) = tokio::join!(idle(&calls, max_idle), closing);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(44),
            "idle 10 s after the call closed, 34 s after the start"
        );
    }
}
