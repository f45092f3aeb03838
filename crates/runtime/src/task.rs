//! Subtasks: the loop of a source subtask and of a subtask fed by channels, and the checkpoint
//! step they share (snapshot, acknowledge, forward the barrier).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use rill_observe::{JobMonitor, SubtaskMetrics};
use rill_state::{
    FsCheckpointStore, KeyedBackend, KeyedStateConfig, SnapshotDone, SnapshotUploader, StateMemory, SubtaskSnapshot,
    SubtaskSnapshotWriter,
};

use crate::align::{GateEvent, InputGate, Wait};
use crate::chain::{pass_on, Emitter, Opener};
use crate::context::{Collector, OpenContext, OperatorContext, TaskInfo, TaskState};
use crate::restore::VertexRestore;
use crate::source::{Source, SourceFactory, SourcePoll};
use crate::{Barrier, Message, ProcessingClock, Result, RuntimeError, Watermark};

/// What the coordinator tells a subtask.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// Sources only: take a checkpoint now; with `end_event_time` (a stop with drain), emit the
    /// final watermark first, so every timer and window fires before the barrier.
    Trigger { barrier: Barrier, end_event_time: bool },
    /// Checkpoint `epoch` is complete.
    Commit(u64),
    /// Stop: the job is restarting or failing.
    Abort,
}

/// What a subtask tells the coordinator.
#[derive(Debug)]
pub(crate) enum TaskEvent {
    /// The subtask's part of checkpoint `epoch` is durable (and uploaded: `uploaded` bytes).
    Ack {
        epoch: u64,
        vertex: usize,
        snapshot: SubtaskSnapshot,
        uploaded: u64,
    },
    /// The subtask could not make its part of checkpoint `epoch` durable (an upload failed after
    /// its retries): that checkpoint fails, the job goes on.
    Declined {
        epoch: u64,
        reason: String,
    },
    SourceFinished {
        vertex: usize,
        subtask: usize,
    },
    Done,
    Failed {
        error: RuntimeError,
    },
}

/// Everything a subtask needs from its job.
pub(crate) struct TaskEnv {
    pub(crate) info: TaskInfo,
    pub(crate) vertex: usize,
    pub(crate) control: Receiver<Control>,
    pub(crate) events: Sender<TaskEvent>,
    pub(crate) restore: Arc<VertexRestore>,
    pub(crate) keyed: bool,
    pub(crate) keyed_config: KeyedStateConfig,
    /// RocksDB memory and the byte budget, shared by every keyed subtask of the attempt.
    pub(crate) keyed_memory: StateMemory,
    pub(crate) work_dir: PathBuf,
    pub(crate) checkpoints: FsCheckpointStore,
    /// Uploads each snapshot to the object-store checkpoint location before it is acknowledged.
    pub(crate) uploader: Option<SnapshotUploader>,
    /// How often the chain sees processing time advance.
    pub(crate) tick_interval: Duration,
    /// Watermark alignment of the inputs, if on.
    pub(crate) max_drift: Option<Duration>,
    /// This subtask's live counters.
    pub(crate) metrics: Arc<SubtaskMetrics>,
    /// The job's live status.
    pub(crate) monitor: JobMonitor,
}

/// When the chain is next due to see processing time advance.
struct Ticker {
    next: Instant,
    interval: Duration,
}

impl Ticker {
    fn new(interval: Duration) -> Self {
        Ticker { next: Instant::now() + interval, interval }
    }

    /// Whether a tick is due now; if so, the next one is scheduled.
    #[inline]
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        true
    }

    fn until_next(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }
}

impl TaskEnv {
    fn open_state(&self) -> Result<TaskState> {
        let keyed = if self.keyed {
            let dir = self.work_dir.join(self.info.dir_name());
            let (config, memory) = (self.keyed_config.clone(), &self.keyed_memory);
            let started = std::time::Instant::now();
            let backend = KeyedBackend::open_shared(dir, self.info.key_groups(), config, memory, &self.restore.keyed)?;
            if !self.restore.keyed.is_empty() {
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(task = %self.info.dir_name(), sources = self.restore.keyed.len(), ms, "keyed state restored");
            }
            Some(backend)
        } else {
            None
        };
        Ok(TaskState::new(
            self.info.clone(),
            keyed,
            self.restore.checkpoint,
            self.restore.union.clone(),
            ProcessingClock::system(),
            self.monitor.clone(),
        ))
    }

