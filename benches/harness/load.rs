//! Load shapes: a closed loop of many calls in flight over several connections for a fixed
//! time, and one call at a time. Both time every call.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

/// Calls completed in a measured window and how long each took.
pub struct Measured {
    pub calls: usize,
    pub window: Duration,
    /// Sorted.
    pub latencies: Vec<Duration>,
}

impl Measured {
    pub fn new(mut latencies: Vec<Duration>, window: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            calls: latencies.len(),
            window,
            latencies,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.calls as f64 / self.window.as_secs_f64()
    }

    /// The `p`th percentile (0 to 100), nearest rank; zero when nothing was measured.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// How long each kind of measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub warm_up: Duration,
    pub load: Duration,
    pub one_in_flight: Duration,
}

impl Budget {
    pub fn new(short: bool) -> Self {
        if short {
            Self {
                warm_up: Duration::from_millis(200),
                load: Duration::from_secs(1),
                one_in_flight: Duration::from_millis(500),
            }
        } else {
            Self {
                warm_up: Duration::from_millis(500),
                load: Duration::from_secs(3),
                one_in_flight: Duration::from_secs(1),
            }
        }
    }
}

/// Runs `streams` callers on each channel, each with one call in flight at a time, and counts
/// the calls that complete inside the window that follows the warm-up. `call` gets the channel
/// and the caller's index (0 to channels × streams − 1).
pub async fn closed_loop<F, Fut>(
    channels: &[Channel],
    streams: usize,
    budget: Budget,
    call: F,
) -> anyhow::Result<Measured>
where
    F: Fn(Channel, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let start = Instant::now() + budget.warm_up;
    let end = start + budget.load;
    let mut callers = Vec::with_capacity(channels.len() * streams);
    for (c, channel) in channels.iter().enumerate() {
        for s in 0..streams {
            let (channel, call) = (channel.clone(), call.clone());
            let index = c * streams + s;
            callers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        return Ok(latencies);
                    }
                    call(channel.clone(), index).await?;
                    let done = Instant::now();
                    // A call counts when it completes inside the window, however long it took.
                    if done >= start && done <= end {
                        latencies.push(done - sent);
                    }
                }
            }));
        }
    }
    let mut all = Vec::new();
    for caller in callers {
        let latencies: Result<Vec<Duration>, tonic::Status> = caller.await?;
        all.extend(latencies.map_err(|status| anyhow::anyhow!("a call failed: {status}"))?);
    }
    Ok(Measured::new(all, budget.load))
}

/// Calls one at a time for the budget's one-in-flight time (at least `min_calls` times, at most
/// `max_calls`), after a few warm-up calls.
pub async fn one_in_flight<F, Fut>(
    budget: Budget,
    min_calls: usize,
    max_calls: usize,
    mut call: F,
) -> anyhow::Result<Measured>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for i in 0..3 {
        call(i).await?;
    }
    let mut latencies = Vec::new();
    let began = Instant::now();
    while latencies.len() < max_calls
        && (latencies.len() < min_calls || began.elapsed() < budget.one_in_flight)
    {
        let sent = Instant::now();
        call(latencies.len() + 3).await?;
        latencies.push(sent.elapsed());
    }
    let window = began.elapsed();
    Ok(Measured::new(latencies, window))
}
