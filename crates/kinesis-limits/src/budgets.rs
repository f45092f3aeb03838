//! The budgets of every shard and control-plane operation, the iterator table and the stats:
//! the proxy's whole mutable state, kept behind one lock and never held across an await.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::bucket::TokenBucket;
use crate::iterators::{IteratorTable, ShardKey, ITERATOR_TTL};
use crate::limits::{control_limit, Limits, GET_SHARD_ITERATOR_PER_SHARD};
use crate::stats::{ShardStats, Stats};

/// Why a GetRecords call was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ReadRefusal {
    /// The shard's calls per second are used up.
    Calls,
    /// The shard's bytes are used up (the balance is not positive) for this long yet.
    Bytes(Duration),
}

/// One shard's buckets.
#[derive(Debug)]
struct ShardBudget {
    read_calls: TokenBucket,
    read_bytes: TokenBucket,
    iterator_calls: TokenBucket,
    write_records: TokenBucket,
    write_bytes: TokenBucket,
    /// Times of the GetRecords calls admitted in the last second.
    recent_reads: VecDeque<Instant>,
}

impl ShardBudget {
    fn new(limits: &Limits, now: Instant) -> Self {
        ShardBudget {
            read_calls: TokenBucket::per_second(f64::from(limits.reads_per_shard), now),
            read_bytes: TokenBucket::per_second(limits.read_bytes_per_shard as f64, now),
            iterator_calls: TokenBucket::per_second(GET_SHARD_ITERATOR_PER_SHARD, now),
            write_records: TokenBucket::per_second(f64::from(limits.write_records_per_shard), now),
            write_bytes: TokenBucket::per_second(limits.write_bytes_per_shard as f64, now),
            recent_reads: VecDeque::new(),
        }
    }

    /// Records an admitted read; returns the number admitted in the last second, this one included.
    fn count_read(&mut self, now: Instant) -> u32 {
        while self.recent_reads.front().is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1)) {
            self.recent_reads.pop_front();
        }
        self.recent_reads.push_back(now);
        u32::try_from(self.recent_reads.len()).unwrap_or(u32::MAX)
    }
}

/// Budgets, iterators and stats.
#[derive(Debug)]
pub(crate) struct Budgets {
    limits: Limits,
    shards: HashMap<ShardKey, ShardBudget>,
    control: HashMap<(String, String), TokenBucket>,
    iterators: IteratorTable,
    stats: Stats,
}

impl Budgets {
    /// Full budgets for `limits`.
    pub(crate) fn new(limits: Limits, now: Instant) -> Self {
        Budgets {
            limits,
            shards: HashMap::new(),
            control: HashMap::new(),
            iterators: IteratorTable::new(ITERATOR_TTL, now),
            stats: Stats::default(),
        }
    }

    fn shard(&mut self, shard: &ShardKey, now: Instant) -> (&mut ShardBudget, &mut ShardStats) {
        let limits = &self.limits;
        let budget = self.shards.entry(shard.clone()).or_insert_with(|| ShardBudget::new(limits, now));
        let stats = self.stats.shards.entry(shard.label()).or_default();
        (budget, stats)
    }

    /// Admits a GetRecords call on `shard` if it has a call token and a positive byte balance;
    /// only an admitted call takes a token.
    pub(crate) fn admit_get_records(&mut self, shard: &ShardKey, now: Instant) -> Result<(), ReadRefusal> {
        let (budget, stats) = self.shard(shard, now);
        let refusal = if budget.read_bytes.balance(now) <= 0.0 {
            Some(ReadRefusal::Bytes(budget.read_bytes.time_until_positive(now)))
        } else if !budget.read_calls.try_take(1.0, now) {
            Some(ReadRefusal::Calls)
        } else {
            None
        };
        match refusal {
            Some(refusal) => {
                stats.get_records_throttled += 1;
                self.stats.get_records_throttled += 1;
                Err(refusal)
            }
            None => {
                stats.get_records_calls += 1;
                let in_last_second = budget.count_read(now);
                stats.max_get_records_calls_in_one_second =
                    stats.max_get_records_calls_in_one_second.max(in_last_second);
                self.stats.get_records_admitted += 1;
                Ok(())
            }
        }
    }

