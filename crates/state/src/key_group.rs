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
#[inline]
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = StableHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Bytes a key may hash to before [`StableHasher`] switches to streaming.
const INLINE_BYTES: usize = 64;

/// XxHash64 (seed 0) of everything written, as one-shot for short input: the streaming hasher's
/// set-up and buffering cost more than the hash itself for a `u64` key, on every record. Longer
/// input streams; the value is the same either way (XXH64 of the concatenated bytes).
struct StableHasher {
    inline: [u8; INLINE_BYTES],
    len: usize,
    streaming: Option<twox_hash::XxHash64>,
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher { inline: [0; INLINE_BYTES], len: 0, streaming: None }
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if let Some(streaming) = &mut self.streaming {
            streaming.write(bytes);
        } else if let Some(room) = self.inline.get_mut(self.len..self.len + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut streaming = twox_hash::XxHash64::with_seed(0);
            streaming.write(&self.inline[..self.len]);
            streaming.write(bytes);
            self.streaming = Some(streaming);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        match &self.streaming {
            Some(streaming) => streaming.finish(),
            None => twox_hash::XxHash64::oneshot(0, &self.inline[..self.len]),
        }
    }
}

/// The key group of a key.
///
/// ```
/// let kg = rill_state::key_group_of(&"user-7", 128);
/// assert!(kg < 128);
/// ```
#[inline]
pub fn key_group_of<K: Hash + ?Sized>(key: &K, max_parallelism: u16) -> u16 {
    let hash = stable_hash(key);
    let groups = u64::from(max_parallelism.max(1));
    // The same value as `hash % groups`; a mask for the usual power of two (the default 128).
    let group = if groups.is_power_of_two() { hash & (groups - 1) } else { hash % groups };
    group as u16
}

/// A key's group as a state access sees it: given by the caller, or hashed from the key only when
/// the access has to read or write RocksDB (a cache hit never needs it).
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyGroupOf {
    /// The caller computed it.
    Given(u16),
    /// Hash the key when needed, into this many key groups.
    Hashed {
        /// The job's number of key groups.
        max_parallelism: u16,
    },
}

impl KeyGroupOf {
    /// The key group of `key`.
    #[inline]
    pub(crate) fn of<K: Hash + ?Sized>(self, key: &K) -> u16 {
        match self {
            KeyGroupOf::Given(key_group) => key_group,
            KeyGroupOf::Hashed { max_parallelism } => key_group_of(key, max_parallelism),
        }
    }
}

/// The key groups of a batch of keys as a batched read sees them: one given per key (by the
/// exchange that routed the batch), or hashed from each key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyGroupsOf<'a> {
    /// The key group of the i-th key is the i-th element.
    Given(&'a [u16]),
    /// Hash each key into this many key groups.
    Hashed {
        /// The job's number of key groups.
        max_parallelism: u16,
    },
}

impl KeyGroupsOf<'_> {
    /// The key group of the `index`-th key of the batch as a single access sees it.
    #[inline]
    pub(crate) fn at(self, index: usize) -> KeyGroupOf {
        match self {
            KeyGroupsOf::Given(groups) => KeyGroupOf::Given(groups[index]),
            KeyGroupsOf::Hashed { max_parallelism } => KeyGroupOf::Hashed { max_parallelism },
        }
    }
}

/// The subtask that owns a key group (Flink's `kg * p / maxP`).
#[inline]
pub fn subtask_for_key_group(key_group: u16, max_parallelism: u16, parallelism: usize) -> usize {
    let groups = max_parallelism.max(1);
    let scaled = usize::from(key_group) * parallelism;
    // The same value as the division; a shift for the usual power of two (the default 128).
    if groups.is_power_of_two() {
        scaled >> groups.trailing_zeros()
    } else {
        scaled / usize::from(groups)
    }
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

    #[test]
    fn key_groups_and_their_owners_are_the_plain_remainder_and_quotient_for_any_max_parallelism() {
        for max_p in [1u16, 2, 3, 100, 128, 1000, 4096, 32768] {
            for key in 0..2000u64 {
                let group = key_group_of(&key, max_p);
                assert_eq!(u64::from(group), stable_hash(&key) % u64::from(max_p), "key {key}, {max_p} groups");
                for p in [1usize, 2, 3, 7] {
                    let owner = usize::from(group) * p / usize::from(max_p);
                    assert_eq!(subtask_for_key_group(group, max_p, p), owner, "group {group} of {max_p}, p={p}");
                }
            }
        }
    }

    fn streamed<K: Hash + ?Sized>(key: &K) -> u64 {
        let mut hasher = twox_hash::XxHash64::with_seed(0);
        key.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn the_stable_hash_equals_streaming_xxhash64_for_short_and_long_keys() {
        let long = "k".repeat(200);
        assert_eq!(stable_hash(&7u64), streamed(&7u64));
        assert_eq!(stable_hash("user-7"), streamed("user-7"));
        assert_eq!(stable_hash(&(3u32, "ab", 9i64)), streamed(&(3u32, "ab", 9i64)));
        assert_eq!(stable_hash(long.as_str()), streamed(long.as_str()));
        // Crossing the inline buffer in the middle of a key, and exactly filling it.
        assert_eq!(stable_hash(&("x".repeat(60), 1u64)), streamed(&("x".repeat(60), 1u64)));
        assert_eq!(stable_hash(&[1u8; 56][..]), streamed(&[1u8; 56][..]));
        assert_eq!(stable_hash(&[1u8; 57][..]), streamed(&[1u8; 57][..]));
        assert_eq!(stable_hash(&()), streamed(&()));
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
