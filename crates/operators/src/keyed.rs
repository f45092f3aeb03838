//! Keyed operators: `process` with keyed state and timers, and `reduce`.

use std::marker::PhantomData;

use rill_runtime::{
    Collector, KeySelector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult, ProcessingClock,
    Result, Watermark,
};
use rill_state::{key_group_of, KeyedBackend, KeyedScope, ListState, MapState, StateKey, StateValue, ValueState};

use crate::timers::{TimeDomain, TimerService};
use crate::watermark_strategy::TimestampFn;

/// Registers the keyed state a [`KeyedProcessFunction`] uses. Names are scoped to the operator.
pub struct StateRegistry<'a, K> {
    backend: &'a mut KeyedBackend,
    operator: &'a str,
    _key: PhantomData<fn() -> K>,
}

impl<'a, K: StateKey> StateRegistry<'a, K> {
    /// The registry of operator `operator`'s keyed state in `backend`.
    pub(crate) fn new(backend: &'a mut KeyedBackend, operator: &'a str) -> Self {
        StateRegistry { backend, operator, _key: PhantomData }
    }

    /// The backend, to load what was registered (timers, windows).
    pub(crate) fn backend(&mut self) -> &mut KeyedBackend {
        self.backend
    }

    pub(crate) fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.operator)
    }

    /// A single value per key.
    pub fn value<V: StateValue>(&mut self, name: &str) -> Result<ValueState<K, V>> {
        let full = self.name(name);
        Ok(self.backend.value_state::<K, V>(&full)?)
    }

    /// A list per key.
    pub fn list<V: StateValue>(&mut self, name: &str) -> Result<ListState<K, V>> {
        let full = self.name(name);
        Ok(self.backend.list_state::<K, V>(&full)?)
    }

    /// A map per key.
    pub fn map<UK: StateKey, UV: StateValue>(&mut self, name: &str) -> Result<MapState<K, UK, UV>> {
        let full = self.name(name);
        Ok(self.backend.map_state::<K, UK, UV>(&full)?)
    }
}

/// What a keyed process function sees for each record or timer: the key, its state, its timers,
/// and the operator's event and processing time.
pub struct KeyedContext<'a, K> {
    scope: KeyedScope<'a, K>,
    timers: &'a mut TimerService<K>,
    timestamp: Option<i64>,
    watermark: Option<Watermark>,
    clock: &'a ProcessingClock,
}

impl<'a, K: StateKey> KeyedContext<'a, K> {
    /// The current record's (or timer's) key.
    pub fn key(&self) -> &K {
        self.scope.key()
    }

    /// State access for the current key: pass to a state handle's methods.
    pub fn state(&mut self) -> &mut KeyedScope<'a, K> {
        &mut self.scope
    }

    /// The event time of the current record, when the stream is processed with timestamps
    /// (`process_with_timestamps`); in `on_timer`, the timer's time (Flink's `ctx.timestamp()`).
    /// `None` for a record of a stream processed without timestamps.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current watermark (`None` before the first one).
    pub fn current_watermark(&self) -> Option<i64> {
        self.watermark.map(|w| w.timestamp_ms)
    }

    /// Current processing time in milliseconds since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Calls [`KeyedProcessFunction::on_timer`] for the current key once the watermark reaches
    /// `timestamp_ms`. Registering a timer twice is a no-op. Timers are keyed state: they are part
    /// of checkpoints and fire after a restore.
    pub fn register_event_time_timer(&mut self, timestamp_ms: i64) -> Result<()> {
        self.timers.register(TimeDomain::EventTime, &mut self.scope, timestamp_ms)
    }

    /// Calls [`KeyedProcessFunction::on_timer`] for the current key once processing time reaches
    /// `timestamp_ms` (within the job's tick interval).
    pub fn register_processing_time_timer(&mut self, timestamp_ms: i64) -> Result<()> {
        self.timers.register(TimeDomain::ProcessingTime, &mut self.scope, timestamp_ms)
    }

    /// Deletes an event-time timer of the current key (a no-op if there is none).
    pub fn delete_event_time_timer(&mut self, timestamp_ms: i64) -> Result<()> {
        self.timers.delete(TimeDomain::EventTime, &mut self.scope, timestamp_ms)
    }

    /// Deletes a processing-time timer of the current key (a no-op if there is none).
    pub fn delete_processing_time_timer(&mut self, timestamp_ms: i64) -> Result<()> {
        self.timers.delete(TimeDomain::ProcessingTime, &mut self.scope, timestamp_ms)
    }
}

