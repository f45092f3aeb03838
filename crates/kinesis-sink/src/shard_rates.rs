//! Rate control per shard. Kinesis throttles a shard, not a subtask: when entries of one shard
//! come back `ProvisionedThroughputExceededException`, that shard's records wait for a
//! full-jitter backoff and its in-flight limit shrinks (AIMD: +10 as Flink's async sink, x0.5),
//! while records of every other shard keep flowing at full batch size.
//!
//! In ordering mode it also keeps per-key order: at most one record of a partition key is in
//! flight or waiting for a retry at any time, so a retried record can never be overtaken by a
//! later one of its key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use rill_kinesis_common::FullJitter;

use crate::batch::Entry;
use crate::rate::Aimd;

#[derive(Debug, Clone)]
struct ShardRate {
    aimd: Aimd,
    in_flight: usize,
    blocked_until: Option<Instant>,
    /// Throttled answers in a row without a stored record of this shard (the backoff exponent).
    throttled_in_a_row: u32,
}

/// Per-shard limits of one writer.
#[derive(Debug)]
pub(crate) struct ShardRates {
    shards: HashMap<Arc<str>, ShardRate>,
    max: usize,
    increase: usize,
    decrease_factor: f64,
    backoff: FullJitter,
    ordering: bool,
    /// Ordering mode: partition key (per stream) → the id of the one entry of it that may go.
    keys: HashMap<(Arc<str>, String), u64>,
}

impl ShardRates {
    /// Shards start at `max` records in flight.
    pub(crate) fn new(max: usize, increase: usize, decrease_factor: f64, backoff: FullJitter, ordering: bool) -> Self {
        ShardRates {
            shards: HashMap::new(),
            max: max.max(1),
            increase,
            decrease_factor,
            backoff,
            ordering,
            keys: HashMap::new(),
        }
    }

    fn shard(&mut self, shard: &Arc<str>) -> &mut ShardRate {
        let max = self.max;
        let (increase, factor) = (self.increase, self.decrease_factor);
        self.shards.entry(shard.clone()).or_insert_with(|| ShardRate {
            aimd: Aimd::new(max, increase, factor),
            in_flight: 0,
            blocked_until: None,
            throttled_in_a_row: 0,
        })
    }

    /// Whether `entry` may join a batch now; `in_batch` counts the records of each shard already
    /// in the batch being cut, `batch_keys` its keys (ordering mode).
    pub(crate) fn admits(
        &self,
        entry: &Entry,
        now: Instant,
        in_batch: &HashMap<Arc<str>, usize>,
        batch_keys: &std::collections::HashSet<String>,
    ) -> bool {
        if self.ordering {
            let key = (entry.stream.clone(), entry.partition_key.clone());
            if self.keys.get(&key).is_some_and(|holder| *holder != entry.id)
                || batch_keys.contains(&entry.partition_key)
            {
                return false;
            }
        }
        let Some(shard) = &entry.shard else { return true };
        let Some(rate) = self.shards.get(shard) else { return true };
        if rate.blocked_until.is_some_and(|t| t > now) {
            return false;
        }
        rate.in_flight + in_batch.get(shard).copied().unwrap_or(0) < rate.aimd.limit()
    }

    /// `entry` was put in a request.
    pub(crate) fn sent(&mut self, entry: &Entry) {
        if self.ordering {
            self.keys.insert((entry.stream.clone(), entry.partition_key.clone()), entry.id);
        }
        if let Some(shard) = &entry.shard {
            self.shard(shard).in_flight += 1;
        }
    }

    /// `entry`'s request came back, whatever the outcome.
    pub(crate) fn returned(&mut self, entry: &Entry) {
        if let Some(shard) = &entry.shard {
            let rate = self.shard(shard);
            rate.in_flight = rate.in_flight.saturating_sub(1);
        }
    }

    /// `entry` is done (stored or dropped): its key may go on.
    pub(crate) fn done(&mut self, entry: &Entry) {
        if self.ordering {
            let key = (entry.stream.clone(), entry.partition_key.clone());
            if self.keys.get(&key) == Some(&entry.id) {
                self.keys.remove(&key);
            }
        }
    }

    /// A request stored records of `shard`.
    pub(crate) fn stored(&mut self, shard: &Arc<str>) {
        let rate = self.shard(shard);
        rate.throttled_in_a_row = 0;
        rate.aimd.on_success();
    }