    /// Snapshots operator state (here) and keyed state (its RocksDB part in the background), and
    /// acknowledges the checkpoint to the coordinator once everything is written (and uploaded).
    fn snapshot(&self, st: &mut TaskState, epoch: u64) -> Result<()> {
        let dir = self.checkpoints.checkpoint_dir(epoch);
        let mut writer =
            SubtaskSnapshotWriter::create(&dir, self.info.dir_name(), self.info.subtask, self.info.key_groups())?;
        writer.write_operator_state(&std::mem::take(&mut st.snapshot))?;
        let acknowledge = self.acknowledger(epoch, dir, Instant::now());
        let Some(backend) = st.keyed.as_mut() else {
            acknowledge(Ok(writer.finish()));
            return Ok(());
        };
        let memory = backend.memory_usage();
        self.metrics.set_state_memory(
            (memory.cache_bytes + memory.pending_bytes) as u64,
            memory.memtable_bytes,
            memory.table_readers_bytes,
        );
        tracing::debug!(
            task = %self.info.name(),
            epoch,
            cache_entries = memory.cache_entries,
            cache_bytes = memory.cache_bytes,
            pending_bytes = memory.pending_bytes,
            memtable_bytes = memory.memtable_bytes,
            table_readers_bytes = memory.table_readers_bytes,
            block_cache_bytes = self.keyed_memory.block_cache_bytes(),
            "keyed state memory"
        );
        let keyed_dir = writer.keyed_state_dir();
        let owners = backend.state_owners().clone();
        let done: SnapshotDone =
            Box::new(move |result| acknowledge(result.map(|f| writer.finish_with_keyed_state(f, owners))));
        backend.snapshot_async(&keyed_dir, done)?;
        Ok(())
    }

    /// What becomes of a written snapshot: with an object-store location it is uploaded first
    /// (in the background; a failed upload declines the checkpoint), then acknowledged. A failed
    /// snapshot fails the subtask.
    fn acknowledger(
        &self,
        epoch: u64,
        dir: PathBuf,
        started: Instant,
    ) -> impl FnOnce(rill_state::Result<SubtaskSnapshot>) + Send + 'static {
        let (events, vertex, task) = (self.events.clone(), self.vertex, self.info.name());
        let (metrics, uploader) = (self.metrics.clone(), self.uploader.clone());
        move |written| {
            let snapshot = match written {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    let error = RuntimeError::TaskFailed { task, cause: Box::new(e.into()) };
                    let _ = events.send(TaskEvent::Failed { error });
                    return;
                }
            };
            let Some(uploader) = uploader else {
                metrics.set_checkpoint_async(started.elapsed());
                let _ = events.send(TaskEvent::Ack { epoch, vertex, snapshot, uploaded: 0 });
                return;
            };
            uploader.upload_async(
                epoch,
                dir,
                snapshot,
                Box::new(move |uploaded| {
                    metrics.set_checkpoint_async(started.elapsed());
                    let event = match uploaded {
                        Ok((snapshot, stats)) => {
                            tracing::debug!(%task, epoch, files = stats.files, bytes = stats.bytes, reused = stats.reused,
                                "snapshot uploaded");
                            TaskEvent::Ack { epoch, vertex, snapshot, uploaded: stats.bytes }
                        }
                        Err(e) => TaskEvent::Declined { epoch, reason: format!("{task}: {e}") },
                    };
                    let _ = events.send(event);
                }),
            );
        }
    }

    /// The checkpoint step: operators snapshot, state is written (the RocksDB part continues in
    /// the background and acknowledges when durable), then the barrier goes on downstream.
    fn checkpoint<T>(&self, st: &mut TaskState, chain: &mut dyn Emitter<T>, barrier: Barrier) -> Result<()> {
        let started = std::time::Instant::now();
        chain.prepare_barrier(barrier, st)?;
        self.snapshot(st, barrier.epoch)?;
        self.metrics.set_checkpoint_sync(started.elapsed());
        tracing::debug!(task = %self.info.name(), epoch = barrier.epoch, sync_us = started.elapsed().as_micros() as u64, "snapshot started");
        chain.forward_barrier(barrier, st)
    }

    fn send(&self, event: TaskEvent) -> Result<()> {
        self.events.send(event).map_err(|_| RuntimeError::Aborted)
    }
}

