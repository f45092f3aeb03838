//! A deterministic test harness for one operator: no threads, no channels, no sleeps.
//!
//! The test feeds records, watermarks, idleness and processing time (a manual clock) by hand,
//! takes snapshots at barriers and restores new instances from them, possibly at another
//! parallelism, then looks at what the operator emitted. Only with the `test-utils` feature.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rill_state::{
    KeyGroupRange, KeyedBackend, KeyedRestoreSource, KeyedStateConfig, OperatorStateSnapshot, DEFAULT_MAX_PARALLELISM,
};

use crate::context::{Collector, OpenContext, OperatorContext, TaskInfo, TaskState};
use crate::operator_watermark;
use crate::{Barrier, Operator, OperatorFactory, OperatorResult, ProcessingClock, Result, RuntimeError, Watermark};

/// What a harness snapshot holds: the keyed state checkpoint and the operator's union state.
#[derive(Debug, Clone)]
pub struct HarnessSnapshot {
    epoch: u64,
    keyed: Option<KeyedRestoreSource>,
    union: OperatorStateSnapshot,
}

/// Drives one operator by hand.
///
/// ```
/// use rill_runtime::{ClonePerSubtask, Collector, OperatorContext, Operator, OperatorHarness, OperatorResult};
/// #[derive(Clone)]
/// struct Double;
/// impl Operator<u64, u64> for Double {
///     fn process(&mut self, r: u64, _: &mut OperatorContext<'_>, out: &mut Collector<u64>) -> OperatorResult {
///         out.emit(r * 2);
///         Ok(())
///     }
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let mut h = OperatorHarness::new(ClonePerSubtask(Double), dir.path()).unwrap();
/// h.process(21).unwrap();
/// h.watermark(5).unwrap();
/// assert_eq!(h.take_output(), vec![42]);
/// assert_eq!(h.take_watermarks(), vec![5]);
/// ```
pub struct OperatorHarness<I, O, Op> {
    op: Op,
    state: TaskState,
    uid: String,
    dir: PathBuf,
    out: Collector<O>,
    output: Vec<O>,
    watermarks: Vec<Watermark>,
    /// The highest watermark fed (checkpointed like the runtime does).
    watermark: Option<Watermark>,
    idle: bool,
    _input: PhantomData<fn(I)>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl<I, O, Op: Operator<I, O>> OperatorHarness<I, O, Op> {
    /// The operator `factory` opens without keyed state, as subtask 0 of 1, at processing time 0.
    pub fn new<F: OperatorFactory<I, O, Operator = Op>>(factory: F, dir: &Path) -> Result<Self> {
        Self::build(factory, dir, 0, 1, None, &[])
    }

    /// The keyed operator `factory` opens holding every key group (subtask 0 of 1), at processing
    /// time 0.
    pub fn keyed<F: OperatorFactory<I, O, Operator = Op>>(factory: F, dir: &Path) -> Result<Self> {
        Self::build(factory, dir, 0, 1, Some(&[]), &[])
    }

    /// An opened keyed operator restored from `snapshots` (those of every subtask of the old
    /// parallelism), as `subtask` of `parallelism`: it holds only its key groups' state.
    pub fn restore_keyed<F: OperatorFactory<I, O, Operator = Op>>(
        factory: F,
        dir: &Path,
        snapshots: &[HarnessSnapshot],
        subtask: usize,
        parallelism: usize,
    ) -> Result<Self> {
        let keyed: Vec<KeyedRestoreSource> = snapshots.iter().filter_map(|s| s.keyed.clone()).collect();
        Self::build(factory, dir, subtask, parallelism, Some(&keyed), snapshots)
    }

    fn build<F: OperatorFactory<I, O, Operator = Op>>(
        factory: F,
        dir: &Path,
        subtask: usize,
        parallelism: usize,
        keyed: Option<&[KeyedRestoreSource]>,
        snapshots: &[HarnessSnapshot],
    ) -> Result<Self> {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let info = TaskInfo {
            job: "harness".into(),
            vertex: "harness".into(),
            subtask,
            parallelism,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            job_id: "harness".into(),
            run_id: format!("harness{n}"),
        };
        let backend = match keyed {
            None => None,
            Some(restore) => {
                let range = KeyGroupRange::for_subtask(subtask, parallelism, DEFAULT_MAX_PARALLELISM);
                let path = dir.join(format!("work-{n}"));
                Some(KeyedBackend::open(path, range, KeyedStateConfig::default(), restore)?)
            }
        };
        let restored = OperatorStateSnapshot::union(snapshots.iter().map(|s| &s.union));
        let checkpoint = snapshots.first().map(|s| s.epoch);
        let mut state = TaskState::new(
            info,
            backend,
            checkpoint,
            restored,
            ProcessingClock::manual(0),
            rill_observe::JobMonitor::new("harness"),
        );
        let uid = "op";
        let op = factory.open(&mut OpenContext::new(&mut state, uid)).map_err(wrap(&state))?;
        let restored_watermark = operator_watermark::restored(&state, uid);
        let mut harness = OperatorHarness {
            op,
            state,
            uid: uid.into(),
            dir: dir.to_path_buf(),
            out: Collector::default(),
            output: Vec::new(),
            watermarks: Vec::new(),
            idle: false,
            watermark: None,
            _input: PhantomData,
        };
        // As in a job: the operator resumes at its watermark of the restored barrier.
        if let Some(w) = restored_watermark {
            harness.watermark(w.timestamp_ms)?;
            harness.take_watermarks();
        }
        Ok(harness)
    }

    /// Calls one hook of the operator and collects what it emitted.
    fn hook<R>(
        &mut self,
        f: impl FnOnce(&mut Op, &mut OperatorContext<'_>, &mut Collector<O>) -> OperatorResult<R>,
    ) -> Result<R> {
        let result =
            f(&mut self.op, &mut OperatorContext::new(&mut self.state, &self.uid, self.watermark), &mut self.out);
        let result = result.map_err(wrap(&self.state))?;
        self.collect();
        Ok(result)
    }

    fn collect(&mut self) {
        let (records, watermark, idle) = self.out.take();
        if !records.is_empty() || watermark.is_some() {
            self.idle = false;
        }
        self.output.extend(records);
        self.watermarks.extend(watermark);
        if idle {
            self.idle = true;
        }
    }

    /// The operator (to inspect it).
    pub fn operator(&self) -> &Op {
        &self.op
    }

    /// The manual processing-time clock.
    pub fn clock(&self) -> &ProcessingClock {
        &self.state.clock
    }

    /// Feeds one record.
    pub fn process(&mut self, record: I) -> Result<()> {
        self.process_all(vec![record])
    }

    /// Feeds a batch of records.
    pub fn process_all(&mut self, records: Vec<I>) -> Result<()> {
        self.hook(|op, ctx, out| op.process_batch(records, ctx, out))
    }

    /// Feeds a batch of records with their key groups, as the runtime hands a batch routed by key
    /// to the first operator after a `key_by` (see [`OperatorContext::key_groups`]).
    pub fn process_keyed(&mut self, records: Vec<I>, key_groups: &[u16]) -> Result<()> {
        let n = records.len();
        let mut ctx = OperatorContext::for_keyed_batch(&mut self.state, &self.uid, self.watermark, Some(key_groups), n);
        let result = self.op.process_batch(records, &mut ctx, &mut self.out);
        result.map_err(wrap(&self.state))?;
        self.collect();
        Ok(())
    }

    /// Feeds a watermark at `timestamp_ms`.
    pub fn watermark(&mut self, timestamp_ms: i64) -> Result<()> {
        self.watermark =
            Some(self.watermark.map_or(Watermark::at(timestamp_ms), |w| w.max(Watermark::at(timestamp_ms))));
        self.hook(|op, ctx, out| op.on_watermark(Watermark::at(timestamp_ms), ctx, out))
    }

    /// Tells the operator that its input is idle.
    pub fn idle(&mut self) -> Result<()> {
        self.hook(|op, ctx, out| op.on_idle(ctx, out))
    }

    /// Moves the manual clock to `now_ms` and calls the processing-time hook.
    pub fn set_processing_time(&mut self, now_ms: i64) -> Result<()> {
        self.state.clock.set(now_ms);
        self.hook(|op, ctx, out| op.on_processing_time(now_ms, ctx, out))
    }

    /// Ends the input (without a watermark: feed [`Watermark::MAX`] first, as sources do).
    pub fn end_of_input(&mut self) -> Result<()> {
        self.hook(|op, ctx, out| op.on_end_of_input(ctx, out))
    }

    /// Takes a checkpoint: the barrier hook, then the keyed state, written under the harness
    /// directory. Restore new instances from the result with [`OperatorHarness::restore_keyed`].
    pub fn snapshot(&mut self, epoch: u64) -> Result<HarnessSnapshot> {
        let barrier = Barrier { epoch, then_stop: false };
        operator_watermark::save(&mut self.state, &self.uid, self.watermark);
        self.hook(|op, ctx, out| op.on_barrier(barrier, ctx, out))?;
        let union = std::mem::take(&mut self.state.snapshot);
        let keyed = match self.state.keyed.as_mut() {
            None => None,
            Some(backend) => {
                let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
                let dir = self.dir.join(format!("checkpoint-{epoch}-{n}"));
                backend.snapshot(&dir)?;
                let states = backend.state_owners().clone();
                Some(KeyedRestoreSource { dir, key_groups: backend.key_groups(), states, partial: false })
            }
        };
        Ok(HarnessSnapshot { epoch, keyed, union })
    }

    /// Tells the operator that checkpoint `epoch` completed.
    pub fn commit(&mut self, epoch: u64) -> Result<()> {
        self.hook(|op, ctx, _| op.on_commit(epoch, ctx))
    }

    /// Closes the operator.
    pub fn close(mut self) -> Result<()> {
        self.hook(|op, ctx, _| op.on_close(ctx))
    }

    /// Takes the records emitted so far.
    pub fn take_output(&mut self) -> Vec<O> {
        std::mem::take(&mut self.output)
    }

    /// Takes the watermarks emitted so far (their timestamps).
    pub fn take_watermarks(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.watermarks).into_iter().map(|w| w.timestamp_ms).collect()
    }

    /// Whether the operator's output is idle (it marked itself idle and emitted nothing since).
    pub fn is_idle(&self) -> bool {
        self.idle
    }
}

/// Wraps an error of the harnessed operator as the runtime does.
fn wrap(state: &TaskState) -> impl FnOnce(crate::BoxError) -> RuntimeError {
    let task = state.info.name();
    move |e| RuntimeError::in_operator("op", task, e)
}
