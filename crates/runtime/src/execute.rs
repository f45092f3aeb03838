//! Running a job: restore, spawn one thread per subtask, coordinate checkpoints, restart on failure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};
use rill_observe::{JobMonitor, JobState, SubtaskMetrics};
use rill_state::decisions::{
    check_checkpoint, decide_leftovers, decide_retirement, find_restore, next_checkpoint_id, scan_manifests,
    CheckpointCheck, RestoreDecision,
};
use rill_state::{
    CheckpointStore, FsCheckpointStore, Manifest, RemoteCheckpointStore, SnapshotUploader, StateError, StateMemory,
};

use crate::context::TaskInfo;
use crate::coordinator::Coordinator;
use crate::graph::{ChannelTable, Graph, Wiring};
use crate::restart::{RestartDecision, RestartTracker};
use crate::restore::{load_vertex_restores, VertexRestore};
use crate::task::{Control, TaskEnv, TaskEvent};
use crate::{ErrorClass, JobConfig, Result, RuntimeError, StreamEnv};

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct JobResult {
    /// Records emitted by the sources in this process (including replays after in-process restarts).
    pub records: u64,
    /// Checkpoints completed in this process (the final one included).
    pub checkpoints: usize,
    /// The checkpoint the first attempt restored, if any.
    pub restored_from: Option<u64>,
    /// In-process restarts after task failures.
    pub restarts: usize,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
    /// Whether the job ended because it was asked to stop (a signal, `POST /api/stop`) rather
    /// than because its sources finished; its last checkpoint is complete and committed.
    pub stopped: bool,
    /// Bytes uploaded to the object-store checkpoint location by the checkpoints completed in
    /// this process (zero for local checkpoints): with incremental uploads, what changed.
    pub uploaded_bytes: u64,
}

impl StreamEnv {
    /// Runs the job to completion: restores the latest complete checkpoint in the checkpoint
    /// directory if there is one, restarts after failures per the restart strategy, and returns
    /// once the final checkpoint after end of input has committed.
    pub fn execute(self, job: &str) -> Result<JobResult> {
        let config = (*self.config).clone();
        let graph = std::mem::take(&mut *self.graph.borrow_mut());
        if let Some((what, _)) = graph.outlets.iter().find(|(_, consumed)| !consumed()) {
            return Err(RuntimeError::Config(format!("{what} is never consumed: end it with a sink")));
        }
        if let Some(error) = graph.errors.first() {
            return Err(RuntimeError::Config(error.clone()));
        }
        graph.operators.generate_uids();
        graph.operator_uids()?;
        let monitor = self.monitor.clone();
        monitor.set_job(job);
        let token = rill_observe::ControlToken::given_or_from_env(config.control_token.clone());
        let served = |e: rill_observe::ObserveError| RuntimeError::Config(e.to_string());
        let _server = match config.metrics_addr {
            Some(addr) => {
                // Control here only if no control address is given and it is safe by default.
                let control =
                    config.control_addr.is_none() && rill_observe::control_on_metrics_addr(addr, token.as_ref());
                let routes = rill_observe::Routes { metrics: true, control };
                Some(rill_observe::serve_with(addr, monitor.clone(), routes, token.clone()).map_err(served)?)
            }
            None => None,
        };
        let _control = match config.control_addr {
            Some(addr) => Some(rill_observe::serve_control(addr, monitor.clone(), token).map_err(served)?),
            None => None,
        };
        let _signals = config
            .stop_on_signals
            .then(|| crate::signals::stop_on_signals(monitor.command_sender(), config.drain_on_signals))
            .transpose()?;
        let result = Runner::new(job, config, graph, monitor.clone())?.run();
        monitor.set_state(if result.is_ok() { JobState::Finished } else { JobState::Failed });
        result
    }
}

