//! How Kinesis maps a record to a shard: the record's 128-bit hash key (its explicit hash key,
//! or the MD5 of its partition key) against the hash-key ranges of the stream's open shards.
//! The sink, the source's KPL de-aggregation and the limits proxy all use this one mapping.

use md5::{Digest, Md5};

/// The MD5 of a partition key (its UTF-8 bytes) read as a big-endian 128-bit number, as Kinesis
/// maps partition keys to hash keys.
///
/// ```
/// // md5("a") = 0cc175b9c0f1b6a831c399e269772661
/// assert_eq!(rill_kinesis_common::hash_key_of_partition_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
/// ```
pub fn hash_key_of_partition_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// An explicit hash key (a decimal number, surrounding spaces allowed), or `None` if malformed.
pub fn parse_explicit_hash_key(explicit_hash_key: &str) -> Option<u128> {
    explicit_hash_key.trim().parse().ok()
}

/// The open shards of a stream by hash-key range: which shard takes a hash key.
#[derive(Debug, Clone)]
pub struct ShardRanges<Id> {
    /// `(first hash key, last hash key, shard)`, sorted by first hash key.
    ranges: Vec<(u128, u128, Id)>,
}

impl<Id> Default for ShardRanges<Id> {
    fn default() -> Self {
        ShardRanges { ranges: Vec::new() }
    }
}

impl<Id> ShardRanges<Id> {
    /// The shards `(first hash key, last hash key inclusive, shard)` (open shards only: closed
    /// ones take no writes).
    pub fn new(ranges: impl IntoIterator<Item = (u128, u128, Id)>) -> Self {
        let mut ranges: Vec<_> = ranges.into_iter().collect();
        ranges.sort_by_key(|r| r.0);
        ShardRanges { ranges }
    }

    /// The shard whose range holds `hash_key`.
    pub fn shard_of(&self, hash_key: u128) -> Option<&Id> {
        let index = self.ranges.partition_point(|r| r.0 <= hash_key).checked_sub(1)?;
        let (_, last, id) = &self.ranges[index];
        (hash_key <= *last).then_some(id)
    }

    /// Whether no shard is known.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_md5_of_a_partition_key_is_its_hash_key() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key_of_partition_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(hash_key_of_partition_key("key-8"), 269571179198130806835579616795946872315);
    }

    #[test]
    fn a_hash_key_belongs_to_the_shard_whose_range_holds_it_and_gaps_belong_to_none() {
        let shards = ShardRanges::new([(100u128, 199u128, "b"), (0, 99, "a"), (300, u128::MAX, "d")]);
        assert_eq!(shards.shard_of(0), Some(&"a"));
        assert_eq!(shards.shard_of(99), Some(&"a"));
        assert_eq!(shards.shard_of(100), Some(&"b"));
        assert_eq!(shards.shard_of(250), None, "no open shard holds it");
        assert_eq!(shards.shard_of(u128::MAX), Some(&"d"));
        assert!(ShardRanges::<&str>::default().shard_of(5).is_none());
    }

    #[test]
    fn an_explicit_hash_key_is_a_decimal_number() {
        assert_eq!(parse_explicit_hash_key(" 42 "), Some(42));
        assert_eq!(parse_explicit_hash_key("0x2a"), None);
    }
}
