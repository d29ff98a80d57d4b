//! The connections the server takes, guarded: at most `--max-connections` open at once
//! (one more is closed as soon as it is accepted), and each must complete its handshake (TLS if
//! configured, then the HTTP/2 client preface and its first SETTINGS frame, or the start of an
//! HTTP/1.1 request) within `--handshake-timeout`, or it is closed. Neither tonic nor hyper
//! bounds the wait for a client preface, so without this a socket that never speaks holds a
//! descriptor for ever.
//!
//! Handshakes run in tasks of their own, so a slow one never holds up the accept loop. The bytes
//! read to check the preface are handed to hyper first, as if read by it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_util::either::Either;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

use crate::metrics::{self, ConnectionClosed};

/// The fixed start of every HTTP/2 connection (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/2 frame header: length (3 bytes), type, flags, stream id (4 bytes).
const FRAME_HEADER: usize = 9;
const SETTINGS_FRAME: u8 = 0x4;
const ACK_FLAG: u8 = 0x1;
/// Each setting is 6 bytes; a client has a handful to send.
const MAX_SETTINGS_BYTES: usize = 6 * 64;
/// After a failed accept (e.g. out of file descriptors), a pause before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every accepted connection must pass.
#[derive(Clone)]
pub(super) struct Gate {
    open: Arc<AtomicUsize>,
    /// Whether the cap is reached: one log line when it is, one when it no longer is.
    full: Arc<AtomicBool>,
    max_open: usize,
    handshake_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

impl Gate {
    pub(super) fn new(
        max_open: usize,
        handshake_timeout: Duration,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Self {
        Self {
            open: Arc::default(),
            full: Arc::default(),
            max_open,
            handshake_timeout,
            tls: tls.map(TlsAcceptor::from),
        }
    }

    /// Counts a new connection in, or refuses it when the cap is reached.
    fn admit(&self) -> Option<OpenConnection> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_open {
            self.open.fetch_sub(1, Ordering::AcqRel);
            metrics::record_connection_closed(ConnectionClosed::OverLimit);
            if !self.full.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    max_connections = self.max_open,
                    "the connection limit is reached: new connections are closed at once until one closes (--max-connections)"
                );
            }
            return None;
        }
        if self.full.swap(false, Ordering::AcqRel) {
            tracing::info!("a connection is accepted again: below the connection limit");
        }
        metrics::record_connection_opened();
        Some(OpenConnection {
            open: self.open.clone(),
            closed: CloseReason::default(),
        })
    }
}

/// Why a connection closed: set by whatever closes it, read when it is counted out. Shared,
/// because the connection itself is owned by hyper while it is served.
#[derive(Clone)]
pub(super) struct CloseReason(Arc<Mutex<ConnectionClosed>>);

impl Default for CloseReason {
    /// A connection still open when the server stops closes for that reason.
    fn default() -> Self {
        Self(Arc::new(Mutex::new(ConnectionClosed::Shutdown)))
    }
}

impl CloseReason {
    pub(super) fn set(&self, reason: ConnectionClosed) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    fn get(&self) -> ConnectionClosed {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open connection in the count; dropping it (with the connection) counts it out, with the
/// reason it closed.
struct OpenConnection {
    open: Arc<AtomicUsize>,
    closed: CloseReason,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        metrics::record_connection_closed(self.closed.get());
    }
}

/// A connection past its handshake, to be served.
pub(super) struct Connection {
    io: Either<TcpStream, TlsStream<TcpStream>>,
    /// The preface and SETTINGS already read, given to hyper before anything else.
    replay: Vec<u8>,
    replayed: usize,
    /// Last, so that the count goes down after the socket is closed.
    open: OpenConnection,
}

impl Connection {
    /// Where the reason it closes is to be set.
    pub(super) fn close_reason(&self) -> CloseReason {
        self.open.closed.clone()
    }
}

/// The connections of `tcp` that pass `gate`, in the order their handshakes complete.
pub(super) fn guarded(
    tcp: TcpIncoming,
    gate: Gate,
) -> impl Stream<Item = Connection> + Send + 'static {
    let state = (Box::pin(tcp), JoinSet::new(), gate);
    futures::stream::unfold(state, |(mut tcp, mut handshakes, gate)| async move {
        loop {
            tokio::select! {
                accepted = tcp.next() => match accepted {
                    None => return None,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    // Refused connections are dropped here: closed at once.
                    Some(Ok(stream)) => {
                        if let Some(open) = gate.admit() {
                            handshakes.spawn(handshake(stream, open, gate.clone()));
                        }
                    }
                },
                Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return Some((connection, (tcp, handshakes, gate)));
                    }
                }
            }
        }
    })
}

