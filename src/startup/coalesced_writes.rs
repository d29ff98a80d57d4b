//! Writes to a client connection gathered into fewer, larger socket writes.
//!
//! Every HTTP/2 stream of a connection has a task of its own that hands its frames to the
//! connection's task, and the scheduler runs a task that was just woken next: so the
//! connection task runs, and writes to the socket, once per frame. When one change goes out to
//! thousands of watch streams, or many answers are ready at once, that is one system call and
//! one TCP segment per message, on the server and again on the client.
//!
//! Here a flush waits one turn of the scheduler: the first time the connection asks to flush
//! buffered bytes, the task yields (it wakes itself and returns `Pending`), so that the other
//! tasks already waiting to run (the streams of this connection among them) add their frames
//! first; the next flush writes everything at once. With nothing else waiting to run, the turn
//! costs one poll of the task. Buffered bytes are bounded: past [`MAX_BUFFERED`] a write waits
//! for the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write must wait for the socket to take some.
const MAX_BUFFERED: usize = 64 * 1024;

/// `inner` with its writes gathered until a flush, and each flush put off by one turn.
pub(super) struct CoalescedWrites<T> {
    inner: T,
    /// Bytes written to us and not yet to `inner`, from `sent` on.
    buffer: Vec<u8>,
    sent: usize,
    /// This flush has already yielded once.
    yielded: bool,
}

impl<T> CoalescedWrites<T> {
    pub(super) fn new(inner: T) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            sent: 0,
            yielded: false,
        }
    }

    fn buffered(&self) -> usize {
        self.buffer.len() - self.sent
    }
}

impl<T: AsyncWrite + Unpin> CoalescedWrites<T> {
    /// Writes buffered bytes to `inner` until none are left, or it cannot take more now.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.buffered() > 0 {
            let written =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buffer[self.sent..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        // Keep a modest buffer for the next burst; give a large one back.
        if self.buffer.capacity() > 2 * MAX_BUFFERED {
            self.buffer = Vec::new();
        } else {
            self.buffer.clear();
        }
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Room for more: past the bound, what is buffered must reach the socket first.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buffered() >= MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx))?;
        self.buffer.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx))?;
        let mut total = 0;
        for buf in bufs {
            self.buffer.extend_from_slice(buf);
            total += buf.len();
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buffered() > 0 {
            if !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.poll_drain(cx))?;
            self.yielded = false;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Nothing reaches the socket before a flush; a flush sends everything, in order, at once.
    #[tokio::test]
    async fn writes_reach_the_peer_at_the_flush_in_order() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut writer = CoalescedWrites::new(ours);
        writer.write_all(b"one ").await.expect("write");
        writer.write_all(b"two ").await.expect("write");
        let mut probe = [0u8; 16];
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            theirs.read(&mut probe),
        )
        .await;
        assert!(early.is_err(), "bytes were sent before the flush");
        writer.flush().await.expect("flush");
        let mut got = vec![0u8; 8];
        theirs.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"one two ");
    }

    /// More than the bound is written through as the peer reads: a write waits, nothing is
    /// lost or reordered, and shutting down sends the rest.
    #[tokio::test]
    async fn a_large_write_waits_for_the_socket_and_shutdown_sends_the_rest() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut writer = CoalescedWrites::new(ours);
        let data: Vec<u8> = (0..(3 * MAX_BUFFERED + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let sent = data.clone();
        let writing = tokio::spawn(async move {
            for chunk in sent.chunks(1000) {
                writer.write_all(chunk).await.expect("write");
            }
            writer.shutdown().await.expect("shutdown");
        });
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        writing.await.expect("the writer");
        assert_eq!(got, data);
    }
}
