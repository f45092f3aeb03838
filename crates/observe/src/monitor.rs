//! [`JobMonitor`]: the live status of one job, written by the runtime and read by the server,
//! the progress line and tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::history::subtask_view;
use crate::subtask::SubtaskReading;
use crate::{
    CheckpointStatus, CheckpointView, JobCommand, JobState, JobView, RestartView, ShardView, SubtaskMetrics,
    SubtaskView, VertexView,
};

/// Checkpoints kept in the history.
const CHECKPOINT_HISTORY: usize = 100;
/// Throughput samples kept (one a second).
const THROUGHPUT_HISTORY: usize = 120;
/// Restarts kept.
const RESTART_HISTORY: usize = 50;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A vertex as the runtime registers it.
struct Vertex {
    id: String,
    name: String,
    parallelism: usize,
    is_source: bool,
    inputs: Vec<usize>,
    subtasks: Vec<Arc<SubtaskMetrics>>,
}

struct Sampled {
    at: Instant,
    readings: Vec<Vec<SubtaskReading>>,
    views: Vec<Vec<SubtaskView>>,
}

struct State {
    job: String,
    state: JobState,
    started_at_ms: u64,
    started: Instant,
    restored_from: Option<u64>,
    vertices: Vec<Vertex>,
    restarts: VecDeque<RestartView>,
    restarts_total: u64,
    checkpoints: VecDeque<CheckpointView>,
    completed: u64,
    expired: u64,
    failed: u64,
    shards: BTreeMap<(String, String, String), ShardView>,
    sampled: Option<Sampled>,
    throughput: VecDeque<f64>,
}

struct Inner {
    state: Mutex<State>,
    commands: (Sender<JobCommand>, Receiver<JobCommand>),
}

/// The live status of one job (cheap to clone: a shared handle).
#[derive(Clone)]
pub struct JobMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JobMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobMonitor").field("job", &self.job()).finish_non_exhaustive()
    }
}

/// A vertex of the job graph, as the runtime registers it with the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSpec {
    /// Stable id: the uid of the vertex's first operator (or source).
    pub id: String,
    /// What it does, for people (its kind: a source's name, `keyed`, `union`, ...).
    pub name: String,
    /// Its number of subtasks.
    pub parallelism: usize,
    /// Whether it reads a source.
    pub is_source: bool,
    /// The indices of the vertices that feed it.
    pub inputs: Vec<usize>,
}