    /// A request had throttled entries of `shard`: block it for a backoff and lower its limit
    /// (once per blocked period). Returns when it opens again.
    pub(crate) fn throttled(&mut self, shard: &Arc<str>, now: Instant) -> Instant {
        let backoff = self.backoff;
        let rate = self.shard(shard);
        if rate.blocked_until.is_some_and(|t| t > now) {
            return rate.blocked_until.unwrap_or(now);
        }
        let epoch = rate.aimd.epoch();
        rate.aimd.on_congestion(epoch);
        let until = now + backoff.delay(rate.throttled_in_a_row.min(16));
        rate.throttled_in_a_row += 1;
        rate.blocked_until = Some(until);
        tracing::debug!(%shard, limit = rate.aimd.limit(), in_flight = rate.in_flight, wait = ?(until - now), "shard throttled");
        until
    }

    /// When the earliest blocked shard opens again (to wake the writer).
    pub(crate) fn next_unblock(&self, now: Instant) -> Option<Instant> {
        self.shards.values().filter_map(|r| r.blocked_until).filter(|t| *t > now).min()
    }

    /// The in-flight limit of `shard` (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn limit(&self, shard: &Arc<str>) -> Option<usize> {
        self.shards.get(shard).map(|r| r.aimd.limit())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    fn entry(id: u64, shard: &str, key: &str) -> Entry {
        Entry {
            id,
            stream: "s".into(),
            shard: Some(Arc::from(shard)),
            data: vec![0; 10],
            partition_key: key.into(),
            explicit_hash_key: None,
            attempts: 0,
            throttles: 0,
            throttled_since: None,
            enqueued: Instant::now(),
        }
    }

    fn rates(ordering: bool) -> ShardRates {
        ShardRates::new(4000, 10, 0.99, FullJitter::new(Duration::from_millis(100), Duration::from_secs(5)), ordering)
    }

    #[test]
    fn a_throttled_shard_waits_while_other_shards_keep_full_batches() {
        let mut r = rates(false);
        let now = Instant::now();
        let hot: Arc<str> = "s/hot".into();
        r.sent(&entry(1, "s/hot", "a"));
        r.returned(&entry(1, "s/hot", "a"));
        let until = r.throttled(&hot, now);
        let empty = (HashMap::new(), HashSet::new());
        assert!(until > now);
        assert!(!r.admits(&entry(2, "s/hot", "a"), now, &empty.0, &empty.1), "the hot shard waits for its backoff");
        assert!(r.admits(&entry(3, "s/cold", "b"), now, &empty.0, &empty.1), "another shard is not held back");
        let mut batch = HashMap::new();
        batch.insert(Arc::from("s/cold"), 499usize);
        assert!(r.admits(&entry(4, "s/cold", "b"), now, &batch, &empty.1), "a cold shard fills a 500-record batch");
        assert!(r.admits(&entry(5, "s/hot", "a"), until, &empty.0, &empty.1), "the hot shard opens after its backoff");
        assert_eq!(r.limit(&hot), Some(3960), "one throttle lowers the shard's limit by the factor given (0.99 here)");
    }

    #[test]
    fn throttles_of_one_blocked_period_lower_the_limit_once() {
        let mut r = rates(false);
        let now = Instant::now();
        let hot: Arc<str> = "s/hot".into();
        r.throttled(&hot, now);
        r.throttled(&hot, now);
        assert_eq!(r.limit(&hot), Some(3960));
        r.stored(&hot);
        assert_eq!(r.limit(&hot), Some(3970), "success adds Flink's 10 records");
    }

    #[test]
    fn in_ordering_mode_one_record_per_key_is_out_at_a_time() {
        let mut r = rates(true);
        let now = Instant::now();
        let (none, no_keys) = (HashMap::new(), HashSet::new());
        let first = entry(1, "s/0", "k");
        let second = entry(2, "s/0", "k");
        r.sent(&first);
        assert!(!r.admits(&second, now, &none, &no_keys), "a later record of the key waits for the first");
        r.returned(&first);
        assert!(!r.admits(&second, now, &none, &no_keys), "still waiting: the first may be retried");
        assert!(r.admits(&first, now, &none, &no_keys), "the first may be sent again (its retry)");
        r.done(&first);
        assert!(r.admits(&second, now, &none, &no_keys));
        let mut in_batch = HashSet::new();
        in_batch.insert("k".to_string());
        assert!(!r.admits(&second, now, &none, &in_batch), "one record of a key per request");
    }
}
