//! Partition key -> shard: the 128-bit hash key of a record and the shard whose hash key range
//! holds it.

use md5::{Digest, Md5};
use serde_json::Value;

/// An open shard and the hash keys it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardRange {
    /// E.g. `shardId-000000000001`.
    pub(crate) shard_id: String,
    /// The first hash key of the shard.
    pub(crate) start: u128,
    /// The last hash key of the shard (inclusive).
    pub(crate) end: u128,
}

/// The MD5 of a partition key (its UTF-8 bytes) read as a big-endian 128-bit number, as
/// Kinesis maps partition keys to hash keys.
pub(crate) fn hash_key_of_partition_key(partition_key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// The hash key of a PutRecord request or PutRecords entry: its `ExplicitHashKey` (a decimal
/// number) if given, else the MD5 of its `PartitionKey`. `None` if it has neither, or a
/// malformed explicit key.
pub(crate) fn hash_key_of_entry(entry: &Value) -> Option<u128> {
    match entry.get("ExplicitHashKey").and_then(Value::as_str) {
        Some(explicit) => explicit.trim().parse().ok(),
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
            Some(ShardRange {
                shard_id: shard.get("ShardId")?.as_str()?.to_string(),
                start: bound("StartingHashKey")?,
                end: bound("EndingHashKey")?,
            })
        })
        .collect()
}

/// The shard whose range holds `hash_key`.
pub(crate) fn shard_for(ranges: &[ShardRange], hash_key: u128) -> Option<&str> {
    ranges.iter().find(|r| r.start <= hash_key && hash_key <= r.end).map(|r| r.shard_id.as_str())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
    fn the_md5_of_a_partition_key_is_its_hash_key() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key_of_partition_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(hash_key_of_partition_key("key-8"), 269571179198130806835579616795946872315);
    }

    #[test]
    fn a_partition_key_lands_in_the_shard_holding_its_md5() {
        let ranges = open_shard_ranges(&four_shards());
        assert_eq!(ranges.len(), 4);
        let shard = |key: &str| shard_for(&ranges, hash_key_of_entry(&json!({ "PartitionKey": key })).unwrap_or(0));
        assert_eq!(shard("a"), Some("shardId-000000000000")); // md5 starts with 0x0c
        assert_eq!(shard("hello"), Some("shardId-000000000001")); // 0x5d
        assert_eq!(shard("key-0"), Some("shardId-000000000002")); // 0xb4
        assert_eq!(shard("key-8"), Some("shardId-000000000003")); // 0xca
    }

    #[test]
    fn an_explicit_hash_key_wins_over_the_partition_key() {
        let ranges = open_shard_ranges(&four_shards());
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
        let ranges = open_shard_ranges(&answer);
        assert_eq!(shard_for(&ranges, 42), Some("shardId-000000000001"));
        assert_eq!(ranges.len(), 1);
    }
}