impl JobMonitor {
    /// A monitor for the job named `job`, with nothing registered yet.
    pub fn new(job: &str) -> Self {
        JobMonitor {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    job: job.to_string(),
                    state: JobState::Starting,
                    started_at_ms: now_ms(),
                    started: Instant::now(),
                    restored_from: None,
                    vertices: Vec::new(),
                    restarts: VecDeque::new(),
                    restarts_total: 0,
                    checkpoints: VecDeque::new(),
                    completed: 0,
                    expired: 0,
                    failed: 0,
                    shards: BTreeMap::new(),
                    sampled: None,
                    throughput: VecDeque::new(),
                }),
                commands: unbounded(),
            }),
        }
    }

    /// The job's name.
    pub fn job(&self) -> String {
        self.lock().job.clone()
    }

    /// Names the job (when the monitor was made before the job had its name).
    pub fn set_job(&self, job: &str) {
        self.lock().job = job.to_string();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: still readable.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers the job graph's vertices; returns each subtask's counters, by vertex then
    /// subtask.
    pub fn register_vertices(&self, vertices: Vec<VertexSpec>) -> Vec<Vec<Arc<SubtaskMetrics>>> {
        let mut st = self.lock();
        st.vertices = vertices
            .into_iter()
            .map(|VertexSpec { id, name, parallelism, is_source, inputs }| Vertex {
                id,
                name,
                parallelism,
                is_source,
                inputs,
                subtasks: (0..parallelism).map(|_| Arc::new(SubtaskMetrics::default())).collect(),
            })
            .collect();
        st.sampled = None;
        st.vertices.iter().map(|v| v.subtasks.clone()).collect()
    }

    /// The job moved to `state`. When it ended (finished or failed), the requests still waiting
    /// are answered that it ended: nothing will take them any more.
    pub fn set_state(&self, state: JobState) {
        let mut st = self.lock();
        st.state = state;
        if state.has_ended() {
            while let Ok(command) = self.inner.commands.1.try_recv() {
                command.refuse("the job ended before answering");
            }
        }
    }

    /// Hands a request to the job, or gives it back if the job has ended (under the state's lock,
    /// so that a request is either taken by the job or refused, never left waiting).
    pub fn send_command(&self, command: JobCommand) -> Result<(), JobCommand> {
        let st = self.lock();
        if st.state.has_ended() {
            return Err(command);
        }
        self.inner.commands.0.send(command).map_err(|e| e.0)
    }

    /// The job's current state.
    pub fn state(&self) -> JobState {
        self.lock().state
    }

    /// An attempt started, restoring `restored_from` (or fresh).
    pub fn attempt_started(&self, restored_from: Option<u64>) {
        let mut st = self.lock();
        st.restored_from = restored_from;
        st.state = JobState::Running;
        st.shards.clear();
    }

    /// A task failed and the job restarts.
    pub fn restarting(&self, cause: &str) {
        let mut st = self.lock();
        st.state = JobState::Restarting;
        st.restarts_total += 1;
        st.restarts.push_back(RestartView { at_ms: now_ms(), cause: cause.to_string() });
        if st.restarts.len() > RESTART_HISTORY {
            st.restarts.pop_front();
        }
        for c in st.checkpoints.iter_mut().filter(|c| c.status == CheckpointStatus::InProgress) {
            c.status = CheckpointStatus::Failed;
            c.failure = Some("the job restarted".into());
        }
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.lock().restarts_total
    }

    /// Checkpoint `id` was triggered.
    pub fn checkpoint_triggered(&self, id: u64, savepoint: bool, last: bool) {
        let mut st = self.lock();
        st.checkpoints.push_back(CheckpointView {
            id,
            status: CheckpointStatus::InProgress,
            savepoint,
            last,
            triggered_at_ms: now_ms(),
            duration_ms: None,
            size_bytes: None,
            failure: None,
        });
        if st.checkpoints.len() > CHECKPOINT_HISTORY {
            st.checkpoints.pop_front();
        }
    }

    /// Records how checkpoint `id` ended, counting it, and its duration.
    fn finish_checkpoint(&self, id: u64, status: CheckpointStatus, size_bytes: Option<u64>, failure: Option<String>) {
        let mut st = self.lock();
        match status {
            CheckpointStatus::Completed => st.completed += 1,
            CheckpointStatus::Expired => st.expired += 1,
            CheckpointStatus::Failed | CheckpointStatus::InProgress => st.failed += 1,
        }
        if let Some(c) = st.checkpoints.iter_mut().find(|c| c.id == id) {
            c.duration_ms = Some(now_ms().saturating_sub(c.triggered_at_ms));
            c.status = status;
            c.size_bytes = size_bytes;
            c.failure = failure;
        }
    }

    /// Checkpoint `id` completed; its files hold `size_bytes`.
    pub fn checkpoint_completed(&self, id: u64, size_bytes: u64) {
        self.finish_checkpoint(id, CheckpointStatus::Completed, Some(size_bytes), None);
    }

    /// Checkpoint `id` expired (not acknowledged in time).
    pub fn checkpoint_expired(&self, id: u64) {
        let why = "not acknowledged by every subtask within the checkpoint timeout";
        self.finish_checkpoint(id, CheckpointStatus::Expired, None, Some(why.into()));
    }

    /// Checkpoint `id` failed for `reason`.
    pub fn checkpoint_failed(&self, id: u64, reason: &str) {
        self.finish_checkpoint(id, CheckpointStatus::Failed, None, Some(reason.to_string()));
    }

    /// A source reports where it is in one shard. A `None` position or lag keeps the one
    /// reported before; `updated_at_ms` is set here.
    pub fn report_shard(&self, report: ShardView) {
        let key = (report.operator.clone(), report.stream.clone(), report.shard.clone());
        let mut st = self.lock();
        let entry = st.shards.entry(key).or_insert_with(|| ShardView {
            position: None,
            millis_behind_latest: None,
            ..report.clone()
        });
        entry.subtask = report.subtask;
        if report.position.is_some() {
            entry.position = report.position;
        }
        if report.millis_behind_latest.is_some() {
            entry.millis_behind_latest = report.millis_behind_latest;
        }
        entry.finished |= report.finished;
        entry.updated_at_ms = now_ms();
    }

    /// Where a request to the job (savepoint, stop) can be sent.
    pub fn command_sender(&self) -> Sender<JobCommand> {
        self.inner.commands.0.clone()
    }

    /// Requests waiting for the job to take them (tests).
    #[cfg(test)]
    pub(crate) fn pending_commands(&self) -> usize {
        self.inner.commands.1.len()
    }

    /// The next request to the job, if one is waiting.
    pub fn try_command(&self) -> Option<JobCommand> {
        self.inner.commands.1.try_recv().ok()
    }

    /// Takes a new reading of every subtask's counters if the last one is at least `every` old,
    /// and recomputes the rates. Returns whether it did.
    pub fn sample(&self, every: Duration) -> bool {
        let mut st = self.lock();
        let now = Instant::now();
        if st.sampled.as_ref().is_some_and(|s| now.duration_since(s.at) < every) {
            return false;
        }
        let readings: Vec<Vec<SubtaskReading>> =
            st.vertices.iter().map(|v| v.subtasks.iter().map(|s| s.read()).collect()).collect();
        let previous = st.sampled.take();
        let first = previous.is_none();
        let (before, at) = match previous {
            Some(s) => (s.readings, s.at),
            None => (readings.iter().map(|v| vec![SubtaskReading::default(); v.len()]).collect(), st.started),
        };
        let elapsed = now.duration_since(at);
        let views: Vec<Vec<SubtaskView>> = readings
            .iter()
            .zip(&before)
            .map(|(now_v, before_v)| {
                now_v.iter().zip(before_v).enumerate().map(|(i, (n, b))| subtask_view(i, b, n, elapsed)).collect()
            })
            .collect();
        let source_rate: f64 = st
            .vertices
            .iter()
            .zip(&views)
            .filter(|(v, _)| v.is_source)
            .flat_map(|(_, s)| s.iter().map(|x| x.records_in_per_second))
            .sum();
        if !first {
            st.throughput.push_back(source_rate);
            if st.throughput.len() > THROUGHPUT_HISTORY {
                st.throughput.pop_front();
            }
        }
        st.sampled = Some(Sampled { at: now, readings, views });
        true
    }

    /// The job as the dashboard shows it (rates as of the last [`JobMonitor::sample`]).
    pub fn view(&self) -> JobView {
        let st = self.lock();
        let vertices = st
            .vertices
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let subtasks: Vec<SubtaskView> =
                    st.sampled.as_ref().and_then(|s| s.views.get(i).cloned()).unwrap_or_default();
                let sum = |f: fn(&SubtaskView) -> f64| subtasks.iter().map(f).sum::<f64>();
                let max = |f: fn(&SubtaskView) -> f64| subtasks.iter().map(f).fold(0.0, f64::max);
                let watermark = if subtasks.len() == v.parallelism && subtasks.iter().all(|s| s.watermark.is_some()) {
                    subtasks.iter().filter_map(|s| s.watermark).min()
                } else {
                    None
                };
                VertexView {
                    id: v.id.clone(),
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    is_source: v.is_source,
                    inputs: v.inputs.clone(),
                    records_in: subtasks.iter().map(|s| s.records_in).sum(),
                    records_out: subtasks.iter().map(|s| s.records_out).sum(),
                    records_in_per_second: sum(|s| s.records_in_per_second),
                    records_out_per_second: sum(|s| s.records_out_per_second),
                    busy_ms_per_second: max(|s| s.busy_ms_per_second),
                    backpressured_ms_per_second: max(|s| s.backpressured_ms_per_second),
                    watermark,
                    subtasks,
                }
            })
            .collect();
        JobView {
            job: st.job.clone(),
            state: st.state,
            started_at_ms: st.started_at_ms,
            uptime_ms: st.started.elapsed().as_millis() as u64,
            restored_from: st.restored_from,
            records_per_second: st.throughput.back().copied().unwrap_or(0.0),
            throughput: st.throughput.iter().copied().collect(),
            vertices,
            restarts: st.restarts.iter().cloned().collect(),
            last_checkpoint: st.checkpoints.iter().rev().find(|c| c.status == CheckpointStatus::Completed).cloned(),
            checkpoints_completed: st.completed,
            checkpoints_failed: st.expired + st.failed,
        }
    }

    /// The checkpoints of this process, newest first.
    pub fn checkpoints(&self) -> Vec<CheckpointView> {
        self.lock().checkpoints.iter().rev().cloned().collect()
    }

    /// Every shard a source reported, by operator, stream and shard.
    pub fn shards(&self) -> Vec<ShardView> {
        self.lock().shards.values().cloned().collect()
    }

    /// Counts behind the checkpoint metrics: (completed, expired, failed).
    pub(crate) fn checkpoint_counts(&self) -> (u64, u64, u64) {
        let st = self.lock();
        (st.completed, st.expired, st.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_moves_from_in_progress_to_completed_with_its_size() {
        let m = JobMonitor::new("j");
        m.checkpoint_triggered(4, false, false);
        assert_eq!(m.checkpoints()[0].status, CheckpointStatus::InProgress);
        m.checkpoint_completed(4, 1234);
        let c = &m.checkpoints()[0];
        assert_eq!((c.status, c.size_bytes), (CheckpointStatus::Completed, Some(1234)));
        assert_eq!(m.view().last_checkpoint.map(|c| c.id), Some(4));
    }

    #[test]
    fn a_restart_fails_the_checkpoint_in_progress_and_is_listed_with_its_cause() {
        let m = JobMonitor::new("j");
        m.checkpoint_triggered(1, false, false);
        m.restarting("boom");
        assert_eq!(m.checkpoints()[0].status, CheckpointStatus::Failed);
        let v = m.view();
        assert_eq!(v.state, JobState::Restarting);
        assert_eq!(v.restarts[0].cause, "boom");
    }

    #[test]
    fn vertex_rates_sum_their_subtasks_and_throughput_counts_sources() {
        let m = JobMonitor::new("j");
        let subtasks = m.register_vertices(vec![
            VertexSpec { id: "src".into(), name: "source".into(), parallelism: 2, is_source: true, inputs: vec![] },
            VertexSpec { id: "sink".into(), name: "sink".into(), parallelism: 1, is_source: false, inputs: vec![0] },
        ]);
        m.sample(Duration::ZERO);
        subtasks[0][0].add_records_in(10);
        subtasks[0][1].add_records_in(30);
        subtasks[1][0].add_records_in(40);
        std::thread::sleep(Duration::from_millis(20));
        assert!(m.sample(Duration::ZERO));
        let v = m.view();
        assert_eq!(v.vertices[0].records_in, 40);
        assert_eq!(v.vertices[1].inputs, vec![0]);
        assert!(v.records_per_second > 0.0);
        assert_eq!(v.throughput.len(), 1);
    }

    #[test]
    fn a_shard_report_keeps_what_a_later_one_leaves_out() {
        let m = JobMonitor::new("j");
        let report = |position: Option<&str>, lag: Option<i64>| ShardView {
            operator: "kinesis".into(),
            subtask: 0,
            stream: "s".into(),
            shard: "shardId-0".into(),
            position: position.map(Into::into),
            millis_behind_latest: lag,
            finished: false,
            updated_at_ms: 0,
        };
        m.report_shard(report(Some("49"), None));
        m.report_shard(report(None, Some(1500)));
        let s = &m.shards()[0];
        assert_eq!((s.position.as_deref(), s.millis_behind_latest), (Some("49"), Some(1500)));
    }
}