/// A function over a keyed stream with keyed state and timers (Flink's `KeyedProcessFunction`).
///
/// It is opened once per subtask by a closure that registers its state: pass
/// `|state| Ok(MyFunction { count: state.value("count")? })` to `process`, so the state handles
/// are plain fields. Timers registered through the [`KeyedContext`] call
/// [`KeyedProcessFunction::on_timer`] with the key they were registered for: event-time timers
/// when the watermark reaches them, processing-time timers when the clock does. Both are
/// checkpointed with the keyed state, so a restored job fires exactly the timers that had not
/// fired before its checkpoint.
///
/// ```
/// use rill_operators::{KeyedContext, KeyedProcessFunction, StateRegistry};
/// use rill_runtime::{Collector, OperatorResult};
/// use rill_state::ValueState;
///
/// struct RunningCount { count: ValueState<u64, u64> }
///
/// impl KeyedProcessFunction<u64, u64, (u64, u64)> for RunningCount {
///     fn process(&mut self, _r: u64, ctx: &mut KeyedContext<'_, u64>, out: &mut Collector<(u64, u64)>) -> OperatorResult {
///         let n = self.count.get(ctx.state())?.unwrap_or(0) + 1;
///         self.count.set(ctx.state(), n)?;
///         out.emit((*ctx.key(), n));
///         Ok(())
///     }
/// }
///
/// // What `keyed.process(..)` is given: opens the function in each subtask.
/// let open = |state: &mut StateRegistry<'_, u64>| -> OperatorResult<RunningCount> {
///     Ok(RunningCount { count: state.value("count")? })
/// };
/// # let _ = open;
/// ```
pub trait KeyedProcessFunction<K, I, O>: Send + 'static {
    /// Handles one record of the current key.
    fn process(&mut self, record: I, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> OperatorResult;

    /// A timer registered for `ctx.key()` at `timestamp_ms` fired. The default does nothing.
    fn on_timer(
        &mut self,
        _timestamp_ms: i64,
        _domain: TimeDomain,
        _ctx: &mut KeyedContext<'_, K>,
        _out: &mut Collector<O>,
    ) -> OperatorResult {
        Ok(())
    }
}

/// Opens a [`KeyedProcessFunction`] per subtask: the factory behind `process`.
pub struct KeyedProcess<K, I, F> {
    selector: KeySelector<I, K>,
    open: F,
    timestamps: Option<TimestampFn<I>>,
}

impl<K: 'static, I: 'static, F> KeyedProcess<K, I, F> {
    /// Opens functions with `open`, keyed by the stream's key selector
    /// ([`rill_runtime::KeyedStream::key_selector`]).
    pub fn new(selector: KeySelector<I, K>, open: F) -> Self {
        KeyedProcess { selector, open, timestamps: None }
    }

    /// Gives each record's event time to the function ([`KeyedContext::timestamp`]): records
    /// carry no timestamp field, so `timestamps` reads it (usually the stream's
    /// [`crate::WatermarkStrategy`]'s).
    pub fn with_timestamps(self, timestamps: TimestampFn<I>) -> Self {
        KeyedProcess { timestamps: Some(timestamps), ..self }
    }
}

impl<K, I, O, P, F> OperatorFactory<I, O> for KeyedProcess<K, I, F>
where
    K: StateKey,
    I: Send + 'static,
    P: KeyedProcessFunction<K, I, O>,
    F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
{
    type Operator = KeyedProcessOperator<K, I, P>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<KeyedProcessOperator<K, I, P>> {
        KeyedProcessOperator::open(self.selector.clone(), self.timestamps.clone(), ctx, |state| (self.open)(state))
    }
}

/// Runs a [`KeyedProcessFunction`] in one subtask: sets the key (and its key group) before every
/// record and timer, and fires timers as event and processing time advance.
pub struct KeyedProcessOperator<K, I, F> {
    selector: KeySelector<I, K>,
    timestamps: Option<TimestampFn<I>>,
    /// The keys of the batch being processed: one buffer, reused from batch to batch.
    keys: Vec<K>,
    function: F,
    timers: TimerService<K>,
    clock: ProcessingClock,
}

