//! Source metrics: exported through the `metrics` crate (labels `stream` and `shard`) and
//! counted in-process for [`crate::KinesisSource::stats`].
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `rill_kinesis_source_records_total` | counter | stream, shard |
//! | `rill_kinesis_source_bytes_total` | counter | stream, shard |
//! | `rill_kinesis_source_get_records_calls_total` | counter | stream, shard |
//! | `rill_kinesis_source_millis_behind_latest` | gauge | stream, shard |
//! | `rill_kinesis_source_retries_total` | counter | operation |
//! | `rill_kinesis_source_throttles_total` | counter | operation |
//! | `rill_kinesis_source_expired_iterators_total` | counter | stream, shard |
//! | `rill_kinesis_source_skipped_records_total` | counter | stream, shard |

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::ShardKey;

/// Totals over all subtasks of a source in this process since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Records emitted (after de-aggregation; skipped malformed records not included).
    pub records: u64,
    /// Payload bytes emitted.
    pub bytes: u64,
    /// GetRecords calls made (including failed ones).
    pub get_records_calls: u64,
    /// Retries after retryable failures, over all operations.
    pub retries: u64,
    /// Throttling answers among them.
    pub throttles: u64,
    /// Expired shard iterators renewed.
    pub expired_iterators: u64,
    /// Malformed records skipped under [`crate::MalformedRecordPolicy::SkipAndCount`].
    pub skipped_records: u64,
    /// Shards read to their end.
    pub shards_finished: u64,
    /// Distinct shards listed by Kinesis (over all streams) since the source was built.
    pub shards: u64,
    /// Shard discoveries made (one per process for all subtasks of the source).
    pub listings: u64,
    /// Discovery rounds that kept the previous shard list (ListShards `ResourceInUseException`
    /// or `ExpiredNextTokenException`).
    pub listings_kept: u64,
    /// KPL sub-records dropped because their hash key belongs to another shard.
    pub foreign_sub_records: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    records: AtomicU64,
    bytes: AtomicU64,
    get_records_calls: AtomicU64,
    retries: AtomicU64,
    throttles: AtomicU64,
    expired_iterators: AtomicU64,
    skipped_records: AtomicU64,
    shards_finished: AtomicU64,
    listings: AtomicU64,
    listings_kept: AtomicU64,
    foreign_sub_records: AtomicU64,
    shards: Mutex<BTreeSet<ShardKey>>,
    /// The last `MillisBehindLatest` of each shard.
    lag: Mutex<HashMap<ShardKey, i64>>,
}

fn labels(shard: &ShardKey) -> [(&'static str, String); 2] {
    [("stream", shard.stream.clone()), ("shard", shard.shard_id.clone())]
}

impl Stats {
    pub(crate) fn snapshot(&self) -> SourceStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SourceStats {
            records: get(&self.records),
            bytes: get(&self.bytes),
            get_records_calls: get(&self.get_records_calls),
            retries: get(&self.retries),
            throttles: get(&self.throttles),
            expired_iterators: get(&self.expired_iterators),
            skipped_records: get(&self.skipped_records),
            shards_finished: get(&self.shards_finished),
            shards: self.shards.lock().map_or(0, |s| s.len() as u64),
            listings: get(&self.listings),
            listings_kept: get(&self.listings_kept),
            foreign_sub_records: get(&self.foreign_sub_records),
        }
    }

    pub(crate) fn emitted(&self, shard: &ShardKey, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        metrics::counter!("rill_kinesis_source_records_total", &labels(shard)).increment(records);
        metrics::counter!("rill_kinesis_source_bytes_total", &labels(shard)).increment(bytes);
    }

    pub(crate) fn get_records_call(&self, shard: &ShardKey) {
        self.get_records_calls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rill_kinesis_source_get_records_calls_total", &labels(shard)).increment(1);
    }

    pub(crate) fn millis_behind(&self, shard: &ShardKey, millis: i64) {
        if let Ok(mut lag) = self.lag.lock() {
            lag.insert(shard.clone(), millis);
        }
        metrics::gauge!("rill_kinesis_source_millis_behind_latest", &labels(shard)).set(millis as f64);
    }

    pub(crate) fn retry(&self, operation: &'static str, throttled: bool) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rill_kinesis_source_retries_total", "operation" => operation).increment(1);
        if throttled {
            self.throttles.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("rill_kinesis_source_throttles_total", "operation" => operation).increment(1);
        }
    }

    pub(crate) fn expired_iterator(&self, shard: &ShardKey) {
        self.expired_iterators.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rill_kinesis_source_expired_iterators_total", &labels(shard)).increment(1);
    }

    pub(crate) fn skipped(&self, shard: &ShardKey) {
        self.skipped_records.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rill_kinesis_source_skipped_records_total", &labels(shard)).increment(1);
    }

    pub(crate) fn saw_shard(&self, key: &ShardKey) {
        if let Ok(mut shards) = self.shards.lock() {
            if !shards.contains(key) {
                shards.insert(key.clone());
            }
        }
    }

    /// The last lag Kinesis reported for `shard`.
    pub(crate) fn lag(&self, shard: &ShardKey) -> Option<i64> {
        self.lag.lock().ok().and_then(|lag| lag.get(shard).copied())
    }

    pub(crate) fn foreign_sub_records(&self, n: u64) {
        self.foreign_sub_records.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn listed(&self) {
        self.listings.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn listing_kept(&self) {
        self.listings_kept.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn shard_finished(&self) {
        self.shards_finished.fetch_add(1, Ordering::Relaxed);
    }
}