/// TLS (if configured), then the client preface and its SETTINGS, within the deadline.
async fn handshake(tcp: TcpStream, open: OpenConnection, gate: Gate) -> Option<Connection> {
    let attempt = async {
        let mut io = match &gate.tls {
            Some(acceptor) => Either::Right(
                acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| (ConnectionClosed::TlsError, e))?,
            ),
            None => Either::Left(tcp),
        };
        let replay = read_client_preface(&mut io).await?;
        Ok::<_, (ConnectionClosed, io::Error)>((io, replay))
    };
    match tokio::time::timeout(gate.handshake_timeout, attempt).await {
        Err(_) => {
            open.closed.set(ConnectionClosed::HandshakeTimeout);
            None
        }
        Ok(Err((reason, error))) => {
            tracing::debug!(%error, reason = reason.label(), "connection closed before its handshake");
            open.closed.set(reason);
            None
        }
        Ok(Ok((io, replay))) => {
            open.closed.set(ConnectionClosed::Served);
            Some(Connection {
                io,
                replay,
                replayed: 0,
                open,
            })
        }
    }
}

/// How an HTTP/1.1 request may start: the methods a browser's console and gRPC-Web use.
const HTTP1_METHODS: &[&[u8]] = &[b"GET ", b"HEAD ", b"POST ", b"OPTIONS "];
/// Enough of a connection's first bytes to tell HTTP/2 from an HTTP/1.1 request line.
const SNIFF: usize = 8;
/// The most of an HTTP/1.1 request head the gate waits for; a longer one is hyper's to refuse.
const MAX_HTTP1_HEAD: usize = 16 * 1024;

/// Reads the start of the connection: the HTTP/2 client preface and the SETTINGS frame that must
/// follow it, or the head of an HTTP/1.1 request (a browser's: the console and gRPC-Web); returns
/// the bytes read.
async fn read_client_preface<S: AsyncRead + Unpin>(
    io: &mut S,
) -> Result<Vec<u8>, (ConnectionClosed, io::Error)> {
    let peer_closed = |e| (ConnectionClosed::PeerClosed, e);
    let bad = |why: &str| {
        (
            ConnectionClosed::BadPreface,
            io::Error::new(io::ErrorKind::InvalidData, why.to_owned()),
        )
    };
    let mut read = vec![0; SNIFF];
    io.read_exact(&mut read).await.map_err(peer_closed)?;
    if HTTP1_METHODS.iter().any(|method| read.starts_with(method)) {
        read_http1_head(io, &mut read).await.map_err(peer_closed)?;
        return Ok(read);
    }
    if read[..] != PREFACE[..SNIFF] {
        return Err(bad(
            "neither the HTTP/2 client preface nor an HTTP/1.1 request",
        ));
    }
    read.resize(PREFACE.len() + FRAME_HEADER, 0);
    io.read_exact(&mut read[SNIFF..])
        .await
        .map_err(peer_closed)?;
    if &read[..PREFACE.len()] != PREFACE {
        return Err(bad("not the HTTP/2 client preface"));
    }
    let header = &read[PREFACE.len()..];
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    if header[3] != SETTINGS_FRAME
        || header[4] & ACK_FLAG != 0
        || length % 6 != 0
        || length > MAX_SETTINGS_BYTES
    {
        return Err(bad("the client preface is not followed by its SETTINGS"));
    }
    let start = read.len();
    read.resize(start + length, 0);
    io.read_exact(&mut read[start..])
        .await
        .map_err(peer_closed)?;
    Ok(read)
}

/// Reads on until `read` holds a whole HTTP/1.1 request head (up to its blank line), or
/// [`MAX_HTTP1_HEAD`] bytes: the first request's head counts towards the handshake's deadline.
async fn read_http1_head<S: AsyncRead + Unpin>(io: &mut S, read: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 1024];
    while read.len() < MAX_HTTP1_HEAD {
        // Only the bytes around the newest chunk can complete the blank line.
        let from = read.len().saturating_sub(chunk.len() + 3);
        if read[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(());
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        read.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replayed < this.replay.len() {
            let n = (this.replay.len() - this.replayed).min(buf.remaining());
            buf.put_slice(&this.replay[this.replayed..this.replayed + n]);
            this.replayed += n;
            if this.replayed == this.replay.len() {
                this.replay = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match &self.io {
            Either::Left(tcp) => tcp.connect_info(),
            Either::Right(tls) => tls.get_ref().0.connect_info(),
        }
    }
}
