//! What the subtasks of one source share inside the process: which shard ends are part of a
//! completed checkpoint (for parent-before-child gating across subtasks), when the job last saw
//! activity (for stopping when idle), and how many shards ended (so every subtask looks for
//! children at once).
//!
//! Clones of a source made from one prototype share one registry. It is rebuilt from the
//! restored state whenever a new attempt (run id) opens, since the runtime restarts every
//! subtask from the latest checkpoint after a failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::lineage::FinishedShards;
use crate::ShardKey;

#[derive(Debug)]
struct SourceView {
    run_id: String,
    finished: FinishedShards,
    last_activity: Instant,
    /// Bumped when a shard ends anywhere: every subtask then looks for its children at once.
    shard_ends: u64,
    /// Subtask → whether all its shards are at their tip (nothing queued, nothing gated).
    caught_up: BTreeMap<usize, bool>,
}

/// Shared by all clones of one source prototype; keyed by operator id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    inner: Arc<Mutex<HashMap<String, SourceView>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, SourceView>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<R>(&self, uid: &str, f: impl FnOnce(&mut SourceView) -> R) -> Option<R> {
        self.lock().get_mut(uid).map(f)
    }

    /// A subtask of attempt `run_id` opens. The first one of an attempt resets the view to the
    /// restored state (the same for every subtask).
    pub(crate) fn attach(&self, uid: &str, run_id: &str, restored_finished: impl IntoIterator<Item = ShardKey>) {
        let mut map = self.lock();
        if map.get(uid).is_some_and(|v| v.run_id == run_id) {
            return;
        }
        map.insert(
            uid.to_string(),
            SourceView {
                run_id: run_id.to_string(),
                finished: FinishedShards::from_restored(restored_finished),
                last_activity: Instant::now(),
                shard_ends: 0,
                caught_up: BTreeMap::new(),
            },
        );
    }

    /// `key`'s end is in the snapshot of checkpoint `epoch`.
    pub(crate) fn snapshotted_finished(&self, uid: &str, key: &ShardKey, epoch: u64) {
        self.with(uid, |v| v.finished.snapshotted(key, epoch));
    }

    /// Checkpoint `epoch` completed.
    pub(crate) fn committed(&self, uid: &str, epoch: u64) {
        self.with(uid, |v| v.finished.committed(epoch));
    }

    /// Whether `key`'s end is part of a completed checkpoint.
    pub(crate) fn is_committed_finished(&self, uid: &str, key: &ShardKey) -> bool {
        self.with(uid, |v| v.finished.is_committed(key)).unwrap_or(false)
    }

    /// A shard was read to its end (on any subtask).
    pub(crate) fn shard_ended(&self, uid: &str) {
        self.with(uid, |v| {
            v.shard_ends += 1;
            v.last_activity = Instant::now();
        });
    }

    /// How many shards ended so far in this attempt.
    pub(crate) fn shard_ends(&self, uid: &str) -> u64 {
        self.with(uid, |v| v.shard_ends).unwrap_or(0)
    }

    /// Something happened (records, a shard started or ended).
    pub(crate) fn touch(&self, uid: &str) {
        self.with(uid, |v| v.last_activity = Instant::now());
    }

    /// Publishes whether `subtask` has read everything there is; returns whether every subtask
    /// that published says so.
    pub(crate) fn caught_up(&self, uid: &str, subtask: usize, caught_up: bool) -> bool {
        self.with(uid, |v| {
            v.caught_up.insert(subtask, caught_up);
            v.caught_up.values().all(|c| *c)
        })
        .unwrap_or(false)
    }

    /// When any subtask last saw activity.
    pub(crate) fn last_activity(&self, uid: &str) -> Option<Instant> {
        self.with(uid, |v| v.last_activity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_attempt_resets_the_view_to_the_restored_state() {
        let r = Registry::default();
        let p = ShardKey::new("s", "p");
        r.attach("src", "run-1", []);
        r.snapshotted_finished("src", &p, 3);
        r.committed("src", 3);
        assert!(r.is_committed_finished("src", &p));
        r.attach("src", "run-1", []);
        assert!(r.is_committed_finished("src", &p), "same attempt keeps its view");
        r.attach("src", "run-2", []);
        assert!(!r.is_committed_finished("src", &p), "a restart forgets what the restored checkpoint does not hold");
        r.attach("src", "run-3", [p.clone()]);
        assert!(r.is_committed_finished("src", &p));
    }
}
