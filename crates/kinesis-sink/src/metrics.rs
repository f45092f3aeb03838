//! What the sink reports: `metrics` crate counters and gauges, and [`SinkStats`], the same
//! figures summed over the sink's subtasks for tests and benchmarks.
//!
//! Metric names (label `task` = the subtask, e.g. `v0-0[0/2]`):
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `rill_kinesis_sink_records_sent_total` | counter | records acknowledged by Kinesis |
//! | `rill_kinesis_sink_bytes_sent_total` | counter | their data plus partition key bytes |
//! | `rill_kinesis_sink_requests_total` | counter | PutRecords calls completed (any outcome) |
//! | `rill_kinesis_sink_retried_records_total` | counter | records scheduled for another attempt |
//! | `rill_kinesis_sink_throttles_total` | counter | throttled calls plus throttled entries |
//! | `rill_kinesis_sink_dropped_records_total` | counter | records dropped by the drop policy |
//! | `rill_kinesis_sink_backpressure_waits_total` | counter | times `process` had to wait for room |
//! | `rill_kinesis_sink_in_flight_requests` | gauge | PutRecords calls in flight |
//! | `rill_kinesis_sink_in_flight_records` | gauge | records in those calls |
//! | `rill_kinesis_sink_buffered_records` | gauge | records held: queued, in flight, awaiting retry |
//! | `rill_kinesis_sink_buffered_bytes` | gauge | their bytes |
//! | `rill_kinesis_sink_rate_limit_records` | gauge | the AIMD in-flight record limit |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::{Counter, Gauge};

/// Figures of one sink summed over its subtasks (shared by all clones of the sink).
#[derive(Debug)]
pub struct SinkStats {
    records_sent: AtomicU64,
    bytes_sent: AtomicU64,
    requests: AtomicU64,
    retried_records: AtomicU64,
    throttles: AtomicU64,
    dropped: AtomicU64,
    backpressure_waits: AtomicU64,
    peak_buffered_records: AtomicU64,
    peak_buffered_bytes: AtomicU64,
    rate_limit_initial: AtomicU64,
    rate_limit_lowest: AtomicU64,
    rate_limit_last: AtomicU64,
    rate_decreases: AtomicU64,
    rate_increases: AtomicU64,
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            records_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retried_records: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            backpressure_waits: AtomicU64::new(0),
            peak_buffered_records: AtomicU64::new(0),
            peak_buffered_bytes: AtomicU64::new(0),
            rate_limit_initial: AtomicU64::new(0),
            rate_limit_lowest: AtomicU64::new(u64::MAX),
            rate_limit_last: AtomicU64::new(0),
            rate_decreases: AtomicU64::new(0),
            rate_increases: AtomicU64::new(0),
        }
    }
}

/// A copy of [`SinkStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkStatsSnapshot {
    /// Records acknowledged by Kinesis.
    pub records_sent: u64,
    /// Their bytes (data plus partition key).
    pub bytes_sent: u64,
    /// PutRecords calls completed.
    pub requests: u64,
    /// Records scheduled for another attempt.
    pub retried_records: u64,
    /// Throttled calls plus throttled entries.
    pub throttles: u64,
    /// Records dropped by [`crate::ErrorPolicy::DropAndCount`].
    pub dropped: u64,
    /// Times `process` waited for buffer room.
    pub backpressure_waits: u64,
    /// Most records one subtask held at once (queued, in flight, awaiting retry).
    pub peak_buffered_records: u64,
    /// Most bytes one subtask held at once.
    pub peak_buffered_bytes: u64,
    /// The in-flight record limit a subtask started with.
    pub rate_limit_initial: u64,
    /// The lowest limit any subtask reached (`u64::MAX` if never changed).
    pub rate_limit_lowest: u64,
    /// The limit after the last change by any subtask.
    pub rate_limit_last: u64,
    /// Times a limit was lowered.
    pub rate_decreases: u64,
    /// Times a limit was raised.
    pub rate_increases: u64,
}

