//! The event-time window operator.
//!
//! Window contents live in keyed state (a RocksDB-backed `MapState<TimeWindow, _>` per key), so
//! they are part of every checkpoint and may exceed memory. A window's timer is a function of its
//! bounds, the allowed lateness and whether it fired already (stored with its contents), so timers
//! are not stored separately: the in-memory timer list is rebuilt at open from the contents of
//! the subtask's key groups, which are preloaded into the state cache. Each record costs one state
//! lookup, which also tells whether its window is new (then its timer is appended) — no RocksDB
//! read while the cache holds every window — and a window that opens and fires between two
//! checkpoints never reaches RocksDB at all. Timers of windows that merged away or moved are left
//! in the list and skipped when they come due, since the contents no longer match them.
//!
//! Semantics follow Flink's `WindowOperator` with the event-time trigger: a window fires once
//! when the watermark reaches its last millisecond; with allowed lateness it is kept until the
//! watermark passes that plus the lateness, and every record arriving meanwhile fires it again
//! with the updated contents. A record is late when every window it belongs to is past the
//! watermark plus the allowed lateness (session windows: the window it would merge into).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use rill_runtime::{
    Collector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult, RuntimeError, Watermark,
};
use rill_state::{key_group_of, KeyedScope, StateKey};

use super::assigner::{tumbling_window, TimeWindow, WindowAssigner};
use super::functions::{WindowContents, WindowFunction};
use super::late::LatePolicy;
use super::step::{event_time, Run, Step, WindowSpec};
use crate::keyed::StateRegistry;
use crate::timers::TimerList;

/// Windows of a keyed stream, computed by `F`, with late records handled by `L`: the factory of
/// [`WindowAggregateOperator`].
pub(crate) struct WindowAggregate<K, T, F, L> {
    spec: WindowSpec<K, T>,
    function: F,
    _late: PhantomData<fn() -> L>,
}

impl<K, T, F, L> WindowAggregate<K, T, F, L> {
    pub(crate) fn new(spec: WindowSpec<K, T>, function: F) -> Self {
        WindowAggregate { spec, function, _late: PhantomData }
    }
}

/// The window operator of one subtask.
pub(crate) struct WindowAggregateOperator<K, T, F: WindowFunction<K, T>, L> {
    spec: WindowSpec<K, T>,
    function: F,
    run: Run<K, F::Acc>,
    /// The keys of the batch being processed: one buffer, reused from batch to batch.
    keys: Vec<K>,
    _late: PhantomData<fn() -> L>,
}

impl<K, T, F, L> WindowAggregateOperator<K, T, F, L>
where
    K: StateKey,
    T: Clone + Send + 'static,
    F: WindowFunction<K, T>,
    L: LatePolicy<T>,
{
    fn late(spec: &WindowSpec<K, T>, run: &mut Run<K, F::Acc>, record: T, out: &mut Collector<L::Output<F::Out>>) {
        run.late += 1;
        spec.late_records.fetch_add(1, Ordering::Relaxed);
        if run.late == 1 {
            tracing::warn!(operator = %run.operator, watermark = run.watermark, "late record: all its windows are closed");
        }
        if let Some(o) = L::late::<F::Out>(record) {
            out.emit(o);
        }
    }
}

impl<K, T, F, L> OperatorFactory<T, L::Output<F::Out>> for WindowAggregate<K, T, F, L>
where
    K: StateKey,
    T: Clone + Send + 'static,
    F: WindowFunction<K, T>,
    L: LatePolicy<T>,
{
    type Operator = WindowAggregateOperator<K, T, F, L>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator> {
        self.spec.assigner.check().map_err(|e| RuntimeError::Config(format!("window {}: {e}", ctx.operator_id())))?;
        if self.spec.lateness_ms < 0 {
            return Err(
                RuntimeError::Config(format!("window {}: allowed lateness is negative", ctx.operator_id())).into()
            );
        }
        let operator = ctx.operator_id().to_string();
        let max_parallelism = ctx.info().max_parallelism;
        let backend = ctx.keyed_state()?;
        // Registered as every keyed operator's state is: named under the operator's uid.
        let mut state = StateRegistry::new(backend, &operator);
        let contents = state.map::<TimeWindow, WindowContents<F::Acc>>("window-contents")?;
        let sessions = match self.spec.assigner.is_merging() {
            true => Some(state.value::<Vec<TimeWindow>>("sessions")?),
            false => None,
        };
        let mut timers = TimerList::default();
        for (_, key, window, c) in
            state.backend().preload_map_state::<K, TimeWindow, WindowContents<F::Acc>>(contents)?
        {
            timers.push(Run::<K, F::Acc>::timer_time(&window, c.fired, self.spec.lateness_ms), (key, window));
        }
        if timers.len() > 0 {
            tracing::debug!(%operator, windows = timers.len(), "restored windows");
        }
        let run = Run {
            contents,
            sessions,
            timers,
            watermark: i64::MIN,
            max_parallelism,
            late: 0,
            windows: Vec::new(),
            operator,
        };
        Ok(WindowAggregateOperator {
            keys: Vec::new(),
            spec: self.spec.clone(),
            function: self.function.clone(),
            run,
            _late: PhantomData,
        })
    }
}

