//! Key groups: the unit in which keyed state is partitioned and redistributed.
//!
//! As in Flink, every key hashes (with a stable hash) to one of `max_parallelism` key groups, and a
//! subtask owns a contiguous range of them. Restoring at another parallelism only changes which
//! ranges the subtasks own.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// Default number of key groups (Flink's default max parallelism).
pub const DEFAULT_MAX_PARALLELISM: u16 = 128;

/// Hashes a key with a hash that is stable across runs, processes and toolchains (xxHash64, seed 0).
///
/// ```
/// assert_eq!(rill_state::stable_hash(&42u64), rill_state::stable_hash(&42u64));
/// ```
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = twox_hash::XxHash64::with_seed(0);
    key.hash(&mut hasher);
    hasher.finish()
}

/// The key group of a key.
///
/// ```
/// let kg = rill_state::key_group_of(&"user-7", 128);
/// assert!(kg < 128);
/// ```
pub fn key_group_of<K: Hash + ?Sized>(key: &K, max_parallelism: u16) -> u16 {
    (stable_hash(key) % u64::from(max_parallelism.max(1))) as u16
}

/// The subtask that owns a key group (Flink's `kg * p / maxP`).
pub fn subtask_for_key_group(key_group: u16, max_parallelism: u16, parallelism: usize) -> usize {
    (usize::from(key_group) * parallelism) / usize::from(max_parallelism.max(1))
}

/// An inclusive range of key groups owned by one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGroupRange {
    /// First key group (inclusive).
    pub start: u16,
    /// Last key group (inclusive); `end < start` means empty.
    pub end: u16,
}

impl KeyGroupRange {
    /// The range owned by `subtask` of `parallelism` (Flink's `KeyGroupRangeAssignment`).
    ///
    /// ```
    /// use rill_state::KeyGroupRange;
    /// let a = KeyGroupRange::for_subtask(0, 2, 128);
    /// let b = KeyGroupRange::for_subtask(1, 2, 128);
    /// assert_eq!((a.start, a.end, b.start, b.end), (0, 63, 64, 127));
    /// ```
    pub fn for_subtask(subtask: usize, parallelism: usize, max_parallelism: u16) -> Self {
        let max = usize::from(max_parallelism);
        let start = (subtask * max).div_ceil(parallelism);
        let end = ((subtask + 1) * max - 1) / parallelism;
        KeyGroupRange { start: start as u16, end: end as u16 }
    }

    /// Whether the range holds `key_group`.
    pub fn contains(&self, key_group: u16) -> bool {
        self.start <= key_group && key_group <= self.end
    }

    /// Whether two ranges share a key group.
    pub fn overlaps(&self, other: &KeyGroupRange) -> bool {
        self.start <= other.end && other.start <= self.end && !self.is_empty() && !other.is_empty()
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_key_group_exactly_once() {
        for p in 1..=7 {
            let mut next = 0u16;
            for s in 0..p {
                let r = KeyGroupRange::for_subtask(s, p, 128);
                assert_eq!(r.start, next, "p={p} s={s}");
                next = r.end + 1;
                for kg in r.start..=r.end {
                    assert_eq!(subtask_for_key_group(kg, 128, p), s);
                }
            }
            assert_eq!(next, 128);
        }
    }

    const PINNED_HASH_OF_ONE: u64 = 11468921228449061269;
    const PINNED_KEY_GROUP_OF_12345: u16 = 3;

    #[test]
    fn stable_hash_does_not_change_between_releases() {
        // Pinned values: a change here would silently move every key to another subtask.
        assert_eq!(stable_hash(&1u64), PINNED_HASH_OF_ONE);
        assert_eq!(key_group_of(&12345u64, 128), PINNED_KEY_GROUP_OF_12345);
    }
}