impl SinkStats {
    /// The current figures.
    pub fn snapshot(&self) -> SinkStatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SinkStatsSnapshot {
            records_sent: get(&self.records_sent),
            bytes_sent: get(&self.bytes_sent),
            requests: get(&self.requests),
            retried_records: get(&self.retried_records),
            throttles: get(&self.throttles),
            dropped: get(&self.dropped),
            backpressure_waits: get(&self.backpressure_waits),
            peak_buffered_records: get(&self.peak_buffered_records),
            peak_buffered_bytes: get(&self.peak_buffered_bytes),
            rate_limit_initial: get(&self.rate_limit_initial),
            rate_limit_lowest: get(&self.rate_limit_lowest),
            rate_limit_last: get(&self.rate_limit_last),
            rate_decreases: get(&self.rate_decreases),
            rate_increases: get(&self.rate_increases),
        }
    }
}

/// One subtask's handles: updates the `metrics` recorder and the shared [`SinkStats`].
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    stats: Arc<SinkStats>,
    records_sent: Counter,
    bytes_sent: Counter,
    requests: Counter,
    retried_records: Counter,
    throttles: Counter,
    dropped: Counter,
    backpressure_waits: Counter,
    in_flight_requests: Gauge,
    in_flight_records: Gauge,
    buffered_records: Gauge,
    buffered_bytes: Gauge,
    rate_limit: Gauge,
}

impl Telemetry {
    pub(crate) fn new(task: &str, stats: Arc<SinkStats>) -> Self {
        let task = task.to_string();
        Telemetry {
            stats,
            records_sent: metrics::counter!("rill_kinesis_sink_records_sent_total", "task" => task.clone()),
            bytes_sent: metrics::counter!("rill_kinesis_sink_bytes_sent_total", "task" => task.clone()),
            requests: metrics::counter!("rill_kinesis_sink_requests_total", "task" => task.clone()),
            retried_records: metrics::counter!("rill_kinesis_sink_retried_records_total", "task" => task.clone()),
            throttles: metrics::counter!("rill_kinesis_sink_throttles_total", "task" => task.clone()),
            dropped: metrics::counter!("rill_kinesis_sink_dropped_records_total", "task" => task.clone()),
            backpressure_waits: metrics::counter!("rill_kinesis_sink_backpressure_waits_total", "task" => task.clone()),
            in_flight_requests: metrics::gauge!("rill_kinesis_sink_in_flight_requests", "task" => task.clone()),
            in_flight_records: metrics::gauge!("rill_kinesis_sink_in_flight_records", "task" => task.clone()),
            buffered_records: metrics::gauge!("rill_kinesis_sink_buffered_records", "task" => task.clone()),
            buffered_bytes: metrics::gauge!("rill_kinesis_sink_buffered_bytes", "task" => task.clone()),
            rate_limit: metrics::gauge!("rill_kinesis_sink_rate_limit_records", "task" => task),
        }
    }

    pub(crate) fn sent(&self, records: u64, bytes: u64) {
        self.records_sent.increment(records);
        self.bytes_sent.increment(bytes);
        self.stats.records_sent.fetch_add(records, Ordering::Relaxed);
        self.stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn request(&self) {
        self.requests.increment(1);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self, records: u64) {
        self.retried_records.increment(records);
        self.stats.retried_records.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self, n: u64) {
        self.throttles.increment(n);
        self.stats.throttles.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, records: u64) {
        self.dropped.increment(records);
        self.stats.dropped.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn backpressure_wait(&self) {
        self.backpressure_waits.increment(1);
        self.stats.backpressure_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self, requests: usize, records: usize) {
        self.in_flight_requests.set(requests as f64);
        self.in_flight_records.set(records as f64);
    }

    pub(crate) fn buffered(&self, records: usize, bytes: usize) {
        self.buffered_records.set(records as f64);
        self.buffered_bytes.set(bytes as f64);
        self.stats.peak_buffered_records.fetch_max(records as u64, Ordering::Relaxed);
        self.stats.peak_buffered_bytes.fetch_max(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn rate_initial(&self, limit: usize) {
        self.rate_limit.set(limit as f64);
        self.stats.rate_limit_initial.store(limit as u64, Ordering::Relaxed);
        self.stats.rate_limit_last.store(limit as u64, Ordering::Relaxed);
    }

    pub(crate) fn rate_changed(&self, limit: usize, lowered: bool) {
        self.rate_limit.set(limit as f64);
        self.stats.rate_limit_last.store(limit as u64, Ordering::Relaxed);
        if lowered {
            self.stats.rate_limit_lowest.fetch_min(limit as u64, Ordering::Relaxed);
            self.stats.rate_decreases.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.rate_increases.fetch_add(1, Ordering::Relaxed);
        }
    }
}
