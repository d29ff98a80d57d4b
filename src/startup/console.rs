//! The console beside the API on the same port: a browser's GET or HEAD is answered with the
//! console's files (the `telephony-admin-console` crate), every other request goes on to the
//! API — gRPC, or gRPC-Web from the console or an origin allowed by `--cors-origin`.
//!
//! The console's pages carry a strict Content-Security-Policy: scripts, styles and calls only
//! from this origin, no inline script, and no framing.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;
use tower::Service;

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The API, with the console's files answered in front of it (or without them: `--console
/// false`, when a browser's GET is the API's to refuse).
#[derive(Clone)]
pub(super) struct WithConsole<S> {
    pub(super) api: S,
    pub(super) enabled: bool,
}

impl<S> Service<Request<Body>> for WithConsole<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.api.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = request.method();
        if self.enabled && (method == Method::GET || method == Method::HEAD) {
            Either::Left(ready(Ok(file(
                request.uri().path(),
                method == Method::HEAD,
            ))))
        } else {
            Either::Right(self.api.call(request))
        }
    }
}

/// The console's file at `path`, with the headers every console response carries.
fn file(path: &str, head_only: bool) -> Response<Body> {
    let mut response = match telephony_admin_console::asset(path) {
        Some(asset) => {
            let mut response = Response::new(if head_only {
                Body::empty()
            } else {
                Body::new(http_body_util::Full::new(hyper::body::Bytes::from_static(
                    asset.bytes,
                )))
            });
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            );
            headers.insert(header::CONTENT_LENGTH, asset.bytes.len().into());
            // Hashed names never change content; the page itself is checked every time, so
            // that a new version's page is seen at once.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(if asset.immutable {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                }),
            );
            response
        }
        None => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}
