//! A checkpoint in flight, as the coordinator keeps it: the pure bookkeeping of acknowledgements
//! ([`PendingCheckpoint`]), and the step that makes a checkpoint complete ([`complete_checkpoint`]:
//! manifest written durably, then retention applied) behind the [`CheckpointStore`] trait, tested
//! against the in-memory store.

use std::collections::BTreeMap;
use std::time::Instant;

use rill_state::decisions::{decide_scan_retention, scan_manifests};
use rill_state::{CheckpointStore, Manifest, SubtaskSnapshot, VertexSnapshot};

use crate::{ProcessingClock, Result, RuntimeError};

/// What an acknowledgement did to its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Still waiting for this many subtasks.
    Pending {
        /// Subtasks that have not acknowledged yet.
        remaining: usize,
    },
    /// Every subtask has acknowledged.
    Complete,
}

/// A checkpoint that has been triggered and not yet acknowledged by every subtask.
#[derive(Debug, Clone)]
pub(crate) struct PendingCheckpoint {
    /// The checkpoint id.
    pub(crate) epoch: u64,
    /// Whether it is the final checkpoint.
    pub(crate) then_stop: bool,
    /// Whether it is a savepoint.
    pub(crate) savepoint: bool,
    /// When it was triggered.
    pub(crate) triggered: Instant,
    /// Bytes the subtasks uploaded for it so far (object-store checkpoints).
    pub(crate) uploaded_bytes: u64,
    expected: Vec<(usize, usize)>,
    acks: BTreeMap<(usize, usize), SubtaskSnapshot>,
}

impl PendingCheckpoint {
    /// A checkpoint waiting for `expected` (vertex, subtask) pairs.
    pub(crate) fn new(epoch: u64, then_stop: bool, expected: Vec<(usize, usize)>) -> Self {
        PendingCheckpoint {
            epoch,
            then_stop,
            savepoint: false,
            triggered: Instant::now(),
            uploaded_bytes: 0,
            expected,
            acks: BTreeMap::new(),
        }
    }

    /// Records one subtask's acknowledgement. An unknown or repeated acknowledgement is an error.
    pub(crate) fn acknowledge(
        &mut self,
        vertex: usize,
        subtask: usize,
        snapshot: SubtaskSnapshot,
    ) -> Result<AckOutcome> {
        if !self.expected.contains(&(vertex, subtask)) {
            return Err(RuntimeError::Internal(format!(
                "checkpoint {}: acknowledgement from unknown subtask {vertex}/{subtask}",
                self.epoch
            )));
        }
        if self.acks.insert((vertex, subtask), snapshot).is_some() {
            return Err(RuntimeError::Internal(format!(
                "checkpoint {}: subtask {vertex}/{subtask} acknowledged twice",
                self.epoch
            )));
        }
        let remaining = self.expected.len() - self.acks.len();
        Ok(if remaining == 0 { AckOutcome::Complete } else { AckOutcome::Pending { remaining } })
    }

    /// The manifest of the complete checkpoint. `vertices` gives each vertex's id and parallelism.
    pub(crate) fn into_manifest(self, job: &str, max_parallelism: u16, vertices: &[(String, usize)]) -> Manifest {
        let mut snapshots: Vec<VertexSnapshot> = vertices
            .iter()
            .map(|(id, p)| VertexSnapshot { vertex: id.clone(), parallelism: *p, subtasks: Vec::new() })
            .collect();
        for ((vertex, _), snapshot) in self.acks {
            snapshots[vertex].subtasks.push(snapshot);
        }
        Manifest {
            checkpoint: self.epoch,
            job: job.to_string(),
            max_parallelism,
            completed_at_ms: u64::try_from(ProcessingClock::system().now_ms()).unwrap_or(0),
            final_checkpoint: self.then_stop,
            savepoint: self.savepoint,
            vertices: snapshots,
        }
    }
}

