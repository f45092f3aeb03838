//! Which subtask reads which shard: deterministic across runs, processes and toolchains.

use std::fmt;
use std::sync::Arc;

use crate::ShardInfo;

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

/// A shared, cloneable assigner.
#[derive(Clone)]
pub(crate) struct SharedAssigner(pub(crate) Arc<dyn ShardAssigner>);

impl SharedAssigner {
    pub(crate) fn assign(&self, shard: &ShardInfo, parallelism: usize) -> usize {
        self.0.assign(shard, parallelism) % parallelism.max(1)
    }
}

impl fmt::Debug for SharedAssigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShardAssigner")
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
        let shared = SharedAssigner(Arc::new(by_id));
        assert!(shared.assign(&ShardInfo::new("s", "abc", 0, 1), 2) < 2);
    }
}
