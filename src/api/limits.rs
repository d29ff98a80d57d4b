//! Limits that tonic does not answer with the code clients expect: a deadline on every RPC's
//! response (DEADLINE_EXCEEDED), and oversized messages, which tonic reports as OUT_OF_RANGE
//! but gRPC specifies as RESOURCE_EXHAUSTED.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct LimitsLayer {
    pub request_timeout: Duration,
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limited {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limited<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, B, R> Service<http::Request<B>> for Limited<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let timeout = self.request_timeout;
        // A streaming RPC's response future completes when the stream opens, so this bounds
        // the unary work and a stream's set-up, not a stream's lifetime.
        let future = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, future).await {
                Ok(Ok(response)) => Ok(message_too_large_is_resource_exhausted(response)),
                Ok(Err(error)) => Err(error),
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the request did not complete within {} ms",
                    timeout.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

fn message_too_large_is_resource_exhausted<R>(
    mut response: http::Response<R>,
) -> http::Response<R> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v == (tonic::Code::OutOfRange as i32).to_string().as_str());
    let too_large = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            m.contains("message%20length%20too%20large") || m.contains("message length too large")
        });
    if out_of_range && too_large {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(tonic::Code::ResourceExhausted as i32),
        );
    }
    response
}
