//! What the source knows about a shard: identity, lineage and hash-key range.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A shard's identity: stream name and shard id. Checkpointed positions are matched on this
/// alone (never on metadata that may change, FLINK-8484).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardKey {
    /// The stream name.
    pub stream: String,
    /// The shard id, e.g. `shardId-000000000003`.
    pub shard_id: String,
}

impl ShardKey {
    /// A key from stream and shard id.
    pub fn new(stream: impl Into<String>, shard_id: impl Into<String>) -> Self {
        ShardKey { stream: stream.into(), shard_id: shard_id.into() }
    }
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream, self.shard_id)
    }
}

/// A shard as listed by ListShards (or as remembered in a checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Stream and shard id.
    pub key: ShardKey,
    /// The parent (the shard that was split, or one of the two merged shards).
    pub parent: Option<String>,
    /// The other parent of a merge.
    pub adjacent_parent: Option<String>,
    /// First hash key of the shard's range.
    pub hash_start: u128,
    /// Last hash key of the shard's range (inclusive).
    pub hash_end: u128,
}

impl ShardInfo {
    /// A shard without parents covering `[hash_start, hash_end]`.
    pub fn new(stream: &str, shard_id: &str, hash_start: u128, hash_end: u128) -> Self {
        ShardInfo { key: ShardKey::new(stream, shard_id), parent: None, adjacent_parent: None, hash_start, hash_end }
    }

    /// Sets the parents (builder style, for tests and assigners).
    pub fn with_parents(mut self, parent: Option<&str>, adjacent_parent: Option<&str>) -> Self {
        self.parent = parent.map(str::to_string);
        self.adjacent_parent = adjacent_parent.map(str::to_string);
        self
    }

    /// The parents' keys (zero, one or two).
    pub fn parents(&self) -> impl Iterator<Item = ShardKey> + '_ {
        self.parent
            .iter()
            .chain(self.adjacent_parent.iter())
            .filter(|p| !p.is_empty())
            .map(move |p| ShardKey::new(self.key.stream.clone(), p.clone()))
    }

    /// The middle of the hash-key range, computed without overflow.
    pub fn hash_midpoint(&self) -> u128 {
        let (a, b) = (self.hash_start, self.hash_end);
        a / 2 + b / 2 + (a & b & 1)
    }
}

/// Parses a decimal hash key (0 ..= 2^128 - 1) as ListShards returns it.
pub(crate) fn parse_hash_key(text: &str) -> Option<u128> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_range_midpoint_is_two_to_the_127() {
        let s = ShardInfo::new("s", "shardId-0", 0, u128::MAX);
        assert_eq!(s.hash_midpoint(), (1u128 << 127) - 1);
        assert_eq!(parse_hash_key("340282366920938463463374607431768211455"), Some(u128::MAX));
    }

    #[test]
    fn parents_are_listed_in_the_same_stream() {
        let s = ShardInfo::new("orders", "shardId-2", 0, 1).with_parents(Some("shardId-0"), Some("shardId-1"));
        let parents: Vec<ShardKey> = s.parents().collect();
        assert_eq!(parents, vec![ShardKey::new("orders", "shardId-0"), ShardKey::new("orders", "shardId-1")]);
    }
}
