//! Which shard a record goes to: the MD5 of its partition key (or its explicit hash key) against
//! the hash-key ranges of the stream's open shards, as Kinesis maps them. The writer uses it to
//! pace and order records per shard.

use std::sync::Arc;

use aws_sdk_kinesis::Client;
use md5::{Digest, Md5};
use rill_kinesis_common::list_all_shards;

/// The open shards of one stream, by hash-key range.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardMap {
    /// `(first hash key, last hash key, "stream/shard id")`, sorted by first hash key.
    shards: Vec<(u128, u128, Arc<str>)>,
}

/// The 128-bit hash key of a record: its explicit hash key if given, else the MD5 of the
/// partition key read as a big-endian number.
pub(crate) fn hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> u128 {
    if let Some(key) = explicit_hash_key.and_then(|k| k.trim().parse().ok()) {
        return key;
    }
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

impl ShardMap {
    /// A map from `(first, last, shard id)` ranges of open shards of `stream`.
    pub(crate) fn new(stream: &str, ranges: impl IntoIterator<Item = (u128, u128, String)>) -> Self {
        let mut shards: Vec<(u128, u128, Arc<str>)> =
            ranges.into_iter().map(|(a, b, id)| (a, b, Arc::from(format!("{stream}/{id}").as_str()))).collect();
        shards.sort_by_key(|s| s.0);
        ShardMap { shards }
    }

    /// The shard (`stream/shard id`) whose range holds `hash`.
    pub(crate) fn shard_of(&self, hash: u128) -> Option<Arc<str>> {
        let index = self.shards.partition_point(|s| s.0 <= hash).checked_sub(1)?;
        let (_, last, id) = &self.shards[index];
        (hash <= *last).then(|| id.clone())
    }

    /// Whether the map knows no shard.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
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
    Ok(ShardMap::new(stream, ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarters() -> ShardMap {
        let q = 1u128 << 126;
        ShardMap::new(
            "s",
            (0..4u128).map(|i| (i * q, if i == 3 { u128::MAX } else { (i + 1) * q - 1 }, format!("{i}"))),
        )
    }

    #[test]
    fn a_partition_key_maps_to_the_shard_holding_its_md5() {
        let map = quarters();
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661: the first quarter.
        assert_eq!(map.shard_of(hash_key("a", None)).as_deref(), Some("s/0"));
        // MD5("b") = 92eb5ffee6ae2fec3ad71c777531578f: the third quarter.
        assert_eq!(map.shard_of(hash_key("b", None)).as_deref(), Some("s/2"));
    }

    #[test]
    fn an_explicit_hash_key_overrides_the_partition_key() {
        let map = quarters();
        assert_eq!(
            map.shard_of(hash_key("a", Some("340282366920938463463374607431768211455"))).as_deref(),
            Some("s/3")
        );
        assert_eq!(map.shard_of(hash_key("b", Some("0"))).as_deref(), Some("s/0"));
    }

    #[test]
    fn a_hash_outside_every_open_shard_maps_to_none() {
        let map = ShardMap::new("s", [(10u128, 20u128, "x".to_string())]);
        assert!(map.shard_of(5).is_none());
        assert!(map.shard_of(21).is_none());
        assert_eq!(map.shard_of(20).as_deref(), Some("s/x"));
    }
}
