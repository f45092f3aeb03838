//! The default shard assignment: balanced by open shards, decided from the shard lineage.
//!
//! Assigning a shard by its hash-key midpoint spreads the shards of a uniformly split stream
//! evenly, but when one range is split again and again, all its children fall to the same
//! subtask. Here the listing is replayed in creation order (shard ids grow as shards are
//! created): shards without a listed parent are placed by their midpoint (as
//! [`crate::UniformShardAssigner`]); when a child appears, its parents close, and the child goes
//! to the subtask with the fewest open shards at that moment (ties: the lowest index after the
//! parent's subtask). The result depends only on the listing and the parallelism: every
//! subtask computes the same owners, and a restart with the same shards gives the same ones.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{ShardAssigner, ShardInfo, ShardKey, UniformShardAssigner};

/// The numeric part of a Kinesis shard id (`shardId-000000000012` → 12); ids without digits
/// sort after all numbered ones, by text.
fn creation_order(key: &ShardKey) -> (u64, String) {
    let digits: String = key.shard_id.chars().rev().take_while(char::is_ascii_digit).collect();
    let number = digits.chars().rev().collect::<String>().parse().unwrap_or(u64::MAX);
    (number, key.shard_id.clone())
}

/// The owner of every shard in `listing` at `parallelism`.
pub(crate) fn balanced_owners(listing: &[ShardInfo], parallelism: usize) -> HashMap<ShardKey, usize> {
    let p = parallelism.max(1);
    let mut by_stream: BTreeMap<&str, Vec<&ShardInfo>> = BTreeMap::new();
    for shard in listing {
        by_stream.entry(shard.key.stream.as_str()).or_default().push(shard);
    }
    let mut owners: HashMap<ShardKey, usize> = HashMap::new();
    let mut closed: HashSet<ShardKey> = HashSet::new();
    let mut open = vec![0usize; p];
    for shards in by_stream.values_mut() {
        shards.sort_by_key(|s| creation_order(&s.key));
        for shard in shards.iter() {
            let parents: Vec<(ShardKey, usize)> =
                shard.parents().filter_map(|k| owners.get(&k).map(|o| (k.clone(), *o))).collect();
            let owner = if parents.is_empty() {
                UniformShardAssigner.assign(shard, p) % p
            } else {
                // A split has two children: its parent closes once.
                for (key, parent) in &parents {
                    if closed.insert(key.clone()) {
                        open[*parent] = open[*parent].saturating_sub(1);
                    }
                }
                let start = (parents[0].1 + 1) % p;
                (0..p).map(|i| (start + i) % p).min_by_key(|s| open[*s]).unwrap_or(0)
            };
            open[owner] += 1;
            owners.insert(shard.key.clone(), owner);
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: u32, start: u128, end: u128, parent: Option<u32>) -> ShardInfo {
        let parent = parent.map(|p| format!("shardId-{p:012}"));
        ShardInfo::new("s", &format!("shardId-{id:012}"), start, end).with_parents(parent.as_deref(), None)
    }

    /// Two shards; the lower one split three times, always its lower half.
    fn split_again_and_again() -> Vec<ShardInfo> {
        let half = 1u128 << 127;
        vec![
            shard(0, 0, half - 1, None),
            shard(1, half, u128::MAX, None),
            shard(2, 0, (half >> 1) - 1, Some(0)),
            shard(3, half >> 1, half - 1, Some(0)),
            shard(4, 0, (half >> 2) - 1, Some(2)),
            shard(5, half >> 2, (half >> 1) - 1, Some(2)),
            shard(6, 0, (half >> 3) - 1, Some(4)),
            shard(7, half >> 3, (half >> 2) - 1, Some(4)),
        ]
    }

    fn open_per_subtask(owners: &HashMap<ShardKey, usize>, listing: &[ShardInfo], p: usize) -> Vec<usize> {
        let closed: Vec<ShardKey> = listing.iter().flat_map(|s| s.parents().collect::<Vec<_>>()).collect();
        let mut counts = vec![0; p];
        for s in listing.iter().filter(|s| !closed.contains(&s.key)) {
            counts[owners[&s.key]] += 1;
        }
        counts
    }

    #[test]
    fn a_range_split_again_and_again_is_spread_over_the_subtasks() {
        let listing = split_again_and_again();
        for p in [2, 3, 4] {
            let counts = open_per_subtask(&balanced_owners(&listing, p), &listing, p);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "open shards per subtask at parallelism {p}: {counts:?}");
        }
        // By midpoint alone, every piece of the lower half lands on one subtask.
        let by_midpoint: HashMap<ShardKey, usize> =
            listing.iter().map(|s| (s.key.clone(), UniformShardAssigner.assign(s, 2))).collect();
        let counts = open_per_subtask(&by_midpoint, &listing, 2);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() > 1, "{counts:?}");
    }

    #[test]
    fn owners_do_not_depend_on_listing_order_and_unsplit_streams_match_the_uniform_assigner() {
        let listing = split_again_and_again();
        let mut reversed = listing.clone();
        reversed.reverse();
        assert_eq!(balanced_owners(&listing, 3), balanced_owners(&reversed, 3));
        let q = 1u128 << 126;
        let uniform: Vec<ShardInfo> = (0..4u32)
            .map(|i| shard(i, i as u128 * q, if i == 3 { u128::MAX } else { (i as u128 + 1) * q - 1 }, None))
            .collect();
        let owners = balanced_owners(&uniform, 4);
        for s in &uniform {
            assert_eq!(owners[&s.key], UniformShardAssigner.assign(s, 4));
        }
    }

    #[test]
    fn a_child_whose_parents_expired_is_placed_like_a_root() {
        let listing = vec![shard(9, 0, u128::MAX, Some(3))];
        let owners = balanced_owners(&listing, 2);
        assert_eq!(owners[&listing[0].key], UniformShardAssigner.assign(&listing[0], 2));
    }
}
