//! What user code implements: [`Operator`] (one required method, default hooks) and [`Source`].

use std::time::Duration;

use rill_state::{KeyedBackend, OperatorStateSnapshot};

use crate::{Barrier, ProcessingClock, Result, RuntimeError, Watermark};

/// Facts about the subtask an operator runs in.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Job name.
    pub job: String,
    /// Stable id of the vertex (chain of operators) this subtask runs.
    pub vertex: String,
    /// Subtask index, `0..parallelism`.
    pub subtask: usize,
    /// Parallelism of the vertex.
    pub parallelism: usize,
    /// Number of key groups of the job.
    pub max_parallelism: u16,
    /// Unique to this attempt of this process: for naming files the attempt creates.
    pub run_id: String,
}

impl TaskInfo {
    /// `vertex[subtask/parallelism]`, for logs and errors.
    pub fn name(&self) -> String {
        format!("{}[{}/{}]", self.vertex, self.subtask, self.parallelism)
    }

    /// The key groups this subtask owns.
    pub fn key_groups(&self) -> rill_state::KeyGroupRange {
        rill_state::KeyGroupRange::for_subtask(self.subtask, self.parallelism, self.max_parallelism)
    }

    /// `vertex-subtask`: the name of this subtask's directories (working state, snapshots).
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.vertex, self.subtask)
    }
}

/// What a subtask holds for its operators: keyed state, restored and new operator state.
#[derive(Debug)]
pub struct TaskState {
    pub(crate) info: TaskInfo,
    pub(crate) keyed: Option<KeyedBackend>,
    pub(crate) restored: OperatorStateSnapshot,
    pub(crate) snapshot: OperatorStateSnapshot,
    pub(crate) clock: ProcessingClock,
}

impl TaskState {
    pub(crate) fn new(
        info: TaskInfo,
        keyed: Option<KeyedBackend>,
        restored: OperatorStateSnapshot,
        clock: ProcessingClock,
    ) -> Self {
        TaskState { info, keyed, restored, snapshot: OperatorStateSnapshot::default(), clock }
    }
}

/// The context an operator hook runs in: its subtask, its keyed state, its operator state.
#[derive(Debug)]
pub struct Context<'a> {
    pub(crate) state: &'a mut TaskState,
    pub(crate) uid: &'a str,
}

impl<'a> Context<'a> {
    pub(crate) fn new(state: &'a mut TaskState, uid: &'a str) -> Self {
        Context { state, uid }
    }

    /// The subtask this operator instance runs in.
    pub fn info(&self) -> &TaskInfo {
        &self.state.info
    }

    /// Stable id of this operator within the job (used to key its operator state).
    pub fn operator_id(&self) -> &str {
        self.uid
    }

    /// The subtask's processing-time clock (the system clock in jobs, a manual one in tests).
    pub fn clock(&self) -> &ProcessingClock {
        &self.state.clock
    }

    /// Current processing time in milliseconds since the Unix epoch.
    pub fn processing_time_ms(&self) -> i64 {
        self.state.clock.now_ms()
    }

    /// The subtask's keyed state. Only operators after a `key_by` have one.
    pub fn keyed_state(&mut self) -> Result<&mut KeyedBackend> {
        let uid = self.uid;
        self.state
            .keyed
            .as_mut()
            .ok_or_else(|| RuntimeError::Config(format!("operator {uid} uses keyed state but its input is not keyed")))
    }

    /// The union of this operator's entries over all subtasks of the restored checkpoint
    /// (empty on a fresh start). Each subtask keeps the entries that belong to it.
    pub fn restored_union_state(&self) -> &[Vec<u8>] {
        self.state.restored.get(self.uid)
    }

    /// Stores this operator's entries in the checkpoint being taken (call from `on_barrier`).
    pub fn put_union_state(&mut self, entries: Vec<Vec<u8>>) {
        self.state.snapshot.put(self.uid, entries);
    }
}

/// Where an operator puts its output.
#[derive(Debug)]
pub struct Collector<T> {
    pub(crate) records: Vec<T>,
    pub(crate) watermark: Option<Watermark>,
    pub(crate) idle: bool,
}

impl<T> Default for Collector<T> {
    fn default() -> Self {
        Collector { records: Vec::new(), watermark: None, idle: false }
    }
}

impl<T> Collector<T> {
    /// Emits one record.
    #[inline]
    pub fn emit(&mut self, record: T) {
        self.records.push(record);
    }

    /// Emits a batch of records (moved, without copying when nothing was emitted before).
    #[inline]
    pub fn emit_all(&mut self, records: Vec<T>) {
        if self.records.is_empty() {
            self.records = records;
        } else {
            self.records.extend(records);
        }
    }

