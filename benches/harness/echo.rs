//! The anchor for reads: a bare tonic service with no middleware, no authentication and no
//! database, answering every call with a fixed message of a chosen encoded size. Built from
//! tonic's own server parts and a hand-written prost message, so it needs no code generation.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::uri::PathAndQuery;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::StdError;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic_prost::ProstCodec;

const METHOD: &str = "/bench.Echo/Echo";

/// A message of any size: a bytes field, and a small second one to make up an exact size.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(bytes = "vec", tag = "1")]
    pub body: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub filler: Vec<u8>,
}

/// The encoded length of a bytes field of `len` bytes (absent when empty).
fn field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + prost::encoding::encoded_len_varint(len as u64) + len
    }
}

impl Payload {
    /// A payload whose encoding is exactly `size` bytes (1 and 2 cannot be made; they give 3).
    pub fn of_encoded_size(size: usize) -> Self {
        let mut body = size.saturating_sub(2);
        loop {
            let rest = size.checked_sub(field_len(body)).unwrap_or(usize::MAX);
            // A filler of 1 to 127 bytes costs two bytes more than its length.
            if rest == 0 || (3..=129).contains(&rest) || body == 0 {
                let filler = rest.saturating_sub(2).max(usize::from(rest > 0));
                return Self {
                    body: vec![b'x'; body],
                    filler: vec![b'x'; filler],
                };
            }
            body -= 1;
        }
    }
}

#[derive(Clone)]
struct EchoServer {
    reply: Arc<Payload>,
}

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "bench.Echo";
}

struct Answer(Arc<Payload>);

impl tonic::server::UnaryService<Payload> for Answer {
    type Response = Payload;
    type Future = Ready<Result<tonic::Response<Payload>, tonic::Status>>;

    fn call(&mut self, _request: tonic::Request<Payload>) -> Self::Future {
        ready(Ok(tonic::Response::new((*self.0).clone())))
    }
}

impl<B> tower::Service<http::Request<B>> for EchoServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let reply = self.reply.clone();
        Box::pin(async move {
            if request.uri().path() != METHOD {
                return Ok(tonic::Status::unimplemented("").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Payload, Payload>::default());
            Ok(grpc.unary(Answer(reply), request).await)
        })
    }
}

/// A running echo server; stops when dropped.
pub struct Echo {
    pub address: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the echo on a loopback port with tonic's defaults, answering `reply_size` bytes.
pub async fn start(reply_size: usize) -> anyhow::Result<Echo> {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse()?)?.with_nodelay(Some(true));
    let address = incoming.local_addr()?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let service = EchoServer {
        reply: Arc::new(Payload::of_encoded_size(reply_size)),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { stopped.cancelled().await }),
    );
    Ok(Echo { address, stop })
}

/// One echo call carrying `request`.
pub async fn call(channel: Channel, request: Payload) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary::<Payload, Payload, _>(
        tonic::Request::new(request),
        PathAndQuery::from_static(METHOD),
        ProstCodec::default(),
    )
    .await
    .map(drop)
}
