//! Exponential backoff with jitter, on `backon`: each failure doubles the wait, up to a ceiling,
//! and the actual wait is drawn between half of it and all of it, so that failing deliveries do
//! not retry in lockstep.
//!
//! `backon` draws a jittered wait between its base delay and twice that; with the base at half
//! the ceiling, that is the schedule above.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

#[derive(Debug)]
pub struct Backoff {
    schedule: ExponentialBuilder,
    max: Duration,
    waits: ExponentialBackoff,
}

impl Backoff {
    /// Waits of at most `min`, `2·min`, `4·min`, … and never more than `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        let schedule = ExponentialBuilder::new()
            .with_min_delay(min / 2)
            .with_max_delay(max / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            schedule,
            max,
            waits: schedule.build(),
        }
    }

    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        // The schedule has no end; its float arithmetic may overshoot by nanoseconds.
        self.waits.next().unwrap_or(self.max).min(self.max)
    }

    /// After a success: the next failure waits the shortest again.
    pub fn reset(&mut self) {
        self.waits = self.schedule.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_ceiling_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let expected_ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in expected_ceilings {
            let wait = backoff.next_wait();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} vs {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        for _ in 0..1000 {
            assert!(backoff.next_wait() <= Duration::from_secs(300));
        }
    }
}
