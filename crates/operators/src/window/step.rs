//! What records and due timers do to the windows of one key: the step logic of the window
//! operator ([`super::operator`]), over the state its subtask opened ([`Run`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rill_runtime::{Collector, KeySelector, OperatorContext, OperatorResult, RuntimeError};
use rill_state::{key_group_of, KeyedScope, MapState, StateKey, ValueState};

use super::assigner::{TimeWindow, WindowAssigner};
use super::functions::{WindowContents, WindowFunction};
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

/// What one subtask's instance builds at open.
pub(super) struct Run<K, A> {
    pub(super) contents: MapState<K, TimeWindow, WindowContents<A>>,
    /// Session windows only: each key's current sessions.
    pub(super) sessions: Option<ValueState<K, Vec<TimeWindow>>>,
    /// Each window at its next timer: its last millisecond, or its cleanup time once fired (plus
    /// stale entries, skipped when due).
    pub(super) timers: TimerList<(K, TimeWindow)>,
    /// The operator's current watermark, as the runtime hands it out
    /// ([`OperatorContext::current_watermark`]), read at the start of each hook.
    pub(super) watermark: i64,
    pub(super) max_parallelism: u16,
    pub(super) late: u64,
    pub(super) windows: Vec<TimeWindow>,
    pub(super) operator: String,
}

impl<K: StateKey, A> Run<K, A> {
    /// When a window's contents are purged.
    pub(super) fn cleanup_time(window: &TimeWindow, lateness: i64) -> i64 {
        window.max_timestamp().saturating_add(lateness)
    }

    pub(super) fn is_late(&self, window: &TimeWindow, lateness: i64) -> bool {
        Self::cleanup_time(window, lateness) <= self.watermark
    }

    /// Where a stored window's timer is.
    pub(super) fn timer_time(window: &TimeWindow, fired: bool, lateness: i64) -> i64 {
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
pub(super) fn event_time(ctx: &OperatorContext<'_>) -> i64 {
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
pub(super) struct Step<'r, K, T, F: WindowFunction<K, T>, O> {
    pub(super) spec: &'r WindowSpec<K, T>,
    pub(super) function: &'r mut F,
    pub(super) run: &'r mut Run<K, F::Acc>,
    pub(super) wrap: fn(F::Out) -> O,
}

impl<K: StateKey, T, F: WindowFunction<K, T>, O> Step<'_, K, T, F, O> {
    /// Adds `record` to a window that is not late.
    pub(super) fn add_to_window(
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
    pub(super) fn add_to_session(
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
    pub(super) fn fire_due(
        &mut self,
        backend: &mut rill_state::KeyedBackend,
        out: &mut Collector<O>,
    ) -> OperatorResult {
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

    pub(super) fn forget_session(&mut self, scope: &mut KeyedScope<'_, K>, window: &TimeWindow) -> OperatorResult {
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
