//! Serving the gRPC service on the listener: each connection that passes the gate is served by
//! hyper over HTTP/2 (or HTTP/1.1, for browsers), in a task of its own, for the life [`super::connection_lifecycle`] gives
//! it. On shutdown the listener closes, every connection is asked to go, and serving ends when
//! the last has closed; dropping the serving future before then closes those still open.
//!
//! This replaces tonic's `Server`, whose connection ages do not send a GOAWAY; what it added to
//! each connection that we rely on is here: the HTTP/2 settings, and the peer's address in each
//! request (`tonic::Request::remote_addr`). The client's `grpc-timeout` is honoured by
//! [`crate::api::limits`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpIncoming};
use tower::{Service, ServiceExt};

use super::connection_lifecycle::{self, Lifetimes};
use super::connections::Connection;
use crate::config::ServeSettings;

/// Idle time before the kernel probes a connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// How often an HTTP/2 PING checks that a client is still there, and how long its answer may
/// take before the connection is closed.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections, with TCP_NODELAY (else any answer larger than a segment waits for the
/// client's delayed ACK, about 40 ms) and TCP keepalive (half-open peers are found and closed).
pub(super) fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

/// How connections are served: HTTP/2 with the settings tonic's server gave them, or HTTP/1.1
/// for browsers (the console and gRPC-Web), whose request heads must arrive within the
/// handshake timeout.
fn http(settings: &ServeSettings) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    // tonic also turned off hyper's cap on streams reset for errors (1,024 per connection); it
    // stays on here, as hyper advises (RUSTSEC-2024-0003).
    builder
}

/// Serves each connection of `connections` with `service` until `shutdown`, then waits for
/// them to close.
pub(super) async fn serve<S>(
    connections: impl Stream<Item = Connection>,
    service: S,
    settings: &ServeSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let http = Arc::new(http(settings));
    let lifetimes = Lifetimes {
        max_age: settings.max_connection_age,
        max_age_grace: settings.max_connection_age_grace,
        max_idle: settings.max_connection_idle,
    };
    // Owned here, so that dropping this future closes every connection.
    let mut open = JoinSet::new();
    {
        // Dropped as soon as shutdown starts: the listener closes, so clients connect elsewhere
        // instead of waiting on a backlog nobody accepts.
        let mut connections = std::pin::pin!(connections);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                connection = connections.next() => match connection {
                    Some(connection) => {
                        let service = with_peer_address(service.clone(), &connection);
                        open.spawn(connection_lifecycle::serve(
                            connection,
                            service,
                            http.clone(),
                            lifetimes,
                            shutdown.clone(),
                        ));
                    }
                    None => break,
                },
                Some(ended) = open.join_next(), if !open.is_empty() => log_panic(ended),
            }
        }
    }
    tracing::debug!(
        connections = open.len(),
        "stopped accepting; waiting for the connections to close"
    );
    while let Some(ended) = open.join_next().await {
        log_panic(ended);
    }
    Ok(())
}

fn log_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended {
        tracing::error!(%error, "serving a client connection panicked");
    }
}

/// `service` for the requests of `connection`: their bodies as tonic's, and the peer's address
/// in their extensions, where `tonic::Request::remote_addr` looks (as tonic's server put it).
fn with_peer_address<S>(
    service: S,
    connection: &Connection,
) -> impl Service<
    http::Request<Incoming>,
    Response = S::Response,
    Error = S::Error,
    Future: Send + Unpin + 'static,
> + Clone
+ Send
+ 'static
where
    S: Service<http::Request<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + Unpin + 'static,
{
    let peer = connection.connect_info();
    service.map_request(move |request: http::Request<Incoming>| {
        let mut request = request.map(tonic::body::Body::new);
        request.extensions_mut().insert(peer.clone());
        request
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;
    use tonic::transport::Endpoint;

    use super::super::connections::{Gate, guarded};
    use super::*;

    /// Answers with the peer's address as tonic's `Request::remote_addr` sees it.
    fn peer_of(
        request: http::Request<tonic::body::Body>,
    ) -> futures::future::Ready<Result<http::Response<tonic::body::Body>, Infallible>> {
        let peer = tonic::Request::from_http(request).remote_addr();
        let mut response = http::Response::new(tonic::body::Body::empty());
        let peer = peer.map_or_else(String::new, |peer| peer.to_string());
        response
            .headers_mut()
            .insert("peer", peer.parse().expect("an address"));
        futures::future::ready(Ok(response))
    }

    #[tokio::test]
    async fn each_request_carries_its_peers_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = guarded(
            incoming(listener),
            Gate::new(8, Duration::from_secs(5), None),
        );
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let settings = ServeSettings::defaults();
                serve(connections, tower::service_fn(peer_of), &settings, shutdown).await
            }
        });

        // The client's end of its one connection.
        let client_end = Arc::new(Mutex::new(None::<SocketAddr>));
        let connector = tower::service_fn({
            let client_end = client_end.clone();
            move |_| {
                let client_end = client_end.clone();
                async move {
                    let tcp = TcpStream::connect(address).await?;
                    *client_end.lock().unwrap() = Some(tcp.local_addr()?);
                    Ok::<_, std::io::Error>(TokioIo::new(tcp))
                }
            }
        });
        let mut channel = Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_with_connector(connector)
            .await
            .expect("connected");
        let request = http::Request::post(format!("http://{address}/any.Service/Method"))
            .body(tonic::body::Body::empty())
            .unwrap();
        let response = channel.ready().await.unwrap().call(request).await.unwrap();
        let client_end = client_end.lock().unwrap().expect("connected").to_string();
        assert_eq!(response.headers()["peer"], client_end.as_str());

        shutdown.cancel();
        drop(channel);
        serving
            .await
            .unwrap()
            .expect("serving ends once its connection has closed");
    }
}
