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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rill_runtime::{
    Collector, KeySelector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult, RuntimeError,
    Watermark,
};
use rill_state::{key_group_of, KeyedScope, MapState, StateKey, ValueState};

use super::assigner::{tumbling_window, TimeWindow, WindowAssigner};
use super::functions::{WindowContents, WindowFunction};
use super::late::LatePolicy;
use crate::timers::TimerList;
use crate::watermark_strategy::TimestampFn;

/// How records are put into windows; shared by every subtask.
pub(crate) struct WindowSpec<K, T> {
    pub(crate) key: KeySelector<T, K>,
    pub(crate) timestamps: TimestampFn<T>,
    pub(crate) assigner: WindowAssigner,
    pub(crate) lateness_ms: i64,
    pub(crate) late_records: Arc<AtomicU64>,
}

impl<K, T> Clone for WindowSpec<K, T> {
    fn clone(&self) -> Self {
        WindowSpec {
            key: self.key.clone(),
            timestamps: self.timestamps.clone(),
            assigner: self.assigner,
            lateness_ms: self.lateness_ms,
            late_records: self.late_records.clone(),
        }
    }
}

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
    _late: PhantomData<fn() -> L>,
}

/// What one subtask's instance builds at open.
struct Run<K, A> {
    contents: MapState<K, TimeWindow, WindowContents<A>>,
    /// Session windows only: each key's current sessions.
    sessions: Option<ValueState<K, Vec<TimeWindow>>>,
    /// Each window at its next timer: its last millisecond, or its cleanup time once fired (plus
    /// stale entries, skipped when due).
    timers: TimerList<(K, TimeWindow)>,
    /// The operator's current watermark, as the runtime hands it out
    /// ([`OperatorContext::current_watermark`]), read at the start of each hook.
    watermark: i64,
    max_parallelism: u16,
    late: u64,
    windows: Vec<TimeWindow>,
    operator: String,
}

impl<K: StateKey, A> Run<K, A> {
    /// When a window's contents are purged.
    fn cleanup_time(window: &TimeWindow, lateness: i64) -> i64 {
        window.max_timestamp().saturating_add(lateness)
    }

    fn is_late(&self, window: &TimeWindow, lateness: i64) -> bool {
        Self::cleanup_time(window, lateness) <= self.watermark
    }

    /// Where a stored window's timer is.
    fn timer_time(window: &TimeWindow, fired: bool, lateness: i64) -> i64 {
        if fired {
            Self::cleanup_time(window, lateness)
        } else {
            window.max_timestamp()
        }
    }
}

/// What adding a record did to its window.
enum Added {
    New,
    Existing,
    /// The window had fired (before a restore) and the watermark is below its end again.
    Reopened,
}

/// What a due timer does to its window.
enum Due<A> {
    Fire(A),
    Purge,
    /// The window merged away, or its timer moved: nothing.
    Stale,
}

/// The operator's current watermark in milliseconds (`i64::MIN` before the first).
fn event_time(ctx: &OperatorContext<'_>) -> i64 {
    ctx.current_watermark().map_or(i64::MIN, |w| w.timestamp_ms)
}

/// Emits a window's results.
fn emit<K, T, F: WindowFunction<K, T>, O>(
    function: &mut F,
    key: &K,
    window: TimeWindow,
    acc: &F::Acc,
    out: &mut Collector<O>,
    wrap: fn(F::Out) -> O,
) -> OperatorResult {
    function.emit(key, window, acc, out, wrap)
}

/// The operator's view of one subtask: spec, function, run state, output wrapping.
struct Step<'r, K, T, F: WindowFunction<K, T>, O> {
    spec: &'r WindowSpec<K, T>,
    function: &'r mut F,
    run: &'r mut Run<K, F::Acc>,
    wrap: fn(F::Out) -> O,
}