    /// Emits a watermark after the records emitted so far.
    pub fn emit_watermark(&mut self, watermark: Watermark) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }

    /// Declares this output idle after what was emitted so far: until it emits records or a
    /// watermark again, downstream operators do not wait for its event time. Sources call this
    /// when they have nothing to read (a subtask without splits or shards, for instance).
    pub fn mark_idle(&mut self) {
        self.idle = true;
    }

    /// Number of records emitted and not yet passed on.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.watermark.is_none() && !self.idle
    }

    /// Drains the records emitted so far, keeping the buffer (for operators that run a user
    /// function into a scratch collector and pass its records on).
    pub fn drain(&mut self) -> std::vec::Drain<'_, T> {
        self.records.drain(..)
    }

    /// Takes what was emitted: the records, then the watermark, then whether it went idle (tests
    /// and custom drivers).
    pub fn take(&mut self) -> (Vec<T>, Option<Watermark>, bool) {
        (std::mem::take(&mut self.records), self.watermark.take(), std::mem::take(&mut self.idle))
    }
}

/// A stream operator. Only [`Operator::process`] is required; every hook has a sensible default.
///
/// The runtime calls hooks on one thread per subtask, with inputs already aligned: an operator
/// never sees records of checkpoint n+1 before the barrier of checkpoint n.
pub trait Operator<I, O>: Send + 'static {
    /// Handles one record.
    fn process(&mut self, record: I, ctx: &mut Context<'_>, out: &mut Collector<O>) -> Result<()>;

    /// Handles a batch of records. The default calls [`Operator::process`] for each; operators that
    /// pass records on unchanged may move the whole batch (see [`Collector::emit_all`]).
    #[inline]
    fn process_batch(&mut self, batch: Vec<I>, ctx: &mut Context<'_>, out: &mut Collector<O>) -> Result<()> {
        for record in batch {
            self.process(record, ctx, out)?;
        }
        Ok(())
    }

    /// Called once before the first record, after state is restored: register state here.
    fn on_open(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }

    /// Event time advanced. The default forwards the watermark.
    fn on_watermark(&mut self, watermark: Watermark, _ctx: &mut Context<'_>, out: &mut Collector<O>) -> Result<()> {
        out.emit_watermark(watermark);
        Ok(())
    }

    /// Every input is idle (see [`Collector::mark_idle`]). The default passes the idleness on.
    fn on_idle(&mut self, _ctx: &mut Context<'_>, out: &mut Collector<O>) -> Result<()> {
        out.mark_idle();
        Ok(())
    }

    /// Processing time advanced to `now_ms` (milliseconds since the Unix epoch). Called
    /// periodically, every [`crate::JobConfig::tick_interval`], until end of input: fire
    /// processing-time timers and emit periodic watermarks here.
    fn on_processing_time(&mut self, _now_ms: i64, _ctx: &mut Context<'_>, _out: &mut Collector<O>) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier arrived (aligned): snapshot operator state here. Keyed state is
    /// snapshotted by the runtime right after.
    fn on_barrier(&mut self, _barrier: Barrier, _ctx: &mut Context<'_>, _out: &mut Collector<O>) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `epoch` is complete and durable (second phase of two-phase commit).
    fn on_commit(&mut self, _epoch: u64, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }

    /// All inputs ended: emit whatever is still held back. Runs before the final checkpoint.
    fn on_end_of_input(&mut self, _ctx: &mut Context<'_>, _out: &mut Collector<O>) -> Result<()> {
        Ok(())
    }

    /// The subtask is shutting down (after the final commit, or on failure).
    fn on_close(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
}

/// What a source reports after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records were (or may soon be) emitted; poll again at once.
    Ready,
    /// Nothing to read now; poll again after at most this long.
    Idle(Duration),
    /// The source is exhausted for good.
    Finished,
}

/// A parallel source. Each subtask gets its own clone. Its position is operator state with union
/// redistribution, so a restore at another parallelism can reassign splits.
pub trait Source<T>: Send + 'static {
    /// Called once before the first poll; restore the position from `ctx.restored_union_state()`.
    fn open(&mut self, ctx: &mut Context<'_>) -> Result<()>;

    /// Emits a small batch. Must return within about 100 ms so that barriers are not delayed.
    fn poll(&mut self, ctx: &mut Context<'_>, out: &mut Collector<T>) -> Result<SourcePoll>;

    /// The position after every record emitted so far, as union-state entries.
    fn snapshot(&mut self, epoch: u64, ctx: &mut Context<'_>) -> Result<Vec<Vec<u8>>>;

    /// Checkpoint `epoch` is complete.
    fn on_commit(&mut self, _epoch: u64, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }

    /// The subtask is shutting down.
    fn on_close(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        Ok(())
    }
}
