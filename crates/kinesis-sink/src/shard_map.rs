//! Which shard a record goes to: the MD5 of its partition key (or its explicit hash key) against
//! the hash-key ranges of the stream's open shards, as Kinesis maps them. The writer uses it to
//! pace and order records per shard.

use std::sync::Arc;

use aws_sdk_kinesis::Client;
use rill_kinesis_common::{hash_key_of_partition_key, list_all_shards, parse_explicit_hash_key, ShardRanges};

/// The open shards of one stream, by hash-key range, each named `stream/shard id`.
pub(crate) type ShardMap = ShardRanges<Arc<str>>;

/// The 128-bit hash key of a record: its explicit hash key if given (and well formed), else the
/// MD5 of the partition key.
pub(crate) fn hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> u128 {
    explicit_hash_key.and_then(parse_explicit_hash_key).unwrap_or_else(|| hash_key_of_partition_key(partition_key))
}

/// A map from `(first, last, shard id)` ranges of open shards of `stream`.
pub(crate) fn shard_map(stream: &str, ranges: impl IntoIterator<Item = (u128, u128, String)>) -> ShardMap {
    ShardRanges::new(ranges.into_iter().map(|(a, b, id)| (a, b, Arc::from(format!("{stream}/{id}").as_str()))))
}

/// Lists the open shards of `stream`.
pub(crate) async fn load(client: &Client, stream: &str) -> Result<ShardMap, rill_kinesis_common::Error> {
    let mut ranges = Vec::new();
    for shard in list_all_shards(client, stream).await? {
        let open = shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_none();
        let range = shard.hash_key_range();
        let start = range.and_then(|r| r.starting_hash_key().parse::<u128>().ok());
        let end = range.and_then(|r| r.ending_hash_key().parse::<u128>().ok());
        if let (true, Some(start), Some(end)) = (open, start, end) {
            ranges.push((start, end, shard.shard_id().to_string()));
        }
    }
    Ok(shard_map(stream, ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarters() -> ShardMap {
        let q = 1u128 << 126;
        shard_map("s", (0..4u128).map(|i| (i * q, if i == 3 { u128::MAX } else { (i + 1) * q - 1 }, format!("{i}"))))
    }

    #[test]
    fn a_partition_key_maps_to_the_shard_holding_its_md5() {
        let map = quarters();
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661: the first quarter.
        assert_eq!(map.shard_of(hash_key("a", None)).map(|s| &**s), Some("s/0"));
        // MD5("b") = 92eb5ffee6ae2fec3ad71c777531578f: the third quarter.
        assert_eq!(map.shard_of(hash_key("b", None)).map(|s| &**s), Some("s/2"));
    }

    #[test]
    fn an_explicit_hash_key_overrides_the_partition_key() {
        let map = quarters();
        assert_eq!(
            map.shard_of(hash_key("a", Some("340282366920938463463374607431768211455"))).map(|s| &**s),
            Some("s/3")
        );
        assert_eq!(map.shard_of(hash_key("b", Some("0"))).map(|s| &**s), Some("s/0"));
    }

    #[test]
    fn a_hash_outside_every_open_shard_maps_to_none() {
        let map = shard_map("s", [(10u128, 20u128, "x".to_string())]);
        assert!(map.shard_of(5).is_none());
        assert!(map.shard_of(21).is_none());
        assert_eq!(map.shard_of(20).map(|s| &**s), Some("s/x"));
    }
}