impl<K: StateKey, T, F: WindowFunction<K, T>, O> Step<'_, K, T, F, O> {
    /// Adds `record` to a window that is not late.
    fn add_to_window(
        &mut self,
        scope: &mut KeyedScope<'_, K>,
        window: TimeWindow,
        record: T,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        let fire = window.max_timestamp();
        // Not late, so firing at once happens only within the allowed lateness.
        let fires_now = self.run.watermark >= fire;
        let function = &mut *self.function;
        // One lookup: the contents tell whether the window exists and where its timer is.
        let (added, snapshot) = self.run.contents.update(scope, &window, |c| {
            let (acc, added) = match c {
                None => (function.add(None, record), Added::New),
                Some(c) if c.fired && !fires_now => (function.add(Some(c.acc), record), Added::Reopened),
                Some(c) => (function.add(Some(c.acc), record), Added::Existing),
            };
            let snapshot = fires_now.then(|| acc.clone());
            (Some(WindowContents { acc, fired: fires_now }), (added, snapshot))
        })?;
        if let Some(acc) = snapshot {
            // Late firing: every record within the allowed lateness fires the window again.
            emit(self.function, scope.key(), window, &acc, out, self.wrap)?;
        }
        match added {
            Added::New if fires_now => {
                let cleanup = Run::<K, F::Acc>::cleanup_time(&window, self.spec.lateness_ms);
                self.run.timers.push(cleanup, (scope.key().clone(), window));
            }
            // Fired before a restore, and the watermark restarted below it: fire again on time.
            Added::New | Added::Reopened => self.run.timers.push(fire, (scope.key().clone(), window)),
            Added::Existing => {}
        }
        Ok(())
    }

    /// Adds `record` with timestamp `ts` to the key's sessions, merging those it touches.
    /// Returns the record back if it is late.
    fn add_to_session(
        &mut self,
        scope: &mut KeyedScope<'_, K>,
        ts: i64,
        gap: i64,
        record: T,
        out: &mut Collector<O>,
    ) -> OperatorResult<Option<T>> {
        let lateness = self.spec.lateness_ms;
        let Some(sessions) = self.run.sessions else {
            return Err(RuntimeError::Internal("session windows without session state".into()).into());
        };
        let own = TimeWindow::new(ts, ts.saturating_add(gap));
        let mut list = sessions.get(scope)?.unwrap_or_default();
        let (touching, mut rest): (Vec<TimeWindow>, Vec<TimeWindow>) = list.drain(..).partition(|s| s.intersects(&own));
        let merged = touching.iter().fold(own, |m, s| m.cover(s));
        if self.run.is_late(&merged, lateness) {
            return Ok(Some(record));
        }
        if touching.len() == 1 && touching[0] == merged {
            self.add_to_window(scope, merged, record, out)?;
            return Ok(None);
        }
        let contents = self.run.contents;
        let mut acc = None;
        for window in &touching {
            // Their timers stay in the list and are skipped when due: the contents are gone.
            let Some(c) = contents.take(scope, window)? else { continue };
            acc = Some(match acc {
                None => c.acc,
                Some(a) => self.function.merge(a, c.acc),
            });
        }
        let acc = self.function.add(acc, record);
        rest.push(merged);
        sessions.set(scope, rest)?;
        let entry = (scope.key().clone(), merged);
        let fired = self.run.watermark >= merged.max_timestamp();
        if fired {
            emit(self.function, scope.key(), merged, &acc, out, self.wrap)?;
        }
        self.run.timers.push(Run::<K, F::Acc>::timer_time(&merged, fired, lateness), entry);
        // The merged window differs from every stored one (sessions never touch each other).
        contents.insert_new(scope, merged, WindowContents { acc, fired })?;
        Ok(None)
    }

    /// Fires and purges every window whose timer is at or before the watermark.
    fn fire_due(&mut self, backend: &mut rill_state::KeyedBackend, out: &mut Collector<O>) -> OperatorResult {
        let lateness = self.spec.lateness_ms;
        let contents = self.run.contents;
        while let Some((time, windows)) = self.run.timers.pop_due(self.run.watermark) {
            for (key, window) in windows {
                let mut scope = KeyedScope::new(&mut *backend, &key, key_group_of(&key, self.run.max_parallelism));
                if lateness == 0 {
                    // Fire and purge; a stale timer finds no contents.
                    if let Some(c) = contents.take(&mut scope, &window)? {
                        emit(self.function, &key, window, &c.acc, out, self.wrap)?;
                        self.forget_session(&mut scope, &window)?;
                    }
                    continue;
                }
                let cleanup = Run::<K, F::Acc>::cleanup_time(&window, lateness);
                let due = contents.update(&mut scope, &window, |c| match c {
                    Some(c) if !c.fired && time == window.max_timestamp() => {
                        let acc = c.acc.clone();
                        (Some(WindowContents { acc: c.acc, fired: true }), Due::Fire(acc))
                    }
                    Some(c) if c.fired && time == cleanup => (None, Due::Purge),
                    other => (other, Due::Stale),
                })?;
                match due {
                    Due::Fire(acc) => {
                        emit(self.function, &key, window, &acc, out, self.wrap)?;
                        self.run.timers.push(cleanup, (key.clone(), window));
                    }
                    Due::Purge => self.forget_session(&mut scope, &window)?,
                    Due::Stale => {}
                }
            }
        }
        Ok(())
    }

    fn forget_session(&mut self, scope: &mut KeyedScope<'_, K>, window: &TimeWindow) -> OperatorResult {
        if let Some(sessions) = self.run.sessions {
            sessions.update(scope, |list| {
                let mut list = list.unwrap_or_default();
                list.retain(|s| s != window);
                (!list.is_empty()).then_some(list)
            })?;
        }
        Ok(())
    }
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
        let contents =
            backend.map_state::<K, TimeWindow, WindowContents<F::Acc>>(&format!("{operator}/window-contents"))?;
        let sessions = match self.spec.assigner.is_merging() {
            true => Some(backend.value_state::<K, Vec<TimeWindow>>(&format!("{operator}/sessions"))?),
            false => None,
        };
        let mut timers = TimerList::default();
        for (_, key, window, c) in backend.preload_map_state::<K, TimeWindow, WindowContents<F::Acc>>(contents)? {
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
        let mut step = Step { spec, function: &mut self.function, run, wrap: L::fired::<F::Out> };
        for (i, record) in batch.into_iter().enumerate() {
            let ts = (spec.timestamps)(&record);
            let key = spec.key.key(&record);
            let group = match key_groups {
                Some(groups) => groups[i],
                None => key_group_of(&key, step.run.max_parallelism),
            };
            let mut scope = KeyedScope::new(&mut *backend, &key, group);
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