/// A subtask runnable on its own thread.
pub(crate) trait Task: Send {
    /// Runs until the final checkpoint commits, or fails.
    /// Channels and resources stay owned by the task until the caller drops it, so a failing
    /// task reports its error before its neighbours see its channels close.
    fn run(&mut self, env: &TaskEnv) -> Result<()>;
}

/// A source subtask: polls the source and serves checkpoint triggers between polls.
pub(crate) struct SourceTask<T, F> {
    pub(crate) factory: Arc<F>,
    pub(crate) uid: Arc<str>,
    pub(crate) opener: Option<Opener<T>>,
    /// The opened chain; kept here so its channels outlive `run`.
    pub(crate) chain: Option<Box<dyn Emitter<T>>>,
}

impl<T: Send + 'static, F: SourceFactory<T>> Task for SourceTask<T, F> {
    fn run(&mut self, env: &TaskEnv) -> Result<()> {
        let uid = self.uid.clone();
        // Wraps an error of the source with its uid and subtask.
        let wrap = |st: &TaskState| {
            let (uid, task) = (uid.clone(), st.info.name());
            move |e| RuntimeError::in_operator(&uid, task, e)
        };
        let mut st = env.open_state()?;
        let restored = st.restored_union(&uid)?;
        let mut source = self.factory.open(&mut OpenContext::new(&mut st, &uid), restored).map_err(wrap(&st))?;
        let opener = self.opener.take().ok_or_else(|| RuntimeError::Internal("source task run twice".into()))?;
        let chain = self.chain.insert(opener(&mut st)?);
        let mut out = Collector::default();
        let mut finished = false;
        let mut final_epoch = None;
        let mut pending: Option<Control> = None;
        let mut ticker = Ticker::new(env.tick_interval);
        loop {
            let control = match pending.take() {
                Some(c) => Some(c),
                None if finished => Some(env.control.recv().map_err(|_| RuntimeError::Aborted)?),
                None => match env.control.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return Err(RuntimeError::Aborted),
                },
            };
            if let Some(control) = control {
                match control {
                    Control::Trigger { barrier, end_event_time } => {
                        if end_event_time && !finished {
                            chain.watermark(Watermark::MAX, &mut st)?;
                        }
                        let mut ctx = OperatorContext::new(&mut st, &uid, None);
                        let positions = source.on_barrier(barrier, &mut ctx).map_err(wrap(&st))?;
                        st.put_union(&uid, &positions)?;
                        env.checkpoint(&mut st, chain.as_mut(), barrier)?;
                        if barrier.then_stop {
                            // The job is stopping (or every source finished): nothing more is
                            // read; what comes after this barrier would not be in the final
                            // checkpoint.
                            final_epoch = Some(barrier.epoch);
                            if !finished {
                                chain.flush()?;
                                finished = true;
                            }
                        }
                    }
                    Control::Commit(epoch) => {
                        source.on_commit(epoch, &mut OperatorContext::new(&mut st, &uid, None)).map_err(wrap(&st))?;
                        chain.commit(epoch, &mut st)?;
                        if final_epoch == Some(epoch) {
                            source.on_close(&mut OperatorContext::new(&mut st, &uid, None)).map_err(wrap(&st))?;
                            chain.close(&mut st)?;
                            return Ok(());
                        }
                    }
                    Control::Abort => return Err(RuntimeError::Aborted),
                }
                continue;
            }
            if ticker.due() {
                let now = st.clock.now_ms();
                chain.tick(now, &mut st)?;
            }
            let poll = source.poll(&mut OperatorContext::new(&mut st, &uid, None), &mut out).map_err(wrap(&st))?;
            if !out.records.is_empty() {
                env.metrics.add_records_in(out.records.len() as u64);
            }
            if let Some(wm) = out.watermark {
                env.metrics.set_watermark(wm.timestamp_ms);
            }
            pass_on(&mut out, chain.as_mut(), &mut st)?;
            match poll {
                SourcePoll::Ready => {}
                SourcePoll::Idle(wait) => {
                    chain.flush()?;
                    let wait = wait.min(Duration::from_millis(200)).min(ticker.until_next());
                    let waiting = Instant::now();
                    let received = env.control.recv_timeout(wait);
                    env.metrics.add_idle(waiting.elapsed());
                    match received {
                        Ok(c) => pending = Some(c),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return Err(RuntimeError::Aborted),
                    }
                }
                SourcePoll::Finished => {
                    // As in Flink, a finished source ends event time: every timer and window fires
                    // now, before the final checkpoint.
                    chain.watermark(Watermark::MAX, &mut st)?;
                    chain.end_of_input(&mut st)?;
                    chain.flush()?;
                    finished = true;
                    env.send(TaskEvent::SourceFinished { vertex: env.vertex, subtask: env.info.subtask })?;
                }
            }
        }
    }
}

