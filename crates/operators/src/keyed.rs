//! Keyed operators: `process` with keyed state, and `reduce`.

use std::marker::PhantomData;
use std::sync::Arc;

use rill_runtime::{Collector, Context, Operator, Result};
use rill_state::{key_group_of, KeyedBackend, KeyedScope, ListState, MapState, StateKey, StateValue, ValueState};

/// Registers the keyed state a [`KeyedProcessFunction`] uses. Names are scoped to the operator.
pub struct StateRegistry<'a, K> {
    backend: &'a mut KeyedBackend,
    operator: &'a str,
    _key: PhantomData<fn() -> K>,
}

impl<K: StateKey> StateRegistry<'_, K> {
    fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.operator)
    }

    /// A single value per key.
    pub fn value<V: StateValue>(&mut self, name: &str) -> Result<ValueState<V>> {
        let full = self.name(name);
        Ok(self.backend.value_state::<K, V>(&full)?)
    }

    /// A list per key.
    pub fn list<V: StateValue>(&mut self, name: &str) -> Result<ListState<V>> {
        let full = self.name(name);
        Ok(self.backend.list_state::<K, V>(&full)?)
    }

    /// A map per key.
    pub fn map<UK: StateKey, UV: StateValue>(&mut self, name: &str) -> Result<MapState<UK, UV>> {
        let full = self.name(name);
        Ok(self.backend.map_state::<K, UK, UV>(&full)?)
    }
}

/// What a keyed process function sees for each record: the key and its state.
pub struct KeyedContext<'a, K> {
    scope: KeyedScope<'a, K>,
}

impl<'a, K: StateKey> KeyedContext<'a, K> {
    /// The current record's key.
    pub fn key(&self) -> &K {
        self.scope.key()
    }

    /// State access for the current key: pass to a state handle's methods.
    pub fn state(&mut self) -> &mut KeyedScope<'a, K> {
        &mut self.scope
    }
}

/// A function over a keyed stream with keyed state (Flink's `KeyedProcessFunction`).
///
/// ```
/// use rill_operators::{KeyedContext, KeyedProcessFunction, StateRegistry};
/// use rill_runtime::{Collector, Result};
/// use rill_state::ValueState;
///
/// #[derive(Clone, Default)]
/// struct RunningCount { count: Option<ValueState<u64>> }
///
/// impl KeyedProcessFunction<u64, u64, (u64, u64)> for RunningCount {
///     fn open(&mut self, state: &mut StateRegistry<'_, u64>) -> Result<()> {
///         self.count = Some(state.value("count")?);
///         Ok(())
///     }
///     fn process(&mut self, _r: u64, ctx: &mut KeyedContext<'_, u64>, out: &mut Collector<(u64, u64)>) -> Result<()> {
///         let count = self.count.expect("opened");
///         let n = count.get(ctx.state())?.unwrap_or(0) + 1;
///         count.set(ctx.state(), n)?;
///         out.emit((*ctx.key(), n));
///         Ok(())
///     }
/// }
/// ```
pub trait KeyedProcessFunction<K, I, O>: Send + 'static {
    /// Registers state handles; called once per subtask before the first record.
    fn open(&mut self, state: &mut StateRegistry<'_, K>) -> Result<()>;

    /// Handles one record of the current key.
    fn process(&mut self, record: I, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> Result<()>;
}

/// Runs a [`KeyedProcessFunction`]: sets the key (and its key group) before every record.
pub struct KeyedProcess<K, I, F> {
    key: Arc<dyn Fn(&I) -> K + Send + Sync>,
    function: F,
}

impl<K, I, F: Clone> Clone for KeyedProcess<K, I, F> {
    fn clone(&self) -> Self {
        KeyedProcess { key: self.key.clone(), function: self.function.clone() }
    }
}

impl<K, I, F> KeyedProcess<K, I, F> {
    /// Wraps `function`, keyed by `key`.
    pub fn new(key: Arc<dyn Fn(&I) -> K + Send + Sync>, function: F) -> Self {
        KeyedProcess { key, function }
    }
}

impl<K, I, O, F> Operator<I, O> for KeyedProcess<K, I, F>
where
    K: StateKey,
    I: Send + 'static,
    F: KeyedProcessFunction<K, I, O>,
{
    fn on_open(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        let operator = ctx.operator_id().to_string();
        let backend = ctx.keyed_state()?;
        self.function.open(&mut StateRegistry { backend, operator: &operator, _key: PhantomData })
    }

    #[inline]
    fn process(&mut self, record: I, ctx: &mut Context<'_>, out: &mut Collector<O>) -> Result<()> {
        let key = (self.key)(&record);
        let key_group = key_group_of(&key, ctx.info().max_parallelism);
        let backend = ctx.keyed_state()?;
        let mut keyed = KeyedContext { scope: KeyedScope::new(backend, &key, key_group) };
        self.function.process(record, &mut keyed, out)
    }
}

/// Keyed rolling reduce: emits the reduced value after every record (Flink's `reduce`).
#[derive(Clone)]
pub struct Reduce<F, T> {
    f: F,
    state: Option<ValueState<T>>,
}

impl<F, T> Reduce<F, T> {
    /// A reduce with `f(accumulated, next)`.
    pub fn new(f: F) -> Self {
        Reduce { f, state: None }
    }
}

impl<K, T, F> KeyedProcessFunction<K, T, T> for Reduce<F, T>
where
    K: StateKey,
    T: StateValue,
    F: Fn(T, T) -> T + Send + 'static,
{
    fn open(&mut self, state: &mut StateRegistry<'_, K>) -> Result<()> {
        self.state = Some(state.value("reduce")?);
        Ok(())
    }

    fn process(&mut self, record: T, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<T>) -> Result<()> {
        let Some(state) = self.state else {
            return Err(rill_runtime::RuntimeError::user("reduce", "used before open"));
        };
        let next = match state.get(ctx.state())? {
            Some(acc) => (self.f)(acc, record),
            None => record,
        };
        state.set(ctx.state(), next.clone())?;
        out.emit(next);
        Ok(())
    }
}
