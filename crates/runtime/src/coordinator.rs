//! Checkpoint coordination: the [`Coordinator`] of an attempt, the pure bookkeeping of
//! acknowledgements ([`PendingCheckpoint`]) and the step that makes a checkpoint complete
//! (manifest written durably, then retention applied).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use rill_state::decisions::{decide_scan_retention, scan_manifests};
use rill_state::{CheckpointStore, Manifest, SubtaskSnapshot, VertexSnapshot};

use rill_observe::{CommandReply, JobCommand, JobMonitor, JobState};

use crate::graph::Graph;
use crate::requests::{Requests, Trigger};
use crate::task::{Control, TaskEvent};
use crate::{Barrier, JobConfig, ProcessingClock, Result, RuntimeError};

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
/// durably, then deletes what retention allows.
pub(crate) fn complete_checkpoint(store: &dyn CheckpointStore, manifest: &Manifest, retain: usize) -> Result<()> {
    for dir in manifest.directories() {
        store.sync_dir(manifest.checkpoint, &dir)?;
    }
    store.write_manifest(manifest.checkpoint, &manifest.encode()?)?;
    let scan = scan_manifests(store)?;
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

/// Whether a task failure is only the echo of another task's failure (a closed channel, an abort).
fn is_consequence(error: &RuntimeError) -> bool {
    match error {
        RuntimeError::ChannelClosed { .. } | RuntimeError::Aborted => true,
        RuntimeError::TaskFailed { cause, .. } => is_consequence(cause),
        _ => false,
    }
}

/// When the first failure reported is the echo of another (a neighbour's channel closed), waits
/// briefly for the failure that caused it, so the job reports the real cause.
fn root_cause(first: RuntimeError, events: &crossbeam_channel::Receiver<TaskEvent>) -> RuntimeError {
    if !is_consequence(&first) {
        return first;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Ok(event) = events.recv_deadline(deadline) {
        if let TaskEvent::Failed { error } = event {
            if !is_consequence(&error) {
                return error;
            }
        }
    }
    first
}

/// The checkpoint coordinator of one attempt: triggers checkpoints at the sources, collects
/// acknowledgements, completes checkpoints, tells subtasks to commit, and reports the first
/// failure (its root cause).
pub(crate) struct Coordinator<'a> {
    job: &'a str,
    config: &'a JobConfig,
    graph: &'a Graph,
    store: &'a dyn CheckpointStore,
    controls: &'a [(usize, usize, Sender<Control>)],
    next_epoch: u64,
    pending: Option<PendingCheckpoint>,
    /// Checkpoints that expired in a row.
    consecutive_failures: usize,
    sources_finished: HashSet<(usize, usize)>,
    final_done: bool,
    monitor: &'a JobMonitor,
    requests: Requests,
    /// Replies the pending checkpoint answers.
    replies: Vec<CommandReply>,
    /// Checkpoints completed in this attempt.
    pub(crate) completed: usize,
    /// Bytes uploaded by the checkpoints completed in this attempt.
    pub(crate) uploaded_bytes: u64,
}

impl<'a> Coordinator<'a> {
    pub(crate) fn new(
        job: &'a str,
        config: &'a JobConfig,
        graph: &'a Graph,
        store: &'a dyn CheckpointStore,
        controls: &'a [(usize, usize, Sender<Control>)],
        next_epoch: u64,
        monitor: &'a JobMonitor,
    ) -> Self {
        Coordinator {
            job,
            config,
            graph,
            store,
            controls,
            next_epoch,
            pending: None,
            consecutive_failures: 0,
            sources_finished: HashSet::new(),
            final_done: false,
            monitor,
            requests: Requests::default(),
            replies: Vec::new(),
            completed: 0,
            uploaded_bytes: 0,
        }
    }

    /// Whether a graceful stop was asked for in this attempt.
    pub(crate) fn stopping(&self) -> bool {
        self.requests.stopping()
    }

    fn source_controls(&self) -> impl Iterator<Item = &Sender<Control>> {
        self.controls.iter().filter(|(v, _, _)| self.graph.vertices[*v].is_source).map(|(_, _, c)| c)
    }

    fn trigger(&mut self, trigger: Trigger) {
        let Trigger { then_stop, savepoint, drain } = trigger;
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let expected = self.controls.iter().map(|(v, s, _)| (*v, *s)).collect();
        let mut pending = PendingCheckpoint::new(epoch, then_stop, expected);
        pending.savepoint = savepoint;
        self.pending = Some(pending);
        self.replies = self.requests.replies_for(trigger);
        self.monitor.checkpoint_triggered(epoch, savepoint, then_stop);
        let barrier = Barrier { epoch, then_stop };
        for c in self.source_controls() {
            let _ = c.send(Control::Trigger { barrier, end_event_time: drain });
        }
        tracing::debug!(epoch, then_stop, savepoint, "checkpoint triggered");
    }

    /// Answers the requests the pending checkpoint was for.
    fn answer(&mut self, answer: Result<u64, String>) {
        for reply in self.replies.drain(..) {
            let _ = reply.send(answer.clone());
        }
    }

    /// Takes in the requests that arrived (savepoints, stop).
    fn take_requests(&mut self) {
        while let Some(command) = self.monitor.try_command() {
            if self.final_done {
                let reply = match command {
                    JobCommand::Savepoint { reply } | JobCommand::Stop { reply, .. } => reply,
                };
                if let Some(reply) = reply {
                    let _ = reply.send(Err("the job is finishing: its last checkpoint is complete".into()));
                }
                continue;
            }
            if matches!(command, JobCommand::Stop { .. }) && !self.requests.stopping() {
                tracing::info!(job = %self.job, timeout_ms = self.config.stop_timeout.as_millis() as u64,
                    "stopping: sources stop at the next checkpoint, which is the last");
                self.monitor.set_state(JobState::Stopping);
            }
            self.requests.on_command(command, Instant::now(), self.config.stop_timeout);
        }
    }

    pub(crate) fn run(&mut self, events: &crossbeam_channel::Receiver<TaskEvent>, tasks: usize) -> Result<()> {
        let interval = self.config.checkpoint_interval;
        let total_sources: usize = self.source_controls().count();
        let mut next_trigger = interval.map(|i| Instant::now() + i);
        let mut done = 0usize;
        loop {
            if self.monitor.sample(Duration::from_secs(1)) {
                self.monitor.publish();
            }
            self.take_requests();
            if !self.final_done && self.requests.stop_deadline().is_some_and(|d| Instant::now() >= d) {
                self.answer(Err("the job did not stop within the stop timeout".into()));
                return Err(RuntimeError::StopTimedOut { timeout: self.config.stop_timeout });
            }
            if self.pending.is_none() && !self.final_done {
                let sources_finished = self.sources_finished.len() == total_sources;
                let periodic_due = next_trigger.is_some_and(|t| Instant::now() >= t);
                if let Some(trigger) = self.requests.decide(sources_finished, periodic_due) {
                    self.trigger(trigger);
                }
            }
            let deadline = self.pending.as_ref().map(|p| p.triggered + self.config.checkpoint_timeout);
            let wait = match (next_trigger, deadline) {
                (Some(t), None) => t.saturating_duration_since(Instant::now()),
                (_, Some(d)) => d.saturating_duration_since(Instant::now()),
                (None, None) => Duration::from_millis(200),
            };
            // Requests and sampling are looked at at least five times a second.
            match events.recv_timeout(wait.min(Duration::from_millis(200))) {
                Ok(event) => match event {
                    TaskEvent::Ack { epoch, vertex, snapshot, uploaded } => {
                        let Some(pending) = self.pending.as_mut().filter(|p| p.epoch == epoch) else {
                            if epoch < self.next_epoch {
                                tracing::debug!(epoch, "late acknowledgement of an expired checkpoint, ignored");
                                continue;
                            }
                            return Err(RuntimeError::Internal(format!(
                                "acknowledgement for unknown checkpoint {epoch}"
                            )));
                        };
                        pending.uploaded_bytes += uploaded;
                        if pending.acknowledge(vertex, snapshot.subtask, snapshot)? == AckOutcome::Complete {
                            let pending = self.pending.take().ok_or(RuntimeError::Aborted)?;
                            self.complete(pending)?;
                            self.consecutive_failures = 0;
                            next_trigger = interval.map(|i| Instant::now() + i);
                        }
                    }
                    TaskEvent::Declined { epoch, reason } => {
                        if self.pending.as_ref().is_some_and(|p| p.epoch == epoch) {
                            self.abandon(&format!("declined by {reason}"))?;
                            next_trigger = interval.map(|i| Instant::now() + i);
                        }
                    }
                    TaskEvent::SourceFinished { vertex, subtask } => {
                        self.sources_finished.insert((vertex, subtask));
                    }
                    TaskEvent::Done => {
                        done += 1;
                        if done == tasks {
                            return Ok(());
                        }
                    }
                    TaskEvent::Failed { error, .. } => return Err(root_cause(error, events)),
                },
                Err(RecvTimeoutError::Timeout) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    let timeout = self.config.checkpoint_timeout;
                    self.abandon(&format!("expired: not acknowledged by every subtask within {timeout:?}"))?;
                    next_trigger = interval.map(|i| Instant::now() + i);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(RuntimeError::Aborted),
            }
        }
    }

    /// The pending checkpoint did not complete (it expired, or a subtask declined it): it is
    /// abandoned (its late acknowledgements are ignored; what it pre-committed is committed by a
    /// later checkpoint). Beyond the tolerable number of failures in a row, the job fails over.
    fn abandon(&mut self, why: &str) -> Result<()> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let epoch = pending.epoch;
        self.monitor.checkpoint_expired(epoch);
        self.answer(Err(format!("checkpoint {epoch} {why}")));
        self.consecutive_failures += 1;
        let tolerable = self.config.tolerable_checkpoint_failures;
        if self.consecutive_failures > tolerable {
            return Err(RuntimeError::CheckpointsFailed {
                epoch,
                why: why.to_string(),
                failures: self.consecutive_failures,
            });
        }
        tracing::warn!(epoch, failures = self.consecutive_failures, tolerable, "checkpoint {epoch} {why}; abandoned");
        Ok(())
    }

    fn complete(&mut self, pending: PendingCheckpoint) -> Result<()> {
        let epoch = pending.epoch;
        let then_stop = pending.then_stop;
        let pending_uploaded = pending.uploaded_bytes;
        let started = pending.triggered;
        let vertices: Vec<(String, usize)> =
            self.graph.vertices.iter().enumerate().map(|(i, v)| (v.id(i), v.parallelism)).collect();
        let manifest = pending.into_manifest(self.job, self.config.max_parallelism, &vertices);
        if let Err(e) = complete_checkpoint(self.store, &manifest, self.config.retained_checkpoints) {
            self.monitor.checkpoint_failed(epoch, &e.to_string());
            self.answer(Err(format!("checkpoint {epoch} failed: {e}")));
            return Err(e);
        }
        let bytes: u64 = manifest.files().map(|f| f.size).sum();
        self.monitor.checkpoint_completed(epoch, bytes);
        self.uploaded_bytes += pending_uploaded;
        self.answer(Ok(epoch));
        if manifest.savepoint {
            tracing::info!(job = %self.job, checkpoint = epoch, "savepoint complete");
        }
        self.completed += 1;
        if then_stop {
            self.final_done = true;
        }
        tracing::info!(
            epoch,
            bytes,
            uploaded_bytes = pending_uploaded,
            duration_ms = started.elapsed().as_millis() as u64,
            "checkpoint complete"
        );
        for (_, _, c) in self.controls {
            let _ = c.send(Control::Commit(epoch));
        }
        Ok(())
    }
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

    /// Records the order of a store's calls (a shim around the in-memory store).
    #[derive(Default)]
    struct Recording {
        inner: MemoryCheckpointStore,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl CheckpointStore for Recording {
        fn list(&self) -> rill_state::Result<Vec<u64>> {
            self.inner.list()
        }
        fn read_manifest(&self, id: u64) -> rill_state::Result<Option<Vec<u8>>> {
            self.inner.read_manifest(id)
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
}