    /// Charges the data of a GetRecords answer to `shard` (the balance may go negative).
    pub(crate) fn charge_read(&mut self, shard: &ShardKey, bytes: u64, records: u64, now: Instant) {
        let (budget, stats) = self.shard(shard, now);
        budget.read_bytes.charge(bytes as f64, now);
        stats.bytes_read += bytes;
        stats.records_read += records;
    }

    /// Admits a GetShardIterator call on `shard` (5 per second).
    pub(crate) fn admit_get_shard_iterator(&mut self, shard: &ShardKey, now: Instant) -> bool {
        let (budget, _) = self.shard(shard, now);
        let admitted = budget.iterator_calls.try_take(1.0, now);
        if !admitted {
            self.stats.get_shard_iterator_throttled += 1;
        }
        admitted
    }

    /// Admits one record of `bytes` (data plus partition key) for `shard` if both the record
    /// and the byte budget allow it; takes from both only then.
    pub(crate) fn admit_put_entry(&mut self, shard: &ShardKey, bytes: u64, now: Instant) -> bool {
        let (budget, stats) = self.shard(shard, now);
        let admitted = budget.write_records.can_take(1.0, now) && budget.write_bytes.can_take(bytes as f64, now);
        if admitted {
            budget.write_records.try_take(1.0, now);
            budget.write_bytes.try_take(bytes as f64, now);
            stats.put_entries += 1;
            stats.put_bytes += bytes;
            self.stats.put_entries_admitted += 1;
        } else {
            stats.put_throttled += 1;
            self.stats.put_entries_throttled += 1;
        }
        admitted
    }

    /// Admits a control-plane call of `operation` counted per `scope_key` (the stream, the
    /// consumer and shard, or empty for the account). Operations without a limit are admitted.
    pub(crate) fn admit_control(&mut self, operation: &str, scope_key: &str, now: Instant) -> bool {
        let Some(limit) = control_limit(operation) else {
            return true;
        };
        let scale = self.limits.control_plane_scale;
        let bucket = self
            .control
            .entry((operation.to_string(), scope_key.to_string()))
            .or_insert_with(|| TokenBucket::new((limit.burst * scale).max(1.0), limit.rate * scale, now));
        let admitted = bucket.try_take(1.0, now);
        if !admitted {
            self.stats.control_plane_throttled += 1;
        }
        admitted
    }

    /// Counts a GetRecords call with an iterator of unknown shard.
    pub(crate) fn note_unknown_iterator(&mut self) {
        self.stats.unknown_iterators += 1;
    }

    /// Remembers that `iterator` reads `shard`.
    pub(crate) fn remember_iterator(&mut self, iterator: &str, shard: ShardKey, now: Instant) {
        self.iterators.remember(iterator, shard, now);
    }

    /// The shard `iterator` reads, if the proxy handed it out less than 6 minutes ago.
    pub(crate) fn shard_of_iterator(&self, iterator: &str, now: Instant) -> Option<ShardKey> {
        self.iterators.shard_of(iterator, now).cloned()
    }

    /// A copy of the stats.
    pub(crate) fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> ShardKey {
        ShardKey::new("s", "shardId-000000000000")
    }

    #[test]
    fn a_shard_in_byte_debt_refuses_reads_and_says_for_how_long() {
        let now = Instant::now();
        let limits = Limits { read_bytes_per_shard: 1000, ..Limits::default() };
        let mut budgets = Budgets::new(limits, now);
        assert_eq!(budgets.admit_get_records(&shard(), now), Ok(()));
        budgets.charge_read(&shard(), 3000, 10, now);
        assert_eq!(budgets.admit_get_records(&shard(), now), Err(ReadRefusal::Bytes(Duration::from_secs(2))));
        let other = ShardKey::new("s", "shardId-000000000001");
        assert_eq!(budgets.admit_get_records(&other, now), Ok(()), "another shard is unaffected");
        let stats = budgets.stats();
        assert_eq!((stats.get_records_admitted, stats.get_records_throttled), (2, 1));
        let first = stats.shard("s", "shardId-000000000000").cloned().unwrap_or_default();
        assert_eq!((first.bytes_read, first.records_read, first.get_records_throttled), (3000, 10, 1));
    }

