//! What user code sees of its subtask: [`TaskInfo`], the [`OperatorContext`] of every hook, the
//! [`OpenContext`] a factory opens an operator with (an operator context plus what is restored),
//! the typed [`UnionState`] of an operator, and the [`Collector`] output goes to.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use rill_observe::JobMonitor;
use rill_state::{KeyedBackend, OperatorStateSnapshot};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ProcessingClock, Result, RuntimeError, Watermark};

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
    /// The job's id: the same for every run and process keeping its checkpoints at one location,
    /// another for another job (see [`rill_state::JOB_ID_FILE`]). For marking what the job owns
    /// outside its checkpoints, such as an output prefix.
    pub job_id: String,
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
pub(crate) struct TaskState {
    pub(crate) info: TaskInfo,
    pub(crate) keyed: Option<KeyedBackend>,
    /// The checkpoint this attempt restored, if any.
    pub(crate) restored_checkpoint: Option<u64>,
    pub(crate) restored: OperatorStateSnapshot,
    pub(crate) snapshot: OperatorStateSnapshot,
    pub(crate) clock: ProcessingClock,
    pub(crate) monitor: JobMonitor,
}

impl TaskState {
    pub(crate) fn new(
        info: TaskInfo,
        keyed: Option<KeyedBackend>,
        restored_checkpoint: Option<u64>,
        restored: OperatorStateSnapshot,
        clock: ProcessingClock,
        monitor: JobMonitor,
    ) -> Self {
        TaskState {
            info,
            keyed,
            restored_checkpoint,
            restored,
            snapshot: OperatorStateSnapshot::default(),
            clock,
            monitor,
        }
    }

    /// The keyed state, with operator `uid` as the owner of what it registers.
    fn keyed_state(&mut self, uid: &str) -> Result<&mut KeyedBackend> {
        let backend = self.keyed.as_mut().ok_or_else(|| {
            RuntimeError::Config(format!("operator {uid} uses keyed state but its input is not keyed"))
        })?;
        backend.set_owner(uid);
        Ok(backend)
    }

