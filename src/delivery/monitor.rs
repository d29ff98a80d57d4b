//! The deliveries' lag, in memory, for operators and metrics: for each delivery this replica
//! runs, how far behind the change log it is and how long the last delivery took after its commit.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use crate::domain::change::ChangeEvent;

/// One delivery's progress as this replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLag {
    /// `webhook:<id>` or `mail`.
    pub sink: String,
    /// Every wanted event up to here is delivered.
    pub cursor: u64,
    /// The last committed sequence when the cursor was last compared with it.
    pub head: u64,
    /// From the event's commit to its delivery, for the last event delivered.
    pub last_commit_to_delivery: Option<Duration>,
    /// How long the last successful attempt took.
    pub last_attempt: Option<Duration>,
    /// Failed attempts since the last success.
    pub failures: u64,
}

impl DeliveryLag {
    /// Events in the log after the cursor (not all of them need be for this delivery).
    pub fn behind(&self) -> u64 {
        self.head.saturating_sub(self.cursor)
    }
}

#[derive(Default)]
pub struct Monitor {
    lags: Mutex<HashMap<String, DeliveryLag>>,
}

impl Monitor {
    pub fn snapshot(&self) -> Vec<DeliveryLag> {
        let lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<DeliveryLag> = lags.values().cloned().collect();
        all.sort_by(|a, b| a.sink.cmp(&b.sink));
        all
    }

    fn update(&self, sink: &str, change: impl FnOnce(&mut DeliveryLag)) {
        let mut lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        let lag = lags.entry(sink.to_owned()).or_insert_with(|| DeliveryLag {
            sink: sink.to_owned(),
            cursor: 0,
            head: 0,
            last_commit_to_delivery: None,
            last_attempt: None,
            failures: 0,
        });
        change(lag);
        publish(&lags);
    }

    pub(super) fn progress(&self, sink: &str, cursor: u64, head: u64) {
        self.update(sink, |lag| {
            lag.cursor = cursor;
            lag.head = lag.head.max(head);
        });
    }

    pub(super) fn delivered(&self, sink: &str, event: &ChangeEvent, attempt: Duration) {
        let committed: SystemTime = event.occur_time.into();
        let since_commit = SystemTime::now().duration_since(committed).ok();
        let sequence = event.sequence;
        self.update(sink, |lag| {
            lag.cursor = lag.cursor.max(sequence);
            lag.head = lag.head.max(sequence);
            lag.last_commit_to_delivery = since_commit;
            lag.last_attempt = Some(attempt);
            lag.failures = 0;
        });
    }

    pub(super) fn failed(&self, sink: &str) {
        self.update(sink, |lag| lag.failures += 1);
    }

    pub(super) fn forget(&self, sink: &str) {
        let mut lags = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        lags.remove(sink);
        publish(&lags);
    }
}

/// Per kind (never per webhook: ids are no label values), the slowest delivery's lag and how
/// many are failing, for the metrics.
fn publish(lags: &HashMap<String, DeliveryLag>) {
    for kind in crate::metrics::DELIVERY_KINDS {
        let of_kind = lags.values().filter(|lag| sink_kind(&lag.sink) == kind);
        let (behind, failing) = of_kind.fold((0, 0), |(behind, failing), lag| {
            (
                behind.max(lag.behind()),
                failing + u64::from(lag.failures > 0),
            )
        });
        crate::metrics::record_delivery_state(kind, behind, failing);
    }
}

/// `webhook:<id>` → `webhook`; `mail` → `mail`.
fn sink_kind(sink: &str) -> &str {
    sink.split(':').next().unwrap_or(sink)
}
