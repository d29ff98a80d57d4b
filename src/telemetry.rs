//! Logs and traces: the `tracing` subscriber (text or JSON, level from `RUST_LOG`) writing to
//! standard output through a non-blocking writer, optional OpenTelemetry export over OTLP/gRPC,
//! and the per-RPC layers the server wraps every call in:
//!
//! - tower-http's gRPC trace layer, with one span per RPC (`rpc.service`, `rpc.method`,
//!   `rpc.grpc.status_code`, `account_id` where the request names one, and `trace_id` when
//!   traces are exported) whose parent is the caller's W3C `traceparent`, and one log line per
//!   RPC with its status and latency;
//! - the RPC metrics layer, feeding [`crate::metrics`].

use std::{
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::future::BoxFuture;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tower::{Layer, Service};
use tower_http::classify::{GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::{Span, field::Empty};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::metrics;

/// The service name traces are exported under.
const SERVICE_NAME: &str = "telephony-admin";

/// Log lines waiting for the writer thread at most: several seconds of RPCs at full speed.
const LOG_LINES_QUEUED: usize = 16_384;

/// Whether spans are exported (and so worth parenting and tagging with their trace id).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// How log lines are written: for a person, or one JSON object per line for a collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the log writer and the trace exporter alive; dropping it flushes both.
pub struct TelemetryGuard {
    _log_writer: Option<WorkerGuard>,
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            // Sends the spans still buffered; failures have been logged by the exporter.
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber, at `default_level` unless `RUST_LOG` says otherwise, and with
/// `otlp_endpoint`, exports spans there. A second call (as in tests) changes nothing. Must run
/// inside the Tokio runtime (the OTLP exporter is a tonic client).
pub fn init(
    format: LogFormat,
    default_level: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<TelemetryGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Writing to stdout from the request path would make every RPC wait for the terminal or
    // the log collector; a background thread writes instead. When it falls LOG_LINES_QUEUED
    // lines behind, lines are dropped rather than requests stalled. (The queue's slots are
    // allocated and written at start: tracing-appender's default of 128k lines took 4 MiB of
    // an idle server's memory.)
    let (writer, log_writer) = NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_LINES_QUEUED)
        .finish(std::io::stdout());
    let text = (format == LogFormat::Text)
        .then(|| fmt::layer().with_target(false).with_writer(writer.clone()));
    let json = (format == LogFormat::Json).then(|| {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_writer(writer)
    });
    let tracer_provider = otlp_endpoint.map(tracer_provider).transpose()?;
    let otel = tracer_provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME)));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otel)
        .try_init()
        .is_ok();
    if installed && tracer_provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(TelemetryGuard {
        _log_writer: installed.then_some(log_writer),
        tracer_provider,
    })
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("cannot set up OTLP export to {endpoint}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build())
}

/// Names the account the current RPC acts on, in its span.
pub fn record_account_id(account_id: &str) {
    Span::current().record("account_id", account_id);
}

/// tower-http's gRPC trace layer, configured as [`RpcSpan`] and [`RpcLogLine`].
pub type RpcTraceLayer =
    TraceLayer<SharedClassifier<GrpcErrorsAsFailures>, RpcSpan, (), RpcLogLine, (), (), ()>;

/// The trace layer: one span and one log line per RPC.
pub fn rpc_trace_layer() -> RpcTraceLayer {
    TraceLayer::new_for_grpc()
        .make_span_with(RpcSpan)
        .on_request(())
        .on_response(RpcLogLine)
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// Makes the RPC's span, as a child of the caller's `traceparent` when spans are exported.
#[derive(Debug, Clone, Copy)]
pub struct RpcSpan;

impl<B> MakeSpan<B> for RpcSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        let method = metrics::rpc_method(request.uri().path());
        let span = tracing::info_span!(
            "rpc",
            otel.name = method.full_name,
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = method.service,
            rpc.method = method.method,
            rpc.grpc.status_code = Empty,
            account_id = Empty,
            trace_id = Empty,
        );
        if EXPORTING.load(Ordering::Relaxed) && !span.is_disabled() {
            let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
            let _ = span.set_parent(parent);
            let trace_id = span.context().span().span_context().trace_id();
            span.record("trace_id", tracing::field::display(trace_id));
        }
        span
    }
}

/// Reads W3C trace context from the request's HTTP/2 headers (gRPC metadata).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Writes the RPC's one log line once its response headers are ready (for a stream: when it
/// opens), and records its status in the span.
#[derive(Debug, Clone, Copy)]
pub struct RpcLogLine;

impl<B> OnResponse<B> for RpcLogLine {
    fn on_response(self, response: &http::Response<B>, latency: Duration, span: &Span) {
        let code = grpc_status_code(response.headers());
        span.record("rpc.grpc.status_code", code);
        let status = tonic::Code::from_i32(code);
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if is_server_error(status) {
            span.record("otel.status_code", "ERROR");
            tracing::warn!(grpc.status = ?status, latency_ms, "rpc");
        } else {
            tracing::info!(grpc.status = ?status, latency_ms, "rpc");
        }
    }
}

/// The statuses the OpenTelemetry conventions count as server errors.
fn is_server_error(status: tonic::Code) -> bool {
    matches!(
        status,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

/// Errors travel as trailers-only responses, with the status in the headers; otherwise the call
/// succeeded (or, for a stream, opened).
fn grpc_status_code(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

/// Records every RPC in `rpc_server_duration_seconds`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = metrics::rpc_method(request.uri().path());
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(response) => grpc_status_code(response.headers()),
                Err(_) => tonic::Code::Unknown as i32,
            };
            metrics::record_rpc(method, code, started.elapsed());
            result
        })
    }
}
