//! Logging: a `tracing` subscriber (text or JSON, level from `RUST_LOG`), and a tower layer that
//! writes one line per RPC with its method, gRPC status and latency.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber, at `default_level` unless `RUST_LOG` says otherwise; a
/// second call (as in tests) is ignored.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Logs each RPC once its response headers are ready (for a stream: when it opens).
#[derive(Debug, Clone, Default)]
pub struct RpcLogLayer;

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcLog<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcLog<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &result {
                Ok(response) => {
                    // Errors travel as trailers-only responses: the status is in the headers.
                    // Otherwise the call succeeded (or, for a stream, opened).
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    let status = tonic::Code::from_i32(code);
                    if matches!(
                        status,
                        tonic::Code::Internal
                            | tonic::Code::Unknown
                            | tonic::Code::Unavailable
                            | tonic::Code::DataLoss
                    ) {
                        tracing::warn!(%method, status = ?status, latency_ms, "rpc");
                    } else {
                        tracing::info!(%method, status = ?status, latency_ms, "rpc");
                    }
                }
                Err(error) => tracing::warn!(%method, %error, latency_ms, "rpc failed"),
            }
            result
        })
    }
}
