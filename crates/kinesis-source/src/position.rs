//! Per-shard positions and their checkpoint encoding (union-state entries).
//!
//! Every subtask writes one entry per shard it owns plus a marker entry; on restore every
//! subtask sees the union and keeps the shards the assigner gives it, so a restore at another
//! parallelism redistributes shards. Entries are versioned; the runtime serializes them.

use serde::{Deserialize, Serialize};

use crate::{KinesisSourceError, Result, ShardInfo, ShardKey};

/// Where a shard with nothing emitted yet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartingPoint {
    /// The oldest record of the shard.
    TrimHorizon,
    /// The first record that arrived at or after this time (ms since the Unix epoch).
    AtTimestamp {
        /// Milliseconds since the Unix epoch.
        millis: i64,
    },
}

/// How far a shard has been read, counting only records emitted into the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardPosition {
    /// Nothing emitted yet (sentinel): start at the given point.
    NotStarted(StartingPoint),
    /// The last emitted record. `sub_sequence` is set for a record de-aggregated from a KPL
    /// aggregate: the sub-records up to it were emitted, later ones of the same aggregate not.
    After {
        /// Sequence number of the last emitted Kinesis record.
        sequence_number: String,
        /// Sub-sequence number of the last emitted sub-record, for KPL-aggregated records.
        sub_sequence: Option<u64>,
    },
    /// Read to its end (sentinel): never read again.
    Finished,
}

impl ShardPosition {
    /// Whether the shard was read to its end.
    pub fn is_finished(&self) -> bool {
        matches!(self, ShardPosition::Finished)
    }
}

const VERSION: u32 = 1;

/// One entry of the source's checkpointed position (its union state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateEntry {
    /// Written by every subtask: tells a restore from a fresh start even without shards.
    Marker {
        /// Format version of the entry.
        version: u32,
    },
    /// One shard and how far it was read.
    Shard {
        /// Format version of the entry.
        version: u32,
        /// The stream.
        stream: String,
        /// The shard id.
        shard_id: String,
        /// The parent shard, if any.
        parent: Option<String>,
        /// The adjacent parent (merges), if any.
        adjacent_parent: Option<String>,
        /// Start of the hash-key range, decimal, as Kinesis prints hash keys.
        hash_start: String,
        /// End of the hash-key range, decimal.
        hash_end: String,
        /// How far the shard was read.
        position: ShardPosition,
    },
}

/// A restored shard: its metadata and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoredShard {
    pub(crate) info: ShardInfo,
    pub(crate) position: ShardPosition,
}

pub(crate) fn encode_marker() -> StateEntry {
    StateEntry::Marker { version: VERSION }
}

pub(crate) fn encode_shard(info: &ShardInfo, position: &ShardPosition) -> StateEntry {
    StateEntry::Shard {
        version: VERSION,
        stream: info.key.stream.clone(),
        shard_id: info.key.shard_id.clone(),
        parent: info.parent.clone(),
        adjacent_parent: info.adjacent_parent.clone(),
        hash_start: info.hash_start.to_string(),
        hash_end: info.hash_end.to_string(),
        position: position.clone(),
    }
}

/// What a restored union state holds.
#[derive(Debug, Default)]
pub(crate) struct RestoredState {
    /// Whether there was any entry of this source (a restore rather than a fresh start).
    pub(crate) restored: bool,
    /// Every shard of every old subtask, by key (the last entry wins on duplicates).
    pub(crate) shards: std::collections::BTreeMap<ShardKey, RestoredShard>,
}

pub(crate) fn decode_union(entries: Vec<StateEntry>) -> Result<RestoredState> {
    let mut out = RestoredState { restored: !entries.is_empty(), ..RestoredState::default() };
    for entry in entries {
        match entry {
            StateEntry::Marker { version } | StateEntry::Shard { version, .. } if version > VERSION => {
                return Err(KinesisSourceError::State(format!(
                    "entry version {version} is newer than this build understands ({VERSION})"
                )));
            }
            StateEntry::Marker { .. } => {}
            StateEntry::Shard { stream, shard_id, parent, adjacent_parent, hash_start, hash_end, position, .. } => {
                let parse = |what: &str, text: &str| {
                    crate::shard::parse_hash_key(text).ok_or_else(|| {
                        KinesisSourceError::State(format!("bad {what} hash key '{text}' of {stream}/{shard_id}"))
                    })
                };
                let info = ShardInfo {
                    key: ShardKey::new(stream.clone(), shard_id.clone()),
                    parent,
                    adjacent_parent,
                    hash_start: parse("start", &hash_start)?,
                    hash_end: parse("end", &hash_end)?,
                };
                out.shards.insert(info.key.clone(), RestoredShard { info, position });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_entries_round_trip_with_every_position_kind() {
        let info = ShardInfo::new("orders", "shardId-000000000004", 5, u128::MAX)
            .with_parents(Some("shardId-000000000001"), None);
        let positions = [
            ShardPosition::NotStarted(StartingPoint::TrimHorizon),
            ShardPosition::NotStarted(StartingPoint::AtTimestamp { millis: 1_700_000_000_000 }),
            ShardPosition::After { sequence_number: "4959".into(), sub_sequence: None },
            ShardPosition::After { sequence_number: "4960".into(), sub_sequence: Some(3) },
            ShardPosition::Finished,
        ];
        for position in positions {
            let entries = vec![encode_marker(), encode_shard(&info, &position)];
            let restored = decode_union(entries).unwrap();
            assert!(restored.restored);
            let shard = &restored.shards[&info.key];
            assert_eq!(shard.info, info);
            assert_eq!(shard.position, position);
        }
    }

    #[test]
    fn an_empty_union_is_a_fresh_start_and_a_marker_alone_is_a_restore() {
        assert!(!decode_union(vec![]).unwrap().restored);
        let only_marker = decode_union(vec![encode_marker()]).unwrap();
        assert!(only_marker.restored && only_marker.shards.is_empty());
    }

    #[test]
    fn newer_versions_are_errors() {
        let newer = StateEntry::Marker { version: 99 };
        assert!(decode_union(vec![newer]).unwrap_err().to_string().contains("99"));
    }
}
