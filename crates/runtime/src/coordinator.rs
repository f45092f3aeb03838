//! Checkpoint coordination: the [`Coordinator`] of an attempt, its I/O loop (triggers, acks,
//! commits, failures). What an acknowledgement does and how a checkpoint becomes complete is in
//! [`crate::pending_checkpoint`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use rill_state::{CheckpointStore, StateError};

use rill_observe::{CommandReply, JobCommand, JobMonitor, JobState};

use crate::graph::Graph;
use crate::pending_checkpoint::{complete_checkpoint, AckOutcome, PendingCheckpoint};
use crate::requests::{Requests, Trigger};
use crate::task::{Control, TaskEvent};
use crate::{Barrier, JobConfig, Result, RuntimeError};

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
                command.refuse("the job is finishing: its last checkpoint is complete");
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
        self.monitor.checkpoint_expired(pending.epoch);
        self.count_failure(pending.epoch, why)
    }

    /// Checkpoint `epoch` failed for `why`: its requests are answered so, and beyond the
    /// tolerable number of failures in a row the job fails over.
    fn count_failure(&mut self, epoch: u64, why: &str) -> Result<()> {
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

    /// Makes `pending` complete, which ends a run of checkpoint failures. A manifest the store
    /// refused or could not take (S3 denying or unreachable) fails the checkpoint, not the job:
    /// it counts towards the tolerable failures, as an expired one does, and its transactions are
    /// committed by a later checkpoint. A manifest another process wrote first, or a newer run
    /// owning the location (fenced), fails the job.
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
            if matches!(e, RuntimeError::State(StateError::ManifestExists { .. } | StateError::Fenced { .. })) {
                self.answer(Err(format!("checkpoint {epoch} failed: {e}")));
                return Err(e);
            }
            return self.count_failure(epoch, &format!("could not be completed: {e}"));
        }
        self.consecutive_failures = 0;
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