impl<K: StateKey, I, F> KeyedProcessOperator<K, I, F> {
    /// Opens the operator of one subtask: its timers, and the function `open` builds with the
    /// keyed state it registers.
    pub(crate) fn open(
        selector: KeySelector<I, K>,
        timestamps: Option<TimestampFn<I>>,
        ctx: &mut OpenContext<'_>,
        open: impl FnOnce(&mut StateRegistry<'_, K>) -> OperatorResult<F>,
    ) -> OperatorResult<Self> {
        let clock = ctx.clock().clone();
        let operator = ctx.operator_id().to_string();
        let backend = ctx.keyed_state()?;
        let mut state = StateRegistry::new(backend, &operator);
        let timers = TimerService::open(&mut state)?;
        let function = open(&mut state)?;
        Ok(KeyedProcessOperator { selector, timestamps, keys: Vec::new(), function, timers, clock })
    }

    /// The function it runs.
    pub(crate) fn function_mut(&mut self) -> &mut F {
        &mut self.function
    }

    /// Fires the timers of `domain` due at `up_to`, in time order (timers they register that are
    /// due as well fire in the same call).
    fn fire<O>(
        &mut self,
        domain: TimeDomain,
        up_to: i64,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult
    where
        F: KeyedProcessFunction<K, I, O>,
    {
        let max_parallelism = ctx.info().max_parallelism;
        let watermark = ctx.current_watermark();
        let backend = ctx.keyed_state()?;
        let timers = &mut self.timers;
        while let Some((time, keys)) = timers.pop_due(domain, up_to) {
            for key in keys {
                let mut scope = KeyedScope::new(&mut *backend, &key, key_group_of(&key, max_parallelism));
                timers.forget(domain, &mut scope, time)?;
                let mut keyed =
                    KeyedContext { scope, timers: &mut *timers, timestamp: Some(time), watermark, clock: &self.clock };
                self.function.on_timer(time, domain, &mut keyed, out)?;
            }
        }
        Ok(())
    }
}

impl<K: StateKey, I, F> KeyedProcessOperator<K, I, F> {
    /// Hands one record with its key to the function. The key group is the one the exchange
    /// computed if given; otherwise it is hashed (of `max_parallelism`) only if the function's
    /// state access misses the caches.
    #[inline]
    fn process_keyed<O>(
        &mut self,
        record: I,
        (key, key_group, max_parallelism): (&K, Option<u16>, u16),
        watermark: Option<Watermark>,
        backend: &mut KeyedBackend,
        out: &mut Collector<O>,
    ) -> OperatorResult
    where
        F: KeyedProcessFunction<K, I, O>,
    {
        let scope = match key_group {
            Some(group) => KeyedScope::new(backend, key, group),
            None => KeyedScope::hashing(backend, key, max_parallelism),
        };
        let timestamp = self.timestamps.as_ref().map(|f| f(&record));
        let mut keyed = KeyedContext { scope, timers: &mut self.timers, timestamp, watermark, clock: &self.clock };
        self.function.process(record, &mut keyed, out)
    }
}

impl<K, I, O, F> Operator<I, O> for KeyedProcessOperator<K, I, F>
where
    K: StateKey,
    I: Send + 'static,
    F: KeyedProcessFunction<K, I, O>,
{
    #[inline]
    fn process(&mut self, record: I, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        let key = self.selector.key(&record);
        let (max_parallelism, watermark) = (ctx.info().max_parallelism, ctx.current_watermark());
        self.process_keyed(record, (&key, None, max_parallelism), watermark, ctx.keyed_state()?, out)
    }

    /// Computes the batch's keys once, loads the state of those not cached with one batched read
    /// ([`KeyedBackend::prefetch`]), then processes the records in order. The key groups are the
    /// ones the exchange computed while routing the batch ([`OperatorContext::key_groups`]), never
    /// hashed again.
    fn process_batch(
        &mut self,
        batch: Vec<I>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        let (max_parallelism, watermark) = (ctx.info().max_parallelism, ctx.current_watermark());
        let key_groups = ctx.key_groups();
        let mut keys = std::mem::take(&mut self.keys);
        self.selector.keys(&batch, &mut keys);
        let backend = ctx.keyed_state()?;
        backend.prefetch(&keys, key_groups, max_parallelism)?;
        for (i, (record, key)) in batch.into_iter().zip(&keys).enumerate() {
            let key_group = key_groups.map(|groups| groups[i]);
            self.process_keyed(record, (key, key_group, max_parallelism), watermark, backend, out)?;
        }
        self.keys = keys;
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Watermark,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        self.fire(TimeDomain::EventTime, watermark.timestamp_ms, ctx, out)?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        self.fire(TimeDomain::ProcessingTime, now_ms, ctx, out)
    }
}

/// Keyed rolling reduce: emits the reduced value after every record (Flink's `reduce`).
pub struct Reduce<F, K, T> {
    f: F,
    state: ValueState<K, T>,
}

impl<F, K: StateKey, T: StateValue> Reduce<F, K, T> {
    /// Opens a reduce with `f(accumulated, next)`, its accumulator in keyed state.
    pub fn open(f: F, state: &mut StateRegistry<'_, K>) -> OperatorResult<Self> {
        Ok(Reduce { f, state: state.value("reduce")? })
    }
}

impl<K, T, F> KeyedProcessFunction<K, T, T> for Reduce<F, K, T>
where
    K: StateKey,
    T: StateValue,
    F: Fn(T, T) -> T + Send + 'static,
{
    fn process(&mut self, record: T, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<T>) -> OperatorResult {
        let next = match self.state.get(ctx.state())? {
            Some(acc) => (self.f)(acc, record),
            None => record,
        };
        self.state.set(ctx.state(), next.clone())?;
        out.emit(next);
        Ok(())
    }
}
