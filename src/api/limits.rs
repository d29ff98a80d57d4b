//! Limits that tonic does not answer with the code clients expect: a deadline on every RPC's
//! response (DEADLINE_EXCEEDED), and oversized messages, which tonic reports as OUT_OF_RANGE
//! but gRPC specifies as RESOURCE_EXHAUSTED.
//!
//! The deadline is `--request-timeout`, or the client's own (its `grpc-timeout` header) when that
//! is sooner: tonic's server honoured the header, and we serve connections without it.
//!
//! tonic marks an oversized message only by its text: its decoder returns a plain
//! `Status::out_of_range("Error, decoded message length too large: …")`, with no source or
//! detail to match instead. The match is kept, and tested against the tonic in Cargo.lock (here
//! through tonic's own decoder, and end to end in the `transport` tests), so that an upgrade
//! that rewords it fails a test instead of silently changing the code clients see.

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
        let timeout = client_timeout(request.headers()).map_or(self.request_timeout, |client| {
            client.min(self.request_timeout)
        });
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

/// The client's deadline: its `grpc-timeout` header, when it is one. The gRPC spec (PROTOCOL-HTTP2)
/// makes it at most 8 digits and a unit: H, M, S for hours, minutes and seconds, m, u, n for
/// milli-, micro- and nanoseconds. A malformed one is ignored, as tonic did.
fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // At most 99,999,999: no product below overflows.
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// What tonic's decoder says of a message above `max_decoding_message_size`, as it appears in
/// the percent-encoded `grpc-message` header and unencoded.
const TONIC_TOO_LARGE: [&str; 2] = ["message%20length%20too%20large", "message length too large"];

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
        .is_some_and(|m| TONIC_TOO_LARGE.iter().any(|text| m.contains(text)));
    if out_of_range && too_large {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(tonic::Code::ResourceExhausted as i32),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    /// A unary gRPC request whose one frame announces `length` bytes (and carries them).
    fn health_check_of(length: u8) -> http::Request<String> {
        let mut frame = String::from("\0\0\0\0");
        frame.push(char::from(length));
        frame.push_str(&"x".repeat(usize::from(length)));
        http::Request::post("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(frame)
            .expect("a request")
    }

    fn grpc_status<R>(response: &http::Response<R>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn tonics_own_oversized_message_error_becomes_resource_exhausted() {
        let (_, health) = tonic_health::server::health_reporter();
        let mut limited = LimitsLayer {
            request_timeout: TIMEOUT,
        }
        .layer(health.max_decoding_message_size(16));

        let response = limited
            .call(health_check_of(100))
            .await
            .expect("a response");

        assert_eq!(
            grpc_status(&response),
            Some("8"),
            "RESOURCE_EXHAUSTED; tonic said {:?}",
            response.headers().get("grpc-message")
        );
    }

    fn timeout_of(header: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", header.parse().unwrap());
        client_timeout(&headers)
    }

    #[test]
    fn the_clients_grpc_timeout_is_read_as_the_spec_writes_it() {
        let secs = Duration::from_secs;
        assert_eq!(timeout_of("2H"), Some(secs(7200)));
        assert_eq!(timeout_of("3M"), Some(secs(180)));
        assert_eq!(timeout_of("45S"), Some(secs(45)));
        assert_eq!(timeout_of("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout_of("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout_of("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(timeout_of("0m"), Some(Duration::ZERO));
        assert_eq!(timeout_of("99999999H"), Some(secs(99_999_999 * 3600)));
        assert_eq!(client_timeout(&http::HeaderMap::new()), None, "no header");
        for malformed in [
            "",
            "S",
            "m",
            "123456789S",
            "10",
            "10s",
            "10ms",
            "+5S",
            "-5S",
            " 5S",
            "5 S",
            "1.5S",
            "5SS",
        ] {
            assert_eq!(timeout_of(malformed), None, "{malformed:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sooner_of_the_clients_deadline_and_ours_applies() {
        let never = |_: http::Request<String>| {
            std::future::pending::<Result<http::Response<String>, std::convert::Infallible>>()
        };
        let mut limited = LimitsLayer {
            request_timeout: Duration::from_secs(5),
        }
        .layer(tower::service_fn(never));
        for (header, waited) in [(Some("200m"), 200), (Some("1M"), 5000), (None, 5000)] {
            let mut request = health_check_of(1);
            if let Some(header) = header {
                request
                    .headers_mut()
                    .insert("grpc-timeout", header.parse().unwrap());
            }
            let started = tokio::time::Instant::now();
            let response = limited.call(request).await.expect("a response");
            assert_eq!(grpc_status(&response), Some("4"), "DEADLINE_EXCEEDED");
            assert_eq!(
                started.elapsed(),
                Duration::from_millis(waited),
                "{header:?}"
            );
        }
    }

    #[tokio::test]
    async fn other_out_of_range_errors_keep_their_code() {
        let answer = |_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(
                tonic::Status::out_of_range("page_size must be at most 1000").into_http::<String>(),
            )
        };
        let mut limited = LimitsLayer {
            request_timeout: TIMEOUT,
        }
        .layer(tower::service_fn(answer));

        let response = limited.call(health_check_of(1)).await.expect("a response");

        assert_eq!(grpc_status(&response), Some("11"), "OUT_OF_RANGE stays");
    }
}
