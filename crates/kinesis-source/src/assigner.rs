//! Which subtask reads which shard: deterministic across runs, processes and toolchains.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::{balance, ShardInfo, ShardKey};

/// Decides which subtask reads a shard. Must be deterministic: every subtask asks it about every
/// shard and keeps those it is given, also when restoring at another parallelism.
pub trait ShardAssigner: Send + Sync + 'static {
    /// The subtask (`0..parallelism`) that reads `shard`; values out of range are taken modulo.
    fn assign(&self, shard: &ShardInfo, parallelism: usize) -> usize;
}

impl<F> ShardAssigner for F
where
    F: Fn(&ShardInfo, usize) -> usize + Send + Sync + 'static,
{
    fn assign(&self, shard: &ShardInfo, parallelism: usize) -> usize {
        self(shard, parallelism)
    }
}

/// Spreads shards evenly by the midpoint of their hash-key range, as Flink's
/// `UniformShardAssigner`: subtask = `midpoint * parallelism / 2^128`, shifted by a stable hash of
/// the stream name so that several streams do not all start at subtask 0. After a uniform
/// reshard (UpdateShardCount) every subtask gets its share.
#[derive(Debug, Clone, Copy, Default)]
pub struct UniformShardAssigner;

impl ShardAssigner for UniformShardAssigner {
    fn assign(&self, shard: &ShardInfo, parallelism: usize) -> usize {
        let n = parallelism.max(1);
        let index = scale_to(shard.hash_midpoint(), n as u128);
        let offset = fnv1a(shard.key.stream.as_bytes()) as usize % n;
        (index as usize + offset) % n
    }
}

/// `value * n / 2^128`, exactly, without overflow (for `n < 2^64`).
fn scale_to(value: u128, n: u128) -> u128 {
    let hi = value >> 64;
    let lo = value & u128::from(u64::MAX);
    (hi * n + ((lo * n) >> 64)) >> 64
}

/// 32-bit FNV-1a: a fixed, documented hash (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// The source's assignment: the balanced default (see [`crate::balance`]), or the user's
/// assigner. Owners are memoized per attempt (run id) and parallelism, so that every subtask of
/// the process agrees on each shard even if the listing changes between their looks at it.
#[derive(Clone)]
pub(crate) struct SharedAssigner {
    custom: Option<Arc<dyn ShardAssigner>>,
    memo: Arc<Mutex<Memo>>,
}

#[derive(Debug, Default)]
struct Memo {
    run: (String, usize),
    owners: HashMap<ShardKey, usize>,
}

impl SharedAssigner {
    /// The balanced default (`None`) or a user's assigner.
    pub(crate) fn new(custom: Option<Arc<dyn ShardAssigner>>) -> Self {
        SharedAssigner { custom, memo: Arc::default() }
    }

    /// The owners of the shards of `listing` in attempt `run_id` at `parallelism`.
    pub(crate) fn owners(&self, listing: &[ShardInfo], parallelism: usize, run_id: &str) -> HashMap<ShardKey, usize> {
        let p = parallelism.max(1);
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if memo.run.0 != run_id || memo.run.1 != p {
            *memo = Memo { run: (run_id.to_string(), p), owners: HashMap::new() };
        }
        if listing.iter().any(|s| !memo.owners.contains_key(&s.key)) {
            let fresh = match &self.custom {
                Some(custom) => listing.iter().map(|s| (s.key.clone(), custom.assign(s, p) % p)).collect(),
                None => balance::balanced_owners(listing, p),
            };
            for (key, owner) in fresh {
                memo.owners.entry(key).or_insert(owner);
            }
        }
        listing.iter().filter_map(|s| memo.owners.get(&s.key).map(|o| (s.key.clone(), *o))).collect()
    }
}

impl fmt::Debug for SharedAssigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.custom.is_some() { "ShardAssigner(custom)" } else { "ShardAssigner(balanced)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform_shards(stream: &str, n: u128) -> Vec<ShardInfo> {
        let width = u128::MAX / n;
        (0..n)
            .map(|i| {
                let end = if i == n - 1 { u128::MAX } else { (i + 1) * width - 1 };
                ShardInfo::new(stream, &format!("shardId-{i:012}"), i * width, end)
            })
            .collect()
    }

    #[test]
    fn uniform_shards_are_spread_evenly_over_subtasks() {
        for (shards, parallelism) in [(4u128, 2usize), (8, 4), (6, 3), (16, 16), (12, 5)] {
            let mut counts = vec![0; parallelism];
            for s in uniform_shards("orders", shards) {
                counts[UniformShardAssigner.assign(&s, parallelism)] += 1;
            }
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{shards} shards on {parallelism}: {counts:?}");
        }
    }

    #[test]
    fn assignment_is_the_same_on_every_call_and_build() {
        let s = ShardInfo::new("orders", "shardId-000000000001", 1u128 << 126, (1u128 << 127) - 1);
        // Fixed expectations: a change of hash or formula would break restores of running jobs.
        assert_eq!(fnv1a(b"orders"), 0x325e_96ec);
        // Midpoint in the second quarter (index 1), stream offset 0x325e_96ec % 4 = 0.
        assert_eq!(UniformShardAssigner.assign(&s, 4), 1);
    }

    #[test]
    fn the_children_of_a_single_shard_go_to_different_subtasks() {
        let parent = ShardInfo::new("s", "shardId-0", 0, u128::MAX);
        let left = ShardInfo::new("s", "shardId-1", 0, (1u128 << 127) - 1);
        let right = ShardInfo::new("s", "shardId-2", 1u128 << 127, u128::MAX);
        let a = UniformShardAssigner.assign(&left, 2);
        let b = UniformShardAssigner.assign(&right, 2);
        assert_ne!(a, b);
        assert!(UniformShardAssigner.assign(&parent, 2) < 2);
    }

    #[test]
    fn scaling_is_exact_at_the_edges() {
        assert_eq!(scale_to(0, 7), 0);
        assert_eq!(scale_to(u128::MAX, 7), 6);
        assert_eq!(scale_to(1u128 << 127, 2), 1);
        assert_eq!(scale_to((1u128 << 127) - 1, 2), 0);
    }

    #[test]
    fn a_closure_is_an_assigner() {
        let by_id = |s: &ShardInfo, n: usize| s.key.shard_id.len() % n;
        let shared = SharedAssigner::new(Some(Arc::new(by_id)));
        let listing = [ShardInfo::new("s", "abc", 0, 1)];
        assert_eq!(shared.owners(&listing, 2, "run-1")[&listing[0].key], 1);
    }

    #[test]
    fn subtasks_of_one_attempt_agree_even_when_the_listing_changes_between_their_looks() {
        let shared = SharedAssigner::new(None);
        let a = ShardInfo::new("s", "shardId-000000000000", 0, u128::MAX);
        let first = shared.owners(std::slice::from_ref(&a), 2, "run-1");
        // Later listings differ (a child appeared); the owner of `a` stays what it was.
        let b =
            ShardInfo::new("s", "shardId-000000000001", 0, u128::MAX).with_parents(Some("shardId-000000000000"), None);
        let second = shared.owners(std::slice::from_ref(&b), 2, "run-1");
        let third = shared.owners(&[a.clone(), b.clone()], 2, "run-1");
        assert_eq!(third[&a.key], first[&a.key]);
        assert_eq!(third[&b.key], second[&b.key]);
    }
}