impl<K, T, F, L> Operator<T, L::Output<F::Out>> for WindowAggregateOperator<K, T, F, L>
where
    K: StateKey,
    T: Clone + Send + 'static,
    F: WindowFunction<K, T>,
    L: LatePolicy<T>,
{
    fn process(
        &mut self,
        record: T,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<L::Output<F::Out>>,
    ) -> OperatorResult {
        self.process_batch(vec![record], ctx, out)
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<L::Output<F::Out>>,
    ) -> OperatorResult {
        // The key groups the exchange computed while routing the batch here, or hashed now.
        let key_groups = ctx.key_groups();
        let run = &mut self.run;
        run.watermark = event_time(ctx);
        let backend = ctx.keyed_state()?;
        let spec = &self.spec;
        let lateness = spec.lateness_ms;
        // The batch's keys in one call of the key selector.
        let mut keys = std::mem::take(&mut self.keys);
        spec.key.keys(&batch, &mut keys);
        let mut step = Step { spec, function: &mut self.function, run, wrap: L::fired::<F::Out> };
        for (i, (record, key)) in batch.into_iter().zip(&keys).enumerate() {
            let ts = (spec.timestamps)(&record);
            let group = match key_groups {
                Some(groups) => groups[i],
                None => key_group_of(key, step.run.max_parallelism),
            };
            let mut scope = KeyedScope::new(&mut *backend, key, group);
            match spec.assigner {
                WindowAssigner::Tumbling { size_ms, offset_ms } => {
                    let window = tumbling_window(ts, size_ms, offset_ms);
                    if step.run.is_late(&window, lateness) {
                        Self::late(spec, step.run, record, out);
                    } else {
                        step.add_to_window(&mut scope, window, record, out)?;
                    }
                }
                WindowAssigner::Sliding { .. } => {
                    let mut windows = std::mem::take(&mut step.run.windows);
                    windows.clear();
                    spec.assigner.assign(ts, &mut windows);
                    windows.retain(|w| !step.run.is_late(w, lateness));
                    match windows.split_last() {
                        None => Self::late(spec, step.run, record, out),
                        Some((last, others)) => {
                            for window in others {
                                step.add_to_window(&mut scope, *window, record.clone(), out)?;
                            }
                            step.add_to_window(&mut scope, *last, record, out)?;
                        }
                    }
                    step.run.windows = windows;
                }
                WindowAssigner::Session { gap_ms } => {
                    if let Some(record) = step.add_to_session(&mut scope, ts, gap_ms, record, out)? {
                        Self::late(spec, step.run, record, out);
                    }
                }
            }
        }
        self.keys = keys;
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Watermark,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<L::Output<F::Out>>,
    ) -> OperatorResult {
        let run = &mut self.run;
        run.watermark = event_time(ctx);
        let backend = ctx.keyed_state()?;
        let mut step = Step { spec: &self.spec, function: &mut self.function, run, wrap: L::fired::<F::Out> };
        step.fire_due(backend, out)?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_barrier(
        &mut self,
        barrier: rill_runtime::Barrier,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<L::Output<F::Out>>,
    ) -> OperatorResult {
        let run = &self.run;
        tracing::debug!(operator = %run.operator, epoch = barrier.epoch, open_windows = run.timers.len(), watermark = run.watermark, "window state at barrier");
        Ok(())
    }

    fn on_close(&mut self, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        let run = &self.run;
        if run.late > 0 {
            tracing::info!(operator = %run.operator, late = run.late, "late records dropped or sent to the side output");
        }
        Ok(())
    }
}
