//! Checkpoint coordination: the pure bookkeeping of acknowledgements ([`PendingCheckpoint`]) and
//! the step that makes a checkpoint complete (manifest written durably, then retention applied).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rill_state::decisions::{completed_ids, decide_retention};
use rill_state::{CheckpointStore, Manifest, SubtaskSnapshot, VertexSnapshot};

use crate::{Result, RuntimeError};

/// What an acknowledgement did to its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
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
pub struct PendingCheckpoint {
    /// The checkpoint id.
    pub epoch: u64,
    /// Whether it is the final checkpoint.
    pub then_stop: bool,
    expected: Vec<(usize, usize)>,
    acks: BTreeMap<(usize, usize), SubtaskSnapshot>,
}

impl PendingCheckpoint {
    /// A checkpoint waiting for `expected` (vertex, subtask) pairs.
    pub fn new(epoch: u64, then_stop: bool, expected: Vec<(usize, usize)>) -> Self {
        PendingCheckpoint { epoch, then_stop, expected, acks: BTreeMap::new() }
    }

    /// Records one subtask's acknowledgement. An unknown or repeated acknowledgement is an error.
    pub fn acknowledge(&mut self, vertex: usize, subtask: usize, snapshot: SubtaskSnapshot) -> Result<AckOutcome> {
        if !self.expected.contains(&(vertex, subtask)) {
            return Err(RuntimeError::Config(format!(
                "checkpoint {}: acknowledgement from unknown subtask {vertex}/{subtask}",
                self.epoch
            )));
        }
        if self.acks.insert((vertex, subtask), snapshot).is_some() {
            return Err(RuntimeError::Config(format!(
                "checkpoint {}: subtask {vertex}/{subtask} acknowledged twice",
                self.epoch
            )));
        }
        let remaining = self.expected.len() - self.acks.len();
        Ok(if remaining == 0 { AckOutcome::Complete } else { AckOutcome::Pending { remaining } })
    }

    /// The manifest of the complete checkpoint. `vertices` gives each vertex's id and parallelism.
    pub fn into_manifest(self, job: &str, max_parallelism: u16, vertices: &[(String, usize)]) -> Manifest {
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
            completed_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            final_checkpoint: self.then_stop,
            vertices: snapshots,
        }
    }
}

/// Makes a checkpoint complete: writes its manifest durably, then deletes what retention allows.
pub fn complete_checkpoint(store: &dyn CheckpointStore, manifest: &Manifest, retain: usize) -> Result<()> {
    store.write_manifest(manifest.checkpoint, &manifest.encode()?)?;
    let all = store.list()?;
    let complete = completed_ids(store)?;
    for id in decide_retention(&all, &complete, retain, None) {
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
}
