//! Iterator -> shard tracking: GetRecords carries only a shard iterator, so the proxy remembers
//! the shard of every iterator it has handed out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an iterator is remembered (AWS iterators expire after 5 minutes).
pub(crate) const ITERATOR_TTL: Duration = Duration::from_secs(6 * 60);

/// How often expired entries are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// A stream and one of its shards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ShardKey {
    /// The stream name.
    pub(crate) stream: String,
    /// The shard id.
    pub(crate) shard_id: String,
}

impl ShardKey {
    /// A key for `stream`'s `shard_id`.
    pub(crate) fn new(stream: &str, shard_id: &str) -> Self {
        ShardKey { stream: stream.to_string(), shard_id: shard_id.to_string() }
    }

    /// `stream/shardId`, as the stats name shards.
    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.stream, self.shard_id)
    }
}

/// Iterators handed out (by GetShardIterator, or as a GetRecords `NextShardIterator`) and the
/// shard each reads.
#[derive(Debug)]
pub(crate) struct IteratorTable {
    entries: HashMap<String, (ShardKey, Instant)>,
    ttl: Duration,
    last_sweep: Instant,
}

impl IteratorTable {
    /// An empty table forgetting iterators `ttl` after they were handed out.
    pub(crate) fn new(ttl: Duration, now: Instant) -> Self {
        IteratorTable { entries: HashMap::new(), ttl, last_sweep: now }
    }

    /// Remembers that `iterator` reads `shard`.
    pub(crate) fn remember(&mut self, iterator: &str, shard: ShardKey, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY {
            let ttl = self.ttl;
            self.entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            self.last_sweep = now;
        }
        self.entries.insert(iterator.to_string(), (shard, now));
    }

    /// The shard `iterator` reads, unless it is unknown or expired.
    pub(crate) fn shard_of(&self, iterator: &str, now: Instant) -> Option<&ShardKey> {
        self.entries
            .get(iterator)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(shard, _)| shard)
    }

    /// How many iterators are remembered (expired ones until swept included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iterator_handed_out_by_get_shard_iterator_names_its_shard() {
        let now = Instant::now();
        let mut table = IteratorTable::new(ITERATOR_TTL, now);
        table.remember("it-1", ShardKey::new("orders", "shardId-000000000001"), now);
        assert_eq!(table.shard_of("it-1", now), Some(&ShardKey::new("orders", "shardId-000000000001")));
        assert_eq!(table.shard_of("it-2", now), None);
    }

    #[test]
    fn a_next_shard_iterator_reads_the_same_shard_as_the_one_before() {
        let now = Instant::now();
        let mut table = IteratorTable::new(ITERATOR_TTL, now);
        let shard = ShardKey::new("orders", "shardId-000000000003");
        table.remember("first", shard.clone(), now);
        let of_first = table.shard_of("first", now).cloned().expect("known");
        table.remember("second", of_first, now + Duration::from_secs(1));
        assert_eq!(table.shard_of("second", now + Duration::from_secs(1)), Some(&shard));
        assert_eq!(table.shard_of("first", now + Duration::from_secs(1)), Some(&shard), "a retry may reuse it");
    }

    #[test]
    fn an_iterator_is_forgotten_after_six_minutes() {
        let now = Instant::now();
        let mut table = IteratorTable::new(ITERATOR_TTL, now);
        table.remember("old", ShardKey::new("s", "shardId-000000000000"), now);
        assert!(table.shard_of("old", now + Duration::from_secs(5 * 60)).is_some());
        assert!(table.shard_of("old", now + Duration::from_secs(6 * 60)).is_none());
        table.remember("new", ShardKey::new("s", "shardId-000000000000"), now + Duration::from_secs(6 * 60));
        assert_eq!(table.len(), 1, "the expired entry was swept out");
    }

    #[test]
    fn a_shard_is_labelled_stream_slash_shard_id() {
        assert_eq!(ShardKey::new("orders", "shardId-000000000002").label(), "orders/shardId-000000000002");
    }
}
