//! The `/metrics` listener: a plain HTTP/1.1 server, separate from the gRPC port, that answers
//! `GET /metrics` with the Prometheus (OpenMetrics) text of [`crate::metrics`] and nothing else:
//! 404 for any other path, 405 for any other method. It exposes counts only, never ids, keys or
//! the database URL.

use std::{convert::Infallible, net::SocketAddr};

use anyhow::Context;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics, PoolState};
use crate::store::Store;
use crate::tasks::BackgroundTasks;

/// Enables metrics, binds `address` and serves until `shutdown`; returns the bound address.
pub async fn start(
    address: SocketAddr,
    store: Store,
    tasks: &BackgroundTasks,
) -> anyhow::Result<SocketAddr> {
    let metrics = metrics::enable();
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for metrics on {address}"))?;
    let local_addr = listener.local_addr()?;
    tasks.spawn(accept_loop(listener, metrics, store, tasks.clone()));
    tracing::info!(address = %local_addr, "serving metrics at /metrics");
    Ok(local_addr)
}

async fn accept_loop(
    listener: TcpListener,
    metrics: &'static Metrics,
    store: Store,
    tasks: BackgroundTasks,
) {
    let shutdown = tasks.shutdown_token();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(%error, "metrics listener could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let store = store.clone();
        let service = hyper::service::service_fn(move |request| {
            let response = respond(&request, metrics, &store);
            async move { Ok::<_, Infallible>(response) }
        });
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A scraper that hangs up early is not worth a log line; one that keeps its
            // connection open must not hold up shutdown.
            tokio::select! {
                _ = connection => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

fn respond(request: &Request<Incoming>, metrics: &Metrics, store: &Store) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return response;
    }
    let text = metrics.encode(Some(PoolState::of(store.connection())));
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
