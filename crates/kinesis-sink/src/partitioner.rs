//! Partition keys (and optional explicit hash keys) for records.

use std::fmt;
use std::sync::Arc;

/// Computes a record's partition key.
type KeyFn<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;
/// Computes a record's explicit hash key.
type HashFn<T> = Arc<dyn Fn(&T) -> u128 + Send + Sync>;

enum KeySource<T> {
    Fixed,
    Random,
    FromRecord(KeyFn<T>),
}

impl<T> Clone for KeySource<T> {
    fn clone(&self) -> Self {
        match self {
            KeySource::Fixed => KeySource::Fixed,
            KeySource::Random => KeySource::Random,
            KeySource::FromRecord(f) => KeySource::FromRecord(f.clone()),
        }
    }
}

/// Chooses the partition key of each record, and optionally an explicit hash key that picks
/// the shard directly (the partition key is then only stored with the record).
///
/// ```
/// use rill_kinesis_sink::Partitioner;
/// let by_user: Partitioner<(String, u64)> = Partitioner::from_record(|r: &(String, u64)| r.0.clone());
/// let pinned = Partitioner::<u64>::fixed().with_explicit_hash_key(|n: &u64| u128::from(*n) << 64);
/// # let _ = (by_user, pinned);
/// ```
pub struct Partitioner<T> {
    key: KeySource<T>,
    hash: Option<HashFn<T>>,
}

impl<T> Clone for Partitioner<T> {
    fn clone(&self) -> Self {
        Partitioner { key: self.key.clone(), hash: self.hash.clone() }
    }
}

impl<T> fmt::Debug for Partitioner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            KeySource::Fixed => "fixed (subtask index)",
            KeySource::Random => "random",
            KeySource::FromRecord(_) => "from record",
        };
        f.debug_struct("Partitioner").field("key", &key).field("explicit_hash_key", &self.hash.is_some()).finish()
    }
}

impl<T> Partitioner<T> {
    /// The subtask index as partition key: each subtask writes to one shard (Flink's fixed
    /// partitioner). Keeps per-subtask order within a shard, but spreads load only over as
    /// many shards as there are subtasks.
    pub fn fixed() -> Self {
        Partitioner { key: KeySource::Fixed, hash: None }
    }

    /// A random 128-bit key per record: spreads load evenly, no ordering (Flink's random
    /// partitioner; the default).
    pub fn random() -> Self {
        Partitioner { key: KeySource::Random, hash: None }
    }

    /// The key computed from the record (e.g. a user id): records with one key stay in one
    /// shard, in order per request.
    pub fn from_record<F>(key: F) -> Self
    where
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        Partitioner { key: KeySource::FromRecord(Arc::new(key)), hash: None }
    }

    /// Also sets an explicit hash key (a point in the 128-bit hash key space) per record, which
    /// decides the shard instead of the hash of the partition key.
    pub fn with_explicit_hash_key<F>(mut self, hash: F) -> Self
    where
        F: Fn(&T) -> u128 + Send + Sync + 'static,
    {
        self.hash = Some(Arc::new(hash));
        self
    }

    /// The partition key of `record`; `fixed_key` is the subtask's fixed key.
    pub(crate) fn partition_key(&self, record: &T, fixed_key: &str) -> String {
        match &self.key {
            KeySource::Fixed => fixed_key.to_string(),
            KeySource::Random => format!("{:032x}", fastrand::u128(..)),
            KeySource::FromRecord(f) => f(record),
        }
    }

    /// The explicit hash key of `record` in decimal, if this partitioner sets one.
    pub(crate) fn explicit_hash_key(&self, record: &T) -> Option<String> {
        self.hash.as_ref().map(|f| f(record).to_string())
    }
}

impl<T> Default for Partitioner<T> {
    fn default() -> Self {
        Partitioner::random()
    }
}

/// Why a partition key is not acceptable to Kinesis, if it is not (1 to 256 characters).
pub(crate) fn partition_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("a partition key must not be empty")
    } else if key.len() > 256 && key.chars().count() > 256 {
        Some("a partition key must be at most 256 characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_uses_the_subtask_key_and_random_keys_differ() {
        assert_eq!(Partitioner::<u8>::fixed().partition_key(&1, "3"), "3");
        let random = Partitioner::<u8>::random();
        let (a, b) = (random.partition_key(&1, "0"), random.partition_key(&1, "0"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn explicit_hash_keys_are_decimal() {
        let p = Partitioner::<u128>::fixed().with_explicit_hash_key(|n| *n);
        assert_eq!(p.explicit_hash_key(&u128::MAX).as_deref(), Some("340282366920938463463374607431768211455"));
        assert_eq!(Partitioner::<u8>::random().explicit_hash_key(&1), None);
    }

    #[test]
    fn keys_must_have_one_to_256_characters() {
        assert!(partition_key_problem("").is_some());
        assert!(partition_key_problem(&"k".repeat(257)).is_some());
        assert!(partition_key_problem(&"é".repeat(256)).is_none());
        assert!(partition_key_problem("user-1").is_none());
    }
}
