//! Partition key -> shard, read off the JSON of the Kinesis API: the hash key of a PutRecords
//! entry and the open shards of a ListShards answer (the mapping itself is `rill-kinesis-common`'s).

use rill_kinesis_common::{hash_key_of_partition_key, parse_explicit_hash_key};
use serde_json::Value;

/// An open shard: its first and last (inclusive) hash keys and its id (`shardId-000000000001`).
pub(crate) type ShardRange = (u128, u128, String);

/// The hash key of a PutRecord request or PutRecords entry: its `ExplicitHashKey` (a decimal
/// number) if given, else the MD5 of its `PartitionKey`. `None` if it has neither, or a
/// malformed explicit key.
pub(crate) fn hash_key_of_entry(entry: &Value) -> Option<u128> {
    match entry.get("ExplicitHashKey").and_then(Value::as_str) {
        Some(explicit) => parse_explicit_hash_key(explicit),
        None => entry.get("PartitionKey").and_then(Value::as_str).map(hash_key_of_partition_key),
    }
}

/// The open shards of one ListShards answer (closed shards, those with an
/// `EndingSequenceNumber`, take no writes). Shards with malformed ranges are skipped.
pub(crate) fn open_shard_ranges(list_shards_answer: &Value) -> Vec<ShardRange> {
    let Some(shards) = list_shards_answer.get("Shards").and_then(Value::as_array) else {
        return Vec::new();
    };
    shards
        .iter()
        .filter(|shard| shard.pointer("/SequenceNumberRange/EndingSequenceNumber").is_none_or(Value::is_null))
        .filter_map(|shard| {
            let bound = |name: &str| shard.get("HashKeyRange")?.get(name)?.as_str()?.parse::<u128>().ok();
            Some((bound("StartingHashKey")?, bound("EndingHashKey")?, shard.get("ShardId")?.as_str()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rill_kinesis_common::ShardRanges;
    use serde_json::json;

    use super::*;

    fn shard_for(ranges: &ShardRanges<String>, hash_key: u128) -> Option<&str> {
        ranges.shard_of(hash_key).map(String::as_str)
    }

    /// A ListShards answer for a stream of 4 shards splitting the hash key space evenly, as
    /// CreateStream makes it.
    fn four_shards() -> Value {
        let quarter = 1u128 << 126;
        let shards: Vec<Value> = (0..4u128)
            .map(|i| {
                let end = if i == 3 { u128::MAX } else { (i + 1) * quarter - 1 };
                json!({
                    "ShardId": format!("shardId-{i:012}"),
                    "HashKeyRange": { "StartingHashKey": (i * quarter).to_string(), "EndingHashKey": end.to_string() },
                    "SequenceNumberRange": { "StartingSequenceNumber": "49000000000000000000000000000000000000000000000000000000" }
                })
            })
            .collect();
        json!({ "Shards": shards })
    }

    #[test]
    fn a_partition_key_lands_in_the_shard_holding_its_md5() {
        let listed = open_shard_ranges(&four_shards());
        assert_eq!(listed.len(), 4);
        let ranges = ShardRanges::new(listed);
        let shard = |key: &str| shard_for(&ranges, hash_key_of_entry(&json!({ "PartitionKey": key })).unwrap_or(0));
        assert_eq!(shard("a"), Some("shardId-000000000000")); // md5 starts with 0x0c
        assert_eq!(shard("hello"), Some("shardId-000000000001")); // 0x5d
        assert_eq!(shard("key-0"), Some("shardId-000000000002")); // 0xb4
        assert_eq!(shard("key-8"), Some("shardId-000000000003")); // 0xca
    }

    #[test]
    fn an_explicit_hash_key_wins_over_the_partition_key() {
        let ranges = ShardRanges::new(open_shard_ranges(&four_shards()));
        let entry = json!({ "PartitionKey": "a", "ExplicitHashKey": u128::MAX.to_string() });
        assert_eq!(hash_key_of_entry(&entry), Some(u128::MAX));
        assert_eq!(shard_for(&ranges, u128::MAX), Some("shardId-000000000003"));
        let boundary = json!({ "PartitionKey": "a", "ExplicitHashKey": (1u128 << 126).to_string() });
        assert_eq!(hash_key_of_entry(&boundary).and_then(|k| shard_for(&ranges, k)), Some("shardId-000000000001"));
    }

    #[test]
    fn a_malformed_explicit_hash_key_has_no_hash_key() {
        assert_eq!(hash_key_of_entry(&json!({ "PartitionKey": "a", "ExplicitHashKey": "-1" })), None);
        assert_eq!(hash_key_of_entry(&json!({ "Data": "" })), None);
    }

    #[test]
    fn closed_shards_take_no_writes() {
        let answer = json!({ "Shards": [
            { "ShardId": "shardId-000000000000",
              "HashKeyRange": { "StartingHashKey": "0", "EndingHashKey": u128::MAX.to_string() },
              "SequenceNumberRange": { "StartingSequenceNumber": "1", "EndingSequenceNumber": "9" } },
            { "ShardId": "shardId-000000000001",
              "HashKeyRange": { "StartingHashKey": "0", "EndingHashKey": u128::MAX.to_string() },
              "SequenceNumberRange": { "StartingSequenceNumber": "10" } }
        ]});
        let listed = open_shard_ranges(&answer);
        assert_eq!(listed.len(), 1);
        assert_eq!(shard_for(&ShardRanges::new(listed), 42), Some("shardId-000000000001"));
    }
}