struct Runner {
    job: String,
    config: JobConfig,
    graph: Graph,
    /// Where checkpoints are decided: the local directory, or the object store behind it.
    store: Arc<dyn CheckpointStore>,
    /// The local directory every snapshot is written to first.
    local: FsCheckpointStore,
    work_dir: PathBuf,
    monitor: JobMonitor,
    /// Each subtask's live counters, by vertex then subtask.
    metrics: Vec<Vec<Arc<SubtaskMetrics>>>,
    /// Held for the whole run: one job per checkpoint directory at a time.
    _lock: std::fs::File,
}

struct AttemptStats {
    checkpoints: usize,
    uploaded_bytes: u64,
    stopped: bool,
}

struct AttemptFailure {
    error: RuntimeError,
    checkpoints: usize,
    /// A stop was asked for: the job is not restarted.
    stopping: bool,
}

impl Runner {
    fn new(job: &str, config: JobConfig, graph: Graph, monitor: JobMonitor) -> Result<Self> {
        let local = FsCheckpointStore::new(&config.checkpoint_dir)?;
        let store: Arc<dyn CheckpointStore> = match &config.checkpoint_location {
            Some(location) => Arc::new(RemoteCheckpointStore::new(local.clone(), location.clone())),
            None => Arc::new(local.clone()),
        };
        let work_dir = config.checkpoint_dir.join("work");
        let lock_path = config.checkpoint_dir.join(".lock");
        let lock = std::fs::File::create(&lock_path).map_err(RuntimeError::io("create", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(RuntimeError::Config(format!(
                "checkpoint directory {} is in use by another running job",
                config.checkpoint_dir.display()
            )));
        }
        let vertices = graph
            .vertices
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let inputs = graph.edges.iter().filter(|e| e.to == i).map(|e| e.from).collect();
                rill_observe::VertexSpec {
                    id: v.id(i),
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    is_source: v.is_source,
                    inputs,
                }
            })
            .collect();
        let metrics = monitor.register_vertices(vertices);
        Ok(Runner { job: job.to_string(), config, graph, store, local, work_dir, monitor, metrics, _lock: lock })
    }

    /// Records emitted by the sources in this process: what their subtasks counted.
    fn source_records(&self) -> u64 {
        let sources = self.graph.vertices.iter().zip(&self.metrics).filter(|(v, _)| v.is_source);
        sources.flat_map(|(_, subtasks)| subtasks.iter().map(|s| s.records_in())).sum()
    }

    /// Which vertex each chained operator runs in: operator uid to vertex id.
    fn chains(&self) -> HashMap<String, String> {
        let vertices = self.graph.vertices.iter().enumerate();
        vertices.flat_map(|(i, v)| v.operator_uids().map(move |uid| (uid, v.id(i)))).collect()
    }

    fn vertex_ids(&self) -> Vec<String> {
        self.graph.vertices.iter().enumerate().map(|(i, v)| v.id(i)).collect()
    }

    fn run(self) -> Result<JobResult> {
        let start = Instant::now();
        let mut result = JobResult {
            records: 0,
            checkpoints: 0,
            restored_from: None,
            restarts: 0,
            elapsed: Duration::ZERO,
            stopped: false,
            uploaded_bytes: 0,
        };
        let mut explicit = self.config.restore_from;
        let mut restarts = RestartTracker::new(self.config.restart);
        loop {
            // Choosing (and reading) the checkpoint to restore is part of the attempt: an error
            // there (S3 unreachable) is a failure for the restart strategy like any other, and a
            // retry restores what was asked for (the explicit checkpoint, until one attempt has
            // started from it).
            // The location is claimed (first attempt) or its claim checked (later ones) before
            // anything is read or changed: a run fenced off by a newer one stops here.
            let outcome =
                match self.store.claim().map_err(RuntimeError::from).and_then(|()| self.choose_restore(explicit)) {
                    Err(error) => Err(AttemptFailure { error, checkpoints: 0, stopping: false }),
                    Ok(manifest) => {
                        explicit = None;
                        if result.restarts == 0 {
                            result.restored_from = manifest.as_ref().map(|m| m.checkpoint);
                        }
                        self.monitor.attempt_started(manifest.as_ref().map(|m| m.checkpoint));
                        self.attempt(manifest.as_ref())
                    }
                };
            match outcome {
                Ok(stats) => {
                    result.records = self.source_records();
                    result.checkpoints += stats.checkpoints;
                    result.uploaded_bytes += stats.uploaded_bytes;
                    result.elapsed = start.elapsed();
                    result.stopped = stats.stopped;
                    return Ok(result);
                }
                Err(failure) => {
                    result.checkpoints += failure.checkpoints;
                    // Given up, the failure is reported once: by the error this returns.
                    let decision = match failure.error.class() {
                        ErrorClass::Retryable if !failure.stopping => {
                            restarts.on_failure(Instant::now(), random_unit())
                        }
                        _ => RestartDecision::GiveUp,
                    };
                    let RestartDecision::RestartAfter(delay) = decision else {
                        return Err(RuntimeError::JobFailed {
                            job: self.job.clone(),
                            attempts: result.restarts + 1,
                            cause: Box::new(failure.error),
                        });
                    };
                    result.restarts += 1;
                    self.monitor.restarting(&failure.error.to_string());
                    tracing::warn!(job = %self.job, restart = result.restarts, delay_ms = delay.as_millis() as u64,
                        error = %failure.error, "task failed; restarting from the latest complete checkpoint");
                    std::thread::sleep(delay);
                }
            }
        }
    }

    fn choose_restore(&self, explicit: Option<u64>) -> Result<Option<Manifest>> {
        if self.config.ignore_checkpoints {
            return Ok(None);
        }
        if let Some(id) = explicit {
            // The checkpoint asked for cannot be restored: no restart would change that (fatal).
            let unusable = |reason: String| {
                let error = StateError::CorruptCheckpoint { checkpoint: id, reason };
                RuntimeError::Config(format!("the checkpoint to restore from cannot be used: {error}"))
            };
            return match check_checkpoint(self.store.as_ref(), id)? {
                CheckpointCheck::Complete(m) => Ok(Some(*m)),
                CheckpointCheck::Incomplete => {
                    Err(unusable("it has no manifest (never completed, or does not exist)".into()))
                }
                CheckpointCheck::Corrupt(reason) => Err(unusable(reason)),
            };
        }
        match find_restore(self.store.as_ref())? {
            RestoreDecision::Fresh => Ok(None),
            RestoreDecision::Restore { manifest, skipped } => {
                for (id, reason) in skipped {
                    tracing::warn!(checkpoint = id, %reason, "skipping corrupt checkpoint {id}");
                }
                Ok(Some(*manifest))
            }
            RestoreDecision::NoneUsable { skipped } => Err(StateError::NoUsableCheckpoint {
                dir: match &self.config.checkpoint_location {
                    Some(location) => location.url().into(),
                    None => self.local.root().to_path_buf(),
                },
                details: skipped.iter().map(|(id, r)| format!("checkpoint {id}: {r}")).collect::<Vec<_>>().join("; "),
            }
            .into()),
        }
    }

    /// Before an attempt that restores `restored` (or starts fresh): retires every complete
    /// checkpoint newer than it, durably (moved aside, never deleted), so no later restart or
    /// re-run restores one of them; deletes incomplete leftovers that can never complete now.
    /// Manifests that cannot be read are left alone, with a warning.
    fn prepare_checkpoint_dir(&self, restored: Option<u64>) -> Result<()> {
        let scan = scan_manifests(self.store.as_ref())?;
        for (id, error) in &scan.unreadable {
            tracing::warn!(checkpoint = id, %error, "checkpoint manifest unreadable: left in place");
        }
        if let Some(restored) = restored {
            for id in decide_retirement(&scan, restored) {
                tracing::warn!(checkpoint = id, restored, "retiring checkpoint {id}, newer than the restored one");
                self.store.retire(id)?;
            }
        }
        for id in decide_leftovers(&scan, restored) {
            if let Err(e) = self.store.delete(id) {
                tracing::warn!(checkpoint = id, error = %e, "could not delete an incomplete checkpoint");
            }
        }
        // No upload is in flight now (a failed attempt's were cancelled): what no manifest names
        // is left by attempts or processes that died, and goes.
        match self.store.sweep_orphans() {
            Ok(0) => {}
            Ok(swept) => tracing::info!(objects = swept, "deleted shared objects no checkpoint names"),
            Err(e) => tracing::warn!(error = %e, "could not sweep shared objects no checkpoint names"),
        }
        Ok(())
    }

    fn attempt(&self, manifest: Option<&Manifest>) -> Result<AttemptStats, AttemptFailure> {
        let fail = |error| AttemptFailure { error, checkpoints: 0, stopping: false };
        let restores = match manifest {
            Some(m) => {
                let dir = self.local.checkpoint_dir(m.checkpoint);
                let uids = self.graph.operator_uids().map_err(fail)?;
                load_vertex_restores(m, &dir, &self.vertex_ids(), &uids, &self.chains(), &self.config).map_err(fail)?
            }
            None => HashMap::new(),
        };
        if let Err(e) = std::fs::remove_dir_all(&self.work_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(fail(RuntimeError::Io {
                    op: "clear working state",
                    path: self.work_dir.clone(),
                    source: e,
                }));
            }
        }
        // The next id is above every id stored, leftovers included: taken before they are
        // deleted, so an id is never used twice.
        let mut stored = self.store.list().map_err(|e| fail(e.into()))?;
        stored.extend(self.store.retired().map_err(|e| fail(e.into()))?);
        let first_epoch = next_checkpoint_id(&stored);
        self.prepare_checkpoint_dir(manifest.map(|m| m.checkpoint)).map_err(fail)?;
        let job_id = self.store.job_id().map_err(|e| fail(e.into()))?;

        let (events_tx, events_rx) = unbounded();
        let mut channels = ChannelTable::default();
        for edge in &self.graph.edges {
            let up = self.graph.vertices[edge.from].parallelism;
            let down = self.graph.vertices[edge.to].parallelism;
            (edge.channels)(up, down, self.config.channel_capacity, &mut channels);
        }
        let mut controls: Vec<(usize, usize, Sender<Control>)> = Vec::new();
        let mut threads = Vec::new();
        let mut uploaders = Vec::new();
        let spawn_result =
            self.spawn_all(&job_id, &restores, &mut channels, &events_tx, &mut controls, &mut threads, &mut uploaders);
        // However the attempt ends, no upload of it outlives it.
        let _cancel = CancelUploads(uploaders);
        drop(channels);
        drop(events_tx);
        if let Err(error) = spawn_result {
            abort_and_join(&controls, threads);
            return Err(fail(error));
        }

        let mut coordinator = Coordinator::new(
            &self.job,
            &self.config,
            &self.graph,
            self.store.as_ref(),
            &controls,
            first_epoch,
            &self.monitor,
        );
        let outcome = coordinator.run(&events_rx, threads.len());
        let stats = AttemptStats {
            checkpoints: coordinator.completed,
            uploaded_bytes: coordinator.uploaded_bytes,
            stopped: coordinator.stopping(),
        };
        match outcome {
            Ok(()) => {
                for t in threads {
                    let _ = t.join();
                }
                Ok(stats)
            }
            Err(error) => {
                abort_and_join(&controls, threads);
                Err(AttemptFailure { error, checkpoints: stats.checkpoints, stopping: stats.stopped })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_all(
        &self,
        job_id: &str,
        restores: &HashMap<String, VertexRestore>,
        channels: &mut ChannelTable,
        events: &Sender<TaskEvent>,
        controls: &mut Vec<(usize, usize, Sender<Control>)>,
        threads: &mut Vec<std::thread::JoinHandle<()>>,
        uploaders: &mut Vec<SnapshotUploader>,
    ) -> Result<()> {
        let run_id = new_run_id();
        let keyed_subtasks = self.graph.vertices.iter().filter(|v| v.keyed).map(|v| v.parallelism).sum();
        let keyed_memory = StateMemory::new(&self.config.keyed_state, keyed_subtasks);
        for (index, vertex) in self.graph.vertices.iter().enumerate() {
            let id = vertex.id(index);
            // A restore has an entry for every vertex; a fresh start has none.
            let restore = Arc::new(restores.get(&id).cloned().unwrap_or_default());
            let factory = vertex
                .factory
                .clone()
                .ok_or_else(|| RuntimeError::Internal(format!("operator chain {id} has no task factory")))?;
            for subtask in 0..vertex.parallelism {
                let info = TaskInfo {
                    job: self.job.clone(),
                    vertex: id.clone(),
                    subtask,
                    parallelism: vertex.parallelism,
                    max_parallelism: self.config.max_parallelism,
                    job_id: job_id.to_string(),
                    run_id: run_id.clone(),
                };
                let metrics = self.metrics[index][subtask].clone();
                let task = factory(&mut Wiring { info: info.clone(), channels, metrics: metrics.clone() })?;
                let (control_tx, control_rx) = unbounded();
                controls.push((index, subtask, control_tx));
                let uploader = self.config.checkpoint_location.as_ref().map(|location| {
                    let uploader = SnapshotUploader::new(location.clone(), format!("{run_id}-{}", info.dir_name()));
                    match restore.reusable.iter().find(|(key_groups, _)| *key_groups == info.key_groups()) {
                        Some((_, files)) => uploader.reusing(files),
                        None => uploader,
                    }
                });
                uploaders.extend(uploader.clone());
                let env = TaskEnv {
                    info: info.clone(),
                    vertex: index,
                    control: control_rx,
                    events: events.clone(),
                    restore: restore.clone(),
                    keyed: vertex.keyed,
                    keyed_config: self.config.keyed_state.clone(),
                    keyed_memory: keyed_memory.clone(),
                    work_dir: self.work_dir.clone(),
                    checkpoints: self.local.clone(),
                    uploader,
                    tick_interval: self.config.tick_interval,
                    max_drift: self.config.watermark_alignment,
                    metrics,
                    monitor: self.monitor.clone(),
                };
                let handle = std::thread::Builder::new()
                    .name(format!("{}-{}", id, subtask))
                    .spawn(move || run_task(task, env))
                    .map_err(RuntimeError::io("spawn thread for", info.name()))?;
                threads.push(handle);
            }
        }
        Ok(())
    }
}

/// Cancels the uploads of an attempt when dropped.
struct CancelUploads(Vec<SnapshotUploader>);

impl Drop for CancelUploads {
    fn drop(&mut self) {
        for uploader in &self.0 {
            uploader.cancel();
        }
    }
}

/// A number uniform in [0, 1), for restart jitter (no need for a good generator).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A short id unique to one attempt of one process, for naming files an attempt creates.
fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mix = nanos ^ (u64::from(std::process::id()) << 32) ^ ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    format!("{:012x}", mix & 0xffff_ffff_ffff)
}

fn run_task(mut task: Box<dyn crate::task::Task>, env: TaskEnv) {
    let name = env.info.name();
    let event = match crate::panics::catch_task_panic(|| task.run(&env)) {
        Ok(Ok(())) => TaskEvent::Done,
        Ok(Err(error)) => TaskEvent::Failed { error: RuntimeError::TaskFailed { task: name, cause: Box::new(error) } },
        Err(message) => TaskEvent::Failed { error: RuntimeError::Panic { task: name, message } },
    };
    let _ = env.events.send(event);
    // Only now do this task's channels close.
    drop(task);
}

fn abort_and_join(controls: &[(usize, usize, Sender<Control>)], threads: Vec<std::thread::JoinHandle<()>>) {
    for (_, _, c) in controls {
        let _ = c.send(Control::Abort);
    }
    for t in threads {
        let _ = t.join();
    }
}