    /// Stores operator `uid`'s union-state entries in the checkpoint being taken.
    pub(crate) fn put_union<S: Serialize>(&mut self, uid: &str, entries: &[S]) -> Result<()> {
        let encoded = entries
            .iter()
            .map(|e| {
                bincode::serialize(e)
                    .map_err(|e| RuntimeError::Internal(format!("operator {uid}: union state does not encode: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.snapshot.put(uid, encoded);
        Ok(())
    }

    /// Operator `uid`'s union-state entries of every subtask of the restored checkpoint, decoded.
    pub(crate) fn restored_union<S: DeserializeOwned>(&self, uid: &str) -> Result<Vec<S>> {
        self.restored
            .get(uid)
            .iter()
            .map(|bytes| {
                bincode::deserialize(bytes).map_err(|e| {
                    RuntimeError::Config(format!(
                        "operator {uid}: restored union state does not decode as {}: {e}",
                        std::any::type_name::<S>()
                    ))
                })
            })
            .collect()
    }
}

/// The context of every hook of a running operator or source: its subtask, keyed state, clock and
/// event time.
#[derive(Debug)]
pub struct OperatorContext<'a> {
    pub(crate) state: &'a mut TaskState,
    pub(crate) uid: &'a str,
    /// The key groups of the batch being processed, when the runtime routed it by key.
    key_groups: Option<&'a [u16]>,
    /// The operator's current watermark, as the runtime tracks (and checkpoints) it.
    watermark: Option<Watermark>,
}

impl<'a> OperatorContext<'a> {
    pub(crate) fn new(state: &'a mut TaskState, uid: &'a str, watermark: Option<Watermark>) -> Self {
        OperatorContext { state, uid, key_groups: None, watermark }
    }

    /// The context of `process_batch` for a batch whose records' key groups are `key_groups`
    /// (ignored unless there is exactly one per record).
    pub(crate) fn for_keyed_batch(
        state: &'a mut TaskState,
        uid: &'a str,
        watermark: Option<Watermark>,
        key_groups: Option<&'a [u16]>,
        records: usize,
    ) -> Self {
        let key_groups = key_groups.filter(|groups| groups.len() == records);
        OperatorContext { state, uid, key_groups, watermark }
    }

    /// In `process_batch` of the first operator after a `key_by`: the key group of each record
    /// of the batch, in order, as the exchange computed them while routing the batch here (so
    /// keyed state never hashes a key twice). `None` elsewhere; then a keyed operator hashes the
    /// key itself ([`rill_state::key_group_of`]).
    #[inline]
    pub fn key_groups(&self) -> Option<&'a [u16]> {
        self.key_groups
    }

    /// The operator's current watermark: the highest it has received (in `on_watermark`, the one
    /// being handled), restored with its checkpoint; `None` before the first. The runtime tracks
    /// it, so operators do not.
    #[inline]
    pub fn current_watermark(&self) -> Option<Watermark> {
        self.watermark
    }

    /// The subtask this operator instance runs in.
    pub fn info(&self) -> &TaskInfo {
        &self.state.info
    }

    /// Stable id of this operator within the job (its state is stored under it).
    pub fn operator_id(&self) -> &str {
        self.uid
    }

    /// The subtask's processing-time clock (the system clock in jobs, a manual one in tests).
    pub fn clock(&self) -> &ProcessingClock {
        &self.state.clock
    }

    /// The job's live status, for sources that report shard positions and lag
    /// ([`JobMonitor::report_shard`]) to the dashboard and `/metrics`.
    pub fn monitor(&self) -> &JobMonitor {
        &self.state.monitor
    }

    /// Current processing time in milliseconds since the Unix epoch.
    pub fn processing_time_ms(&self) -> i64 {
        self.state.clock.now_ms()
    }

    /// The subtask's keyed state (to register state handles at open, to use them later). Only
    /// operators after a `key_by` have one; others get a configuration error.
    #[inline]
    pub fn keyed_state(&mut self) -> Result<&mut KeyedBackend> {
        self.state.keyed_state(self.uid)
    }
}

/// What a factory gets when the runtime opens its operator in one subtask: everything of the
/// [`OperatorContext`] (it dereferences to one), and what only exists at open: the restored
/// checkpoint and the operator's restored [`UnionState`].
#[derive(Debug)]
pub struct OpenContext<'a> {
    ctx: OperatorContext<'a>,
}

impl<'a> OpenContext<'a> {
    pub(crate) fn new(state: &'a mut TaskState, uid: &'a str) -> Self {
        OpenContext { ctx: OperatorContext::new(state, uid, None) }
    }

    /// The checkpoint this run restored, if any.
    pub fn restored_checkpoint(&self) -> Option<u64> {
        self.ctx.state.restored_checkpoint
    }

    /// This operator's union state of type `S`: the handle its `on_barrier` snapshots with, and
    /// the entries of every subtask of the restored checkpoint (empty on a fresh start); each
    /// subtask keeps those that belong to it. One per operator: the handle and the restored
    /// entries have the same type, so what is restored is what was snapshotted.
    pub fn union_state<S: Serialize + DeserializeOwned>(&mut self) -> Result<(UnionState<S>, Vec<S>)> {
        let restored = self.ctx.state.restored_union(self.ctx.uid)?;
        Ok((UnionState { _entries: PhantomData }, restored))
    }
}

impl<'a> Deref for OpenContext<'a> {
    type Target = OperatorContext<'a>;

    fn deref(&self) -> &OperatorContext<'a> {
        &self.ctx
    }
}

impl DerefMut for OpenContext<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.ctx
    }
}

/// An operator's non-keyed state (Flink's union list state), typed by its entries `S`: opened with
/// [`OpenContext::union_state`], which also hands back the restored entries; snapshotted in
/// `on_barrier`. On restore, at any parallelism, every subtask gets the entries of all.
pub struct UnionState<S> {
    _entries: PhantomData<fn(S) -> S>,
}

impl<S> std::fmt::Debug for UnionState<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionState").field("entries", &std::any::type_name::<S>()).finish()
    }
}

impl<S: Serialize> UnionState<S> {
    /// Stores `entries` as this operator's state in the checkpoint being taken (call from
    /// `on_barrier`; a later call in the same barrier replaces them).
    pub fn snapshot(&self, ctx: &mut OperatorContext<'_>, entries: &[S]) -> Result<()> {
        ctx.state.put_union(ctx.uid, entries)
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

    /// Takes the records emitted so far as a batch to pass on, and reserves as much room for the
    /// next batch, which is usually as large: one allocation per batch instead of a buffer grown
    /// by doubling from empty, copied at every step. At most a channel batch's worth is reserved,
    /// so a rare burst (a window firing) does not keep its size.
    pub(crate) fn take_batch(&mut self) -> Vec<T> {
        let room = self.records.len().min(crate::partition::BATCH_SIZE);
        std::mem::replace(&mut self.records, Vec::with_capacity(room))
    }

    /// Takes what was emitted: the records, then the watermark, then whether it went idle (tests
    /// and custom drivers).
    pub fn take(&mut self) -> (Vec<T>, Option<Watermark>, bool) {
        (std::mem::take(&mut self.records), self.watermark.take(), std::mem::take(&mut self.idle))
    }
}
