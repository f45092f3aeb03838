//! What the proxy admitted and throttled, in total and per shard.

use std::collections::BTreeMap;

use serde::Serialize;

/// A snapshot of the proxy's counters since it started (see [`crate::LimitsProxy::stats`], or
/// `GET /_limits/stats` on the proxy's port for the same as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// GetRecords calls on a known shard that were forwarded.
    pub get_records_admitted: u64,
    /// GetRecords calls answered `ProvisionedThroughputExceededException`.
    pub get_records_throttled: u64,
    /// GetShardIterator calls answered `ProvisionedThroughputExceededException`.
    pub get_shard_iterator_throttled: u64,
    /// PutRecords entries and PutRecord calls forwarded.
    pub put_entries_admitted: u64,
    /// PutRecords entries and PutRecord calls refused as throttled.
    pub put_entries_throttled: u64,
    /// Control-plane calls answered `LimitExceededException`.
    pub control_plane_throttled: u64,
    /// GetRecords calls with an iterator the proxy never handed out (or older than 6 minutes),
    /// forwarded without limits.
    pub unknown_iterators: u64,
    /// Per shard, keyed `stream/shardId`.
    pub shards: BTreeMap<String, ShardStats>,
}

/// The counters of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStats {
    /// GetRecords calls admitted.
    pub get_records_calls: u64,
    /// GetRecords calls throttled.
    pub get_records_throttled: u64,
    /// Record data bytes returned by GetRecords.
    pub bytes_read: u64,
    /// Records returned by GetRecords.
    pub records_read: u64,
    /// Entries admitted for writing.
    pub put_entries: u64,
    /// Bytes (data plus partition key) of the entries admitted for writing.
    pub put_bytes: u64,
    /// Entries refused as throttled.
    pub put_throttled: u64,
    /// The most GetRecords calls admitted within any sliding one-second window.
    pub max_get_records_calls_in_one_second: u32,
}

impl Stats {
    /// The counters of `stream`'s `shard_id`, if the proxy has seen it.
    pub fn shard(&self, stream: &str, shard_id: &str) -> Option<&ShardStats> {
        self.shards.get(&format!("{stream}/{shard_id}"))
    }

    /// Calls and entries throttled in all.
    pub fn throttled_total(&self) -> u64 {
        self.get_records_throttled
            + self.get_shard_iterator_throttled
            + self.put_entries_throttled
            + self.control_plane_throttled
    }

    /// A one-line summary of what happened since the `earlier` snapshot, or `None` if nothing
    /// did. Names the shards throttled most in that time.
    pub fn summary_since(&self, earlier: &Stats) -> Option<String> {
        if self == earlier {
            return None;
        }
        let mut line = format!(
            "GetRecords {} admitted, {} throttled; GetShardIterator {} throttled; put entries {} admitted, {} \
             throttled; control plane {} throttled; unknown iterators {}",
            self.get_records_admitted.saturating_sub(earlier.get_records_admitted),
            self.get_records_throttled.saturating_sub(earlier.get_records_throttled),
            self.get_shard_iterator_throttled.saturating_sub(earlier.get_shard_iterator_throttled),
            self.put_entries_admitted.saturating_sub(earlier.put_entries_admitted),
            self.put_entries_throttled.saturating_sub(earlier.put_entries_throttled),
            self.control_plane_throttled.saturating_sub(earlier.control_plane_throttled),
            self.unknown_iterators.saturating_sub(earlier.unknown_iterators),
        );
        let mut throttled: Vec<(&str, u64, u64)> = self
            .shards
            .iter()
            .map(|(name, now)| {
                let before = earlier.shards.get(name).cloned().unwrap_or_default();
                (
                    name.as_str(),
                    now.get_records_throttled.saturating_sub(before.get_records_throttled),
                    now.put_throttled.saturating_sub(before.put_throttled),
                )
            })
            .filter(|(_, reads, writes)| reads + writes > 0)
            .collect();
        throttled.sort_by_key(|(name, reads, writes)| (std::cmp::Reverse(reads + writes), *name));
        if !throttled.is_empty() {
            let shown: Vec<String> = throttled
                .iter()
                .take(5)
                .map(|(name, reads, writes)| format!("{name} ({reads} reads, {writes} writes)"))
                .collect();
            line.push_str("; most throttled: ");
            line.push_str(&shown.join(", "));
            if throttled.len() > shown.len() {
                line.push_str(&format!(" and {} more shards", throttled.len() - shown.len()));
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_changed_means_no_summary() {
        let stats = Stats { get_records_admitted: 3, ..Stats::default() };
        assert_eq!(stats.summary_since(&stats.clone()), None);
    }

    #[test]
    fn a_summary_counts_since_the_earlier_snapshot_and_names_the_most_throttled_shard() {
        let earlier = Stats { get_records_admitted: 10, get_records_throttled: 1, ..Stats::default() };
        let mut now = Stats { get_records_admitted: 15, get_records_throttled: 4, ..Stats::default() };
        now.shards
            .insert("s/shardId-000000000001".into(), ShardStats { get_records_throttled: 3, ..Default::default() });
        now.shards.insert("s/shardId-000000000000".into(), ShardStats { get_records_calls: 5, ..Default::default() });
        let line = now.summary_since(&earlier).expect("something changed");
        assert!(line.starts_with("GetRecords 5 admitted, 3 throttled"), "{line}");
        assert!(line.ends_with("most throttled: s/shardId-000000000001 (3 reads, 0 writes)"), "{line}");
        assert_eq!(now.throttled_total(), 4);
        assert_eq!(now.shard("s", "shardId-000000000001").map(|s| s.get_records_throttled), Some(3));
    }

    #[test]
    fn stats_serialize_to_json_with_their_field_names() {
        let mut stats = Stats { unknown_iterators: 2, ..Stats::default() };
        stats.shards.insert("s/shardId-000000000000".into(), ShardStats { bytes_read: 7, ..Default::default() });
        let json = serde_json::to_value(&stats).expect("serializable");
        assert_eq!(json["unknown_iterators"], 2);
        assert_eq!(json["shards"]["s/shardId-000000000000"]["bytes_read"], 7);
    }
}
