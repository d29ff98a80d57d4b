//! Log lines written to standard output by a thread of their own, so that no RPC waits for the
//! terminal or the log collector. At most [`MAX_QUEUED_LINES`] wait; past that, lines are
//! dropped rather than requests stalled.
//!
//! This is what `tracing_appender::non_blocking` does, except for memory: its bounded channel
//! allocates (and writes) a slot for every line it may hold when it starts, 4 MiB for 128,000
//! lines, in every process, however quiet. This queue is a linked list of small blocks that
//! takes memory only for the lines waiting.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting at most (tracing-appender's default).
pub const MAX_QUEUED_LINES: usize = 128_000;

/// How long dropping the guard waits for the queued lines to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    /// Write what came before, then answer on the sender and stop.
    Shutdown(mpsc::SyncSender<()>),
}

/// The writer the log layers format into: each event is one `write` of one line.
#[derive(Clone)]
pub struct LogQueue {
    sender: mpsc::Sender<Message>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

/// Stops the writing thread when dropped, after it has written the queued lines (for at most
/// [`FLUSH_TIMEOUT`]).
pub struct LogQueueGuard {
    sender: mpsc::Sender<Message>,
}

/// A queue of at most `max_queued` lines to `output`, and the guard that flushes it.
pub fn log_queue<W: Write + Send + 'static>(
    output: W,
    max_queued: usize,
) -> io::Result<(LogQueue, LogQueueGuard)> {
    let (sender, receiver) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let counted = queued.clone();
    thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(output, &receiver, &counted))?;
    Ok((
        LogQueue {
            sender: sender.clone(),
            queued,
            max_queued,
        },
        LogQueueGuard { sender },
    ))
}

/// Writes lines as they come, flushing whenever the queue runs empty.
fn write_lines<W: Write>(mut output: W, receiver: &mpsc::Receiver<Message>, queued: &AtomicUsize) {
    let mut next = receiver.recv().ok();
    while let Some(message) = next {
        match message {
            Message::Line(line) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                // Nowhere to report a failure to write the log.
                let _ = output.write_all(&line);
            }
            Message::Shutdown(done) => {
                let _ = output.flush();
                let _ = done.send(());
                return;
            }
        }
        next = match receiver.try_recv() {
            Ok(message) => Some(message),
            Err(mpsc::TryRecvError::Empty) => {
                let _ = output.flush();
                receiver.recv().ok()
            }
            Err(mpsc::TryRecvError::Disconnected) => None,
        };
    }
    let _ = output.flush();
}

impl Write for &LogQueue {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        } else if self.sender.send(Message::Line(line.to_vec())).is_err() {
            // The writing thread has stopped (shutdown): the line is lost, as after it.
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogQueue {
    type Writer = &'a LogQueue;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for LogQueueGuard {
    fn drop(&mut self) {
        let (done, written) = mpsc::sync_channel(1);
        if self.sender.send(Message::Shutdown(done)).is_ok() {
            let _ = written.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Collects what is written, and can hold the writer up.
    #[derive(Clone, Default)]
    struct Collected {
        bytes: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Collected {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_drops() {
        let collected = Collected::default();
        let (queue, guard) =
            log_queue(collected.clone(), MAX_QUEUED_LINES).expect("a writer thread");
        for n in 0..1000 {
            (&queue)
                .write_all(format!("line {n}\n").as_bytes())
                .expect("queued");
        }
        drop(guard);
        let expected: String = (0..1000).map(|n| format!("line {n}\n")).collect();
        assert_eq!(
            String::from_utf8(collected.bytes.lock().unwrap().clone()).unwrap(),
            expected
        );
    }

    /// Holds the output until told to go on.
    struct Held(mpsc::Receiver<()>, Collected);

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            self.1.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_beyond_the_limit_are_dropped_while_the_output_is_stuck() {
        let (go_on, wait) = mpsc::channel();
        let collected = Collected::default();
        const LIMIT: usize = 10;
        let (queue, guard) =
            log_queue(Held(wait, collected.clone()), LIMIT).expect("a writer thread");
        for _ in 0..LIMIT + 10 {
            (&queue).write_all(b"x\n").expect("never an error");
        }
        // The writer may have taken one line off the queue before it filled; the rest wait or
        // were dropped.
        let queued = queue.queued.load(Ordering::Relaxed);
        assert!((LIMIT - 1..=LIMIT).contains(&queued), "{queued} queued");
        for _ in 0..LIMIT + 10 {
            let _ = go_on.send(());
        }
        drop(guard);
        let written = collected.bytes.lock().unwrap().len() / 2;
        assert!((LIMIT..=LIMIT + 1).contains(&written), "{written} written");
    }
}
