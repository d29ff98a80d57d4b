//! The calls open on one connection: counted for its idle timeout, and ended with UNAVAILABLE
//! when its grace after `--max-connection-age` is over.
//!
//! A call is open from its request until its response body ends, so a watch stream is open for
//! its whole life; a call whose response is dropped (the client reset it, the connection
//! closed) is closed then. Counting costs two atomic operations a call and wakes nothing: the
//! connection's lifecycle reads the count only when its idle timer fires.
//!
//! Ending the open calls with a status, rather than only dropping the connection under them,
//! tells their clients what happened: they see UNAVAILABLE, and retry or resume elsewhere,
//! instead of an unknown transport error.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::Service;

/// The count of one connection's open calls, and since when it has had none.
#[derive(Clone)]
pub(super) struct OpenCalls(Arc<Count>);

struct Count {
    open: AtomicUsize,
    /// When the last call closed, in nanoseconds after `since`.
    last_closed: AtomicU64,
    since: Instant,
    /// Cancelled to end the open calls.
    cut: CancellationToken,
}

impl OpenCalls {
    pub(super) fn new() -> Self {
        Self(Arc::new(Count {
            open: AtomicUsize::new(0),
            last_closed: AtomicU64::new(0),
            since: Instant::now(),
            cut: CancellationToken::new(),
        }))
    }

    /// Ends every open response body with UNAVAILABLE when it next waits for a message: what is
    /// ready is sent first, so that an answer already computed is not lost.
    pub(super) fn cut(&self) {
        self.0.cut.cancel();
    }

    /// Since when no call has been open (the connection's start if none ever was), or `None`
    /// while one is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        // The time is stored before the count goes down (see `CallGuard::drop`), so a count of
        // 0 read here comes with the time of the last close, or a later one.
        if self.0.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let nanos = self.0.last_closed.load(Ordering::SeqCst);
        Some(self.0.since + Duration::from_nanos(nanos))
    }

    fn enter(&self) -> CallGuard {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        CallGuard(self.clone())
    }

    /// `service`, counting its calls here.
    pub(super) fn count<S>(&self, service: S) -> CountCalls<S> {
        CountCalls {
            inner: service,
            calls: self.clone(),
        }
    }
}

/// One open call; dropping it closes the call.
struct CallGuard(OpenCalls);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let count = &self.0.0;
        let nanos = u64::try_from(count.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        count.last_closed.fetch_max(nanos, Ordering::SeqCst);
        count.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's service, counting its open calls.
#[derive(Clone)]
pub(super) struct CountCalls<S> {
    inner: S,
    calls: OpenCalls,
}

impl<S, Req, B> Service<Req> for CountCalls<S>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Future: Unpin,
{
    type Response = http::Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = CountedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        CountedResponse {
            guard: Some(self.calls.enter()),
            inner: self.inner.call(request),
        }
    }
}

/// The response of a counted call: the call stays open in its body.
pub(super) struct CountedResponse<F> {
    inner: F,
    guard: Option<CallGuard>,
}

impl<F, B, E> Future for CountedResponse<F>
where
    F: Future<Output = Result<http::Response<B>, E>> + Unpin,
{
    type Output = Result<http::Response<CountedBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(Pin::new(&mut self.inner).poll(cx))?;
        let guard = self.guard.take();
        Poll::Ready(Ok(response.map(|inner| CountedBody {
            inner: Some(inner),
            guard,
            cut: None,
        })))
    }
}

/// A response body that closes its call when it ends or is dropped, and ends with UNAVAILABLE
/// when the connection's calls are cut.
pub(super) struct CountedBody<B> {
    /// `None` once it has ended.
    inner: Option<B>,
    guard: Option<CallGuard>,
    /// Made only when the body first waits: most bodies (unary answers) never do.
    cut: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl<B> CountedBody<B> {
    /// What a body cut short sends last: UNAVAILABLE, in the trailers.
    fn cut_short(&mut self) -> Frame<B::Data>
    where
        B: Body,
    {
        self.inner = None;
        self.guard = None;
        let mut trailers = http::HeaderMap::new();
        // A status of a fixed code and message always makes valid headers.
        let _ = tonic::Status::unavailable(
            "the connection reached its maximum age: call again, on a new connection",
        )
        .add_header(&mut trailers);
        Frame::trailers(trailers)
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let (Some(inner), Some(guard)) = (this.inner.as_mut(), this.guard.as_ref()) else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.inner = None;
                this.guard = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame)),
            // Between two messages: where a stream can end cleanly.
            Poll::Pending => {
                let token = &guard.0.0.cut;
                let cut = this
                    .cut
                    .get_or_insert_with(|| Box::pin(token.clone().cancelled_owned()));
                ready!(cut.as_mut().poll(cx));
                Poll::Ready(Some(Ok(this.cut_short())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |inner| inner.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn answer(
        _: http::Request<()>,
    ) -> futures::future::Ready<Result<http::Response<String>, std::convert::Infallible>> {
        futures::future::ready(Ok(http::Response::new("a message".to_owned())))
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_is_open_until_its_response_body_ends() {
        let calls = OpenCalls::new();
        let started = Instant::now();
        assert_eq!(calls.idle_since(), Some(started), "idle since its start");

        let service = calls.count(tower::service_fn(answer));
        let response = service.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(calls.idle_since(), None, "open while its body is");

        tokio::time::advance(Duration::from_secs(3)).await;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"a message");
        assert_eq!(calls.idle_since(), Some(started + Duration::from_secs(3)));
    }

    #[tokio::test]
    async fn cut_calls_end_with_unavailable_and_close() {
        let calls = OpenCalls::new();
        let streaming = |_: http::Request<()>| {
            let body = http_body_util::StreamBody::new(futures::stream::pending::<
                Result<Frame<hyper::body::Bytes>, std::convert::Infallible>,
            >());
            futures::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(body)))
        };
        let service = calls.count(tower::service_fn(streaming));
        let mut body = service
            .oneshot(http::Request::new(()))
            .await
            .unwrap()
            .into_body();
        let waiting = tokio::time::timeout(Duration::from_millis(20), body.frame()).await;
        assert!(waiting.is_err(), "a quiet stream waits");
        assert_eq!(calls.idle_since(), None);

        calls.cut();
        let last = body.frame().await.expect("a last frame").unwrap();
        let trailers = last.into_trailers().expect("trailers");
        assert_eq!(trailers["grpc-status"], "14", "UNAVAILABLE: {trailers:?}");
        assert!(body.frame().await.is_none(), "then the end");
        assert!(calls.idle_since().is_some(), "the call is closed");
    }

    #[tokio::test]
    async fn an_answer_ready_when_calls_are_cut_is_still_sent() {
        let calls = OpenCalls::new();
        let service = calls.count(tower::service_fn(answer));
        let response = service.oneshot(http::Request::new(())).await.unwrap();
        calls.cut();
        let body = response.into_body().collect().await.unwrap();
        assert!(body.trailers().is_none(), "no status added");
        assert_eq!(&body.to_bytes()[..], b"a message");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_response_closes_its_call() {
        let calls = OpenCalls::new();
        let mut service = calls.count(tower::service_fn(answer));
        let pending = service.call(http::Request::new(()));
        let second = service.call(http::Request::new(()));
        assert_eq!(calls.idle_since(), None);
        drop(pending);
        assert_eq!(calls.idle_since(), None, "one call is still open");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(second.await.unwrap());
        assert_eq!(
            calls.idle_since(),
            Some(calls.0.since + Duration::from_secs(1))
        );
    }
}