    #[test]
    fn the_busiest_second_of_reads_is_recorded() {
        let now = Instant::now();
        let mut budgets = Budgets::new(Limits::default(), now);
        for i in 0..20u32 {
            let _ = budgets.admit_get_records(&shard(), now + Duration::from_millis(u64::from(i) * 100));
        }
        let stats = budgets.stats();
        let max = stats.shard("s", "shardId-000000000000").map(|s| s.max_get_records_calls_in_one_second);
        // 5 at once from the full bucket, then one per 200 ms: at most 9 in a sliding second.
        assert!(max.is_some_and(|m| (5..=9).contains(&m)), "{max:?}");
    }

    #[test]
    fn a_put_entry_needs_both_a_record_token_and_its_bytes() {
        let now = Instant::now();
        let limits = Limits { write_records_per_shard: 2, write_bytes_per_shard: 100, ..Limits::default() };
        let mut budgets = Budgets::new(limits, now);
        assert!(budgets.admit_put_entry(&shard(), 60, now));
        assert!(!budgets.admit_put_entry(&shard(), 60, now), "only 40 bytes left");
        assert!(budgets.admit_put_entry(&shard(), 40, now));
        assert!(!budgets.admit_put_entry(&shard(), 0, now), "no record token left");
        let stats = budgets.stats();
        assert_eq!((stats.put_entries_admitted, stats.put_entries_throttled), (2, 2));
        let per_shard = stats.shard("s", "shardId-000000000000").cloned().unwrap_or_default();
        assert_eq!((per_shard.put_entries, per_shard.put_bytes, per_shard.put_throttled), (2, 100, 2));
    }

    #[test]
    fn an_eleventh_describe_stream_in_one_second_exceeds_the_limit() {
        let now = Instant::now();
        let mut budgets = Budgets::new(Limits::default(), now);
        for _ in 0..10 {
            assert!(budgets.admit_control("DescribeStream", "", now));
        }
        assert!(!budgets.admit_control("DescribeStream", "", now));
        assert!(budgets.admit_control("CreateStream", "", now), "unlimited operations pass");
        assert_eq!(budgets.stats().control_plane_throttled, 1);
    }

    #[test]
    fn list_stream_consumers_is_limited_per_stream() {
        let now = Instant::now();
        let mut budgets = Budgets::new(Limits::default(), now);
        for _ in 0..5 {
            assert!(budgets.admit_control("ListStreamConsumers", "a", now));
        }
        assert!(!budgets.admit_control("ListStreamConsumers", "a", now));
        assert!(budgets.admit_control("ListStreamConsumers", "b", now));
    }

    #[test]
    fn the_control_plane_scale_multiplies_the_rates() {
        let now = Instant::now();
        let mut budgets = Budgets::new(Limits { control_plane_scale: 2.0, ..Limits::default() }, now);
        for _ in 0..20 {
            assert!(budgets.admit_control("DescribeStream", "", now));
        }
        assert!(!budgets.admit_control("DescribeStream", "", now));
    }

    #[test]
    fn a_sixth_get_shard_iterator_in_one_second_is_throttled() {
        let now = Instant::now();
        let mut budgets = Budgets::new(Limits::default(), now);
        for _ in 0..5 {
            assert!(budgets.admit_get_shard_iterator(&shard(), now));
        }
        assert!(!budgets.admit_get_shard_iterator(&shard(), now));
        assert_eq!(budgets.stats().get_shard_iterator_throttled, 1);
    }
}