/// A subtask fed by channels from upstream subtasks, aligned by an [`InputGate`].
pub(crate) struct InputTask<T> {
    pub(crate) inputs: Vec<Receiver<Message<T>>>,
    pub(crate) opener: Option<Opener<T>>,
    /// The opened chain; kept here so its channels outlive `run`.
    pub(crate) chain: Option<Box<dyn Emitter<T>>>,
    /// The gate over `inputs` while running; kept here so the receivers outlive `run`.
    pub(crate) gate: Option<InputGate<T, Control>>,
}

impl<T: Send + 'static> Task for InputTask<T> {
    fn run(&mut self, env: &TaskEnv) -> Result<()> {
        let mut st = env.open_state()?;
        let opener = self.opener.take().ok_or_else(|| RuntimeError::Internal("task run twice".into()))?;
        let chain = self.chain.insert(opener(&mut st)?);
        let inputs = std::mem::take(&mut self.inputs);
        let max_drift = env.max_drift.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let gate =
            self.gate.insert(InputGate::new(inputs, env.control.clone(), env.info.name()).with_max_drift(max_drift));
        let mut final_epoch = None;
        let mut ticker = Ticker::new(env.tick_interval);
        let mut ended = false;
        loop {
            if !ended && ticker.due() {
                let now = st.clock.now_ms();
                let (queued, capacity) = gate.queued();
                env.metrics.set_input_queue(queued, capacity);
                chain.tick(now, &mut st)?;
            }
            let event = match gate.next(false)? {
                Some(e) => e,
                None => {
                    chain.flush()?;
                    let wait = if ended { Wait::Forever } else { Wait::Until(ticker.next) };
                    let waiting = Instant::now();
                    let event = gate.next_within(wait)?;
                    env.metrics.add_idle(waiting.elapsed());
                    match event {
                        Some(e) => e,
                        None => continue,
                    }
                }
            };
            match event {
                GateEvent::Data(batch, key_groups) => {
                    env.metrics.add_records_in(batch.len() as u64);
                    chain.push(batch, key_groups.as_deref(), &mut st)?
                }
                GateEvent::Watermark(w) => {
                    env.metrics.set_watermark(w.timestamp_ms);
                    chain.watermark(w, &mut st)?
                }
                GateEvent::Idle => chain.idle(&mut st)?,
                GateEvent::Barrier(barrier) => {
                    env.metrics.set_checkpoint_alignment(gate.last_alignment());
                    env.checkpoint(&mut st, chain.as_mut(), barrier)?;
                    if barrier.then_stop {
                        final_epoch = Some(barrier.epoch);
                    }
                }
                GateEvent::EndOfInput => {
                    ended = true;
                    chain.end_of_input(&mut st)?;
                    chain.flush()?;
                }
                GateEvent::Control(Control::Commit(epoch)) => {
                    chain.commit(epoch, &mut st)?;
                    if final_epoch == Some(epoch) {
                        chain.close(&mut st)?;
                        return Ok(());
                    }
                }
                GateEvent::Control(Control::Trigger { .. }) => {}
                GateEvent::Control(Control::Abort) => return Err(RuntimeError::Aborted),
            }
        }
    }
}