/// Makes a checkpoint complete: makes every directory on the path of every file the manifest
/// names durable (so after a power cut no named file is unreachable), writes the manifest
/// durably, checks that this run still owns the location, then deletes what retention allows.
pub(crate) fn complete_checkpoint(store: &dyn CheckpointStore, manifest: &Manifest, retain: usize) -> Result<()> {
    for dir in manifest.directories() {
        store.sync_dir(manifest.checkpoint, &dir)?;
    }
    store.write_manifest(manifest.checkpoint, &manifest.encode()?)?;
    // A newer run may have claimed the location meanwhile: then it restores this checkpoint and
    // commits its transactions, and this run deletes and commits nothing.
    store.claim()?;
    // The checkpoint is complete now. Retention is housekeeping: its failure (a listing that
    // fails) is a warning, never a failed checkpoint; the next checkpoint tries again.
    let scan = match scan_manifests(store) {
        Ok(scan) => scan,
        Err(e) => {
            tracing::warn!(checkpoint = manifest.checkpoint, error = %e, "retention skipped: checkpoints could not be listed");
            return Ok(());
        }
    };
    // What could not be read is never deleted, nor is a savepoint.
    for id in decide_scan_retention(&scan, retain) {
        if id < manifest.checkpoint {
            if let Err(e) = store.delete(id) {
                tracing::warn!(checkpoint = id, error = %e, "could not delete old checkpoint");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_state::{KeyGroupRange, MemoryCheckpointStore};

    fn snap(subtask: usize) -> SubtaskSnapshot {
        SubtaskSnapshot {
            subtask,
            key_groups: KeyGroupRange { start: 0, end: 127 },
            keyed_state_dir: None,
            operator_state_file: None,
            files: vec![],
            keyed_states: Default::default(),
        }
    }

    #[test]
    fn checkpoint_completes_only_when_every_subtask_acknowledged() {
        let mut p = PendingCheckpoint::new(3, false, vec![(0, 0), (0, 1), (1, 0)]);
        assert_eq!(p.acknowledge(0, 1, snap(1)).unwrap(), AckOutcome::Pending { remaining: 2 });
        assert_eq!(p.acknowledge(1, 0, snap(0)).unwrap(), AckOutcome::Pending { remaining: 1 });
        assert_eq!(p.acknowledge(0, 0, snap(0)).unwrap(), AckOutcome::Complete);
        let m = p.into_manifest("j", 128, &[("v0".into(), 2), ("v1".into(), 1)]);
        assert_eq!(m.vertices[0].subtasks.iter().map(|s| s.subtask).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(m.vertices[1].subtasks.len(), 1);
    }

    #[test]
    fn duplicate_or_unknown_acknowledgement_is_rejected() {
        let mut p = PendingCheckpoint::new(1, false, vec![(0, 0), (0, 1)]);
        p.acknowledge(0, 0, snap(0)).unwrap();
        assert!(p.acknowledge(0, 0, snap(0)).is_err());
        assert!(p.acknowledge(5, 0, snap(0)).is_err());
    }

    /// Records the order of a store's calls (a shim around the in-memory store); with
    /// `failing_list`, listing fails (an object store answering LIST with an error).
    #[derive(Default)]
    struct Recording {
        inner: MemoryCheckpointStore,
        calls: std::sync::Mutex<Vec<String>>,
        failing_list: bool,
    }

    impl CheckpointStore for Recording {
        fn list(&self) -> rill_state::Result<Vec<u64>> {
            if self.failing_list {
                let io = std::io::Error::other("LIST failed (injected)");
                return Err(rill_state::StateError::Io { op: "list", path: "checkpoints".into(), source: io });
            }
            self.inner.list()
        }
        fn read_manifest(&self, id: u64) -> rill_state::Result<Option<Vec<u8>>> {
            self.inner.read_manifest(id)
        }
        fn job_id(&self) -> rill_state::Result<String> {
            self.inner.job_id()
        }
        fn sync_dir(&self, id: u64, rel: &str) -> rill_state::Result<()> {
            self.calls.lock().unwrap().push(format!("sync {id} {rel}"));
            self.inner.sync_dir(id, rel)
        }
        fn write_manifest(&self, id: u64, bytes: &[u8]) -> rill_state::Result<()> {
            self.calls.lock().unwrap().push(format!("manifest {id}"));
            self.inner.write_manifest(id, bytes)
        }
        fn digest(&self, id: u64, path: &str) -> rill_state::Result<Option<(u64, u32)>> {
            self.inner.digest(id, path)
        }
        fn delete(&self, id: u64) -> rill_state::Result<()> {
            self.inner.delete(id)
        }
        fn retire(&self, id: u64) -> rill_state::Result<()> {
            self.inner.retire(id)
        }
        fn retired(&self) -> rill_state::Result<Vec<u64>> {
            self.inner.retired()
        }
    }

    #[test]
    fn every_directory_on_the_path_of_a_named_file_is_synced_before_the_manifest() {
        let file = |path: &str| rill_state::FileDigest { path: path.into(), size: 1, crc32: 0, object: None };
        let mut with_files = snap(0);
        with_files.files =
            vec![file("v0-x-0/operator.bin"), file("v0-x-0/keyed/000007.sst"), file("v0-x-0/keyed/CURRENT")];
        let mut p = PendingCheckpoint::new(7, false, vec![(0, 0)]);
        p.acknowledge(0, 0, with_files).unwrap();
        let store = Recording::default();
        complete_checkpoint(&store, &p.into_manifest("j", 128, &[("v0-x".into(), 1)]), 3).unwrap();
        let calls = store.calls.lock().unwrap().clone();
        let manifest_at = calls.iter().position(|c| c == "manifest 7").expect("manifest written");
        for ancestor in ["v0-x-0/keyed", "v0-x-0", ""] {
            let synced = calls.iter().position(|c| *c == format!("sync 7 {ancestor}"));
            assert!(synced.is_some_and(|i| i < manifest_at), "'{ancestor}' not synced before the manifest: {calls:?}");
        }
        let keyed = calls.iter().position(|c| c == "sync 7 v0-x-0/keyed").unwrap();
        let parent = calls.iter().position(|c| c == "sync 7 v0-x-0").unwrap();
        assert!(keyed < parent, "deepest first: {calls:?}");
    }

    #[test]
    fn completing_a_checkpoint_keeps_only_the_newest_ones() {
        let store = MemoryCheckpointStore::new();
        for epoch in 1..=5 {
            let p = PendingCheckpoint::new(epoch, false, vec![]);
            complete_checkpoint(&store, &p.into_manifest("j", 128, &[]), 3).unwrap();
        }
        let mut left = store.list().unwrap();
        left.sort();
        assert_eq!(left, vec![3, 4, 5]);
    }

    #[test]
    fn a_listing_that_fails_after_the_manifest_is_written_leaves_the_checkpoint_complete() {
        let store = Recording { failing_list: true, ..Recording::default() };
        let p = PendingCheckpoint::new(4, false, vec![]);
        complete_checkpoint(&store, &p.into_manifest("j", 128, &[]), 3).expect("complete despite the listing");
        assert!(store.inner.read_manifest(4).unwrap().is_some(), "the manifest is written");
    }
}
