//! Parent-before-child ordering across resharding, as pure decisions.
//!
//! A child shard may start only when each of its parents is
//! - finished *on this subtask* (its end was emitted here, on the same channel, so every parent
//!   record precedes every child record and a snapshot of this subtask can never hold child
//!   progress without the parent's end), or
//! - finished in a *completed* checkpoint (learned from `on_commit` or from the restored state):
//!   then every parent record precedes that checkpoint's barrier on the parent's subtask, while
//!   the child's records follow it, and barrier alignment keeps that order downstream — also
//!   after any crash, since every later checkpoint holds the parent's end too, or
//! - unknown: neither listed by Kinesis nor in any state (expired past retention), as KCL does.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{ShardInfo, ShardKey};

/// Shards whose end is part of a checkpoint, and whether that checkpoint completed.
#[derive(Debug, Default, Clone)]
pub(crate) struct FinishedShards {
    committed: HashSet<ShardKey>,
    /// Finished in a checkpoint that has not completed yet: key → its epoch.
    pending: HashMap<ShardKey, u64>,
    last_committed: Option<u64>,
}

impl FinishedShards {
    /// Finished shards of a restored (hence complete) checkpoint.
    pub(crate) fn from_restored(keys: impl IntoIterator<Item = ShardKey>) -> Self {
        FinishedShards { committed: keys.into_iter().collect(), ..Self::default() }
    }

    /// `key`'s end is in the snapshot of checkpoint `epoch`.
    pub(crate) fn snapshotted(&mut self, key: &ShardKey, epoch: u64) {
        if self.committed.contains(key) {
            return;
        }
        if self.last_committed.is_some_and(|c| epoch <= c) {
            self.committed.insert(key.clone());
            return;
        }
        let e = self.pending.entry(key.clone()).or_insert(epoch);
        *e = (*e).min(epoch);
    }

    /// Checkpoint `epoch` completed.
    pub(crate) fn committed(&mut self, epoch: u64) {
        self.last_committed = Some(self.last_committed.map_or(epoch, |c| c.max(epoch)));
        let done: Vec<ShardKey> = self.pending.iter().filter(|(_, e)| **e <= epoch).map(|(k, _)| k.clone()).collect();
        for key in done {
            self.pending.remove(&key);
            self.committed.insert(key);
        }
    }

    /// Whether `key`'s end is part of a completed checkpoint.
    pub(crate) fn is_committed(&self, key: &ShardKey) -> bool {
        self.committed.contains(key)
    }
}

/// The shards the gate treats as known: those Kinesis lists now. A shard that only a restored
/// checkpoint mentions expired past retention (its records are gone): it holds no child back.
pub(crate) fn known_shards(listed: &[ShardInfo]) -> BTreeSet<ShardKey> {
    listed.iter().map(|s| s.key.clone()).collect()
}

/// What holds a child back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Every parent is done: the child may be read.
    Open,
    /// These parents are not done yet.
    WaitingFor(Vec<ShardKey>),
}

/// Decides whether `child` may start. `finished_here`: the parent's end was emitted by this
/// subtask; `committed`: its end is in a completed checkpoint; `known`: Kinesis lists it or some
/// state mentions it.
pub(crate) fn parent_gate(
    child: &ShardInfo,
    finished_here: impl Fn(&ShardKey) -> bool,
    committed: impl Fn(&ShardKey) -> bool,
    known: impl Fn(&ShardKey) -> bool,
) -> Gate {
    let waiting: Vec<ShardKey> = child.parents().filter(|p| !(finished_here(p) || committed(p) || !known(p))).collect();
    if waiting.is_empty() {
        Gate::Open
    } else {
        Gate::WaitingFor(waiting)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_restored_parent_that_kinesis_no_longer_lists_does_not_hold_its_child_forever() {
        // The checkpoint holds parent P half read; P expired past retention, so Kinesis lists
        // only its child C.
        let child = ShardInfo::new("s", "C", 0, 9).with_parents(Some("P"), None);
        let known = known_shards(std::slice::from_ref(&child));
        let gate = parent_gate(&child, |_| false, |_| false, |p| known.contains(p));
        assert_eq!(gate, Gate::Open);
    }

    use super::*;

    fn key(id: &str) -> ShardKey {
        ShardKey::new("s", id)
    }

    #[test]
    fn a_finish_mark_counts_only_once_its_checkpoint_completes() {
        let mut f = FinishedShards::default();
        f.snapshotted(&key("p"), 4);
        assert!(!f.is_committed(&key("p")));
        f.committed(3);
        assert!(!f.is_committed(&key("p")));
        f.committed(4);
        assert!(f.is_committed(&key("p")));
    }

    #[test]
    fn a_mark_snapshotted_in_an_already_committed_epoch_is_committed() {
        let mut f = FinishedShards::default();
        f.committed(7);
        f.snapshotted(&key("p"), 7);
        assert!(f.is_committed(&key("p")));
    }

    #[test]
    fn restored_finished_shards_are_committed() {
        let f = FinishedShards::from_restored([key("p")]);
        assert!(f.is_committed(&key("p")));
    }

    #[test]
    fn a_merge_child_waits_for_both_parents() {
        let child = ShardInfo::new("s", "c", 0, 1).with_parents(Some("p1"), Some("p2"));
        let known = |_: &ShardKey| true;
        let none = |_: &ShardKey| false;
        assert_eq!(parent_gate(&child, none, none, known), Gate::WaitingFor(vec![key("p1"), key("p2")]));
        let p1_here = |k: &ShardKey| k.shard_id == "p1";
        assert_eq!(parent_gate(&child, p1_here, none, known), Gate::WaitingFor(vec![key("p2")]));
        let p2_committed = |k: &ShardKey| k.shard_id == "p2";
        assert_eq!(parent_gate(&child, p1_here, p2_committed, known), Gate::Open);
    }

    #[test]
    fn a_parent_nobody_knows_does_not_block() {
        let child = ShardInfo::new("s", "c", 0, 1).with_parents(Some("expired"), None);
        let none = |_: &ShardKey| false;
        assert_eq!(parent_gate(&child, none, none, none), Gate::Open);
    }

    #[test]
    fn a_shard_without_parents_is_open() {
        let none = |_: &ShardKey| false;
        assert_eq!(parent_gate(&ShardInfo::new("s", "a", 0, 1), none, none, |_: &ShardKey| true), Gate::Open);
    }
}
