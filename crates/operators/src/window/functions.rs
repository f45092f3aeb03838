//! What a window computes: an incremental reduce or aggregate (one accumulator per key and
//! window in keyed state), or a full-window process function (every record of the window kept in
//! keyed state until it fires).

use rill_runtime::{Collector, OperatorResult};
use rill_state::StateValue;
use serde::{Deserialize, Serialize};

use super::assigner::TimeWindow;

/// The result of a window's reduce or aggregate: the key, the window and the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Windowed<K, R> {
    /// The key.
    pub key: K,
    /// The window that fired.
    pub window: TimeWindow,
    /// The reduced or aggregated value.
    pub value: R,
}

/// An incremental aggregate over the records of a window (Flink's `AggregateFunction`): only the
/// accumulator is stored.
///
/// ```
/// use rill_operators::AggregateFunction;
/// #[derive(Clone)]
/// struct Mean;
/// impl AggregateFunction<f64> for Mean {
///     type Acc = (f64, u64);
///     type Out = f64;
///     fn create_accumulator(&self) -> (f64, u64) { (0.0, 0) }
///     fn add(&self, acc: &mut (f64, u64), x: f64) { acc.0 += x; acc.1 += 1; }
///     fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) { (a.0 + b.0, a.1 + b.1) }
///     fn result(&self, acc: &(f64, u64)) -> f64 { acc.0 / acc.1 as f64 }
/// }
/// ```
pub trait AggregateFunction<T>: Clone + Send + Sync + 'static {
    /// The accumulator kept in keyed state per key and window.
    type Acc: StateValue;
    /// The window's result.
    type Out: Send + 'static;
    /// An empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;
    /// Adds a record.
    fn add(&self, acc: &mut Self::Acc, record: T);
    /// Combines two accumulators (when session windows merge).
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    /// The result of a window.
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// Counts the records of a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<T> AggregateFunction<T> for Count {
    type Acc = u64;
    type Out = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    #[inline]
    fn add(&self, acc: &mut u64, _record: T) {
        *acc += 1;
    }

    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

/// A function over all records of a window at once (Flink's `ProcessWindowFunction`). The records
/// are kept in keyed state until the window fires. Closures of the same shape implement it.
pub trait ProcessWindowFunction<K, T, O>: Clone + Send + Sync + 'static {
    /// Handles a fired window of `key` with its records in arrival order (for merged session
    /// windows: the merged windows' records one after the other).
    fn process(&mut self, key: &K, window: TimeWindow, records: &[T], out: &mut Collector<O>) -> OperatorResult;
}

impl<K, T, O, F> ProcessWindowFunction<K, T, O> for F
where
    F: FnMut(&K, TimeWindow, &[T], &mut Collector<O>) -> OperatorResult + Clone + Send + Sync + 'static,
{
    fn process(&mut self, key: &K, window: TimeWindow, records: &[T], out: &mut Collector<O>) -> OperatorResult {
        self(key, window, records, out)
    }
}

/// What the window operator keeps per key and window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WindowContents<A> {
    pub(crate) acc: A,
    /// The window fired and is kept only for allowed lateness: its pending timer is the cleanup.
    pub(crate) fired: bool,
}

/// The three kinds of window computation behind one interface for the operator.
pub(crate) trait WindowFunction<K, T>: Clone + Send + Sync + 'static {
    type Acc: StateValue;
    type Out: Send + 'static;

    fn add(&mut self, acc: Option<Self::Acc>, record: T) -> Self::Acc;

    fn merge(&mut self, a: Self::Acc, b: Self::Acc) -> Self::Acc;

    /// Emits the results of a fired window, each wrapped by `wrap`.
    fn emit<O>(
        &mut self,
        key: &K,
        window: TimeWindow,
        acc: &Self::Acc,
        out: &mut Collector<O>,
        wrap: impl Fn(Self::Out) -> O,
    ) -> OperatorResult;
}

/// `reduce(f)`: the accumulator is a record.
#[derive(Clone)]
pub(crate) struct ReduceWindow<F>(pub(crate) F);

impl<K, T, F> WindowFunction<K, T> for ReduceWindow<F>
where
    K: Clone + Send + 'static,
    T: StateValue,
    F: Fn(T, T) -> T + Clone + Send + Sync + 'static,
{
    type Acc = T;
    type Out = Windowed<K, T>;

    #[inline]
    fn add(&mut self, acc: Option<T>, record: T) -> T {
        match acc {
            Some(acc) => (self.0)(acc, record),
            None => record,
        }
    }

    fn merge(&mut self, a: T, b: T) -> T {
        (self.0)(a, b)
    }

    fn emit<O>(
        &mut self,
        key: &K,
        window: TimeWindow,
        acc: &T,
        out: &mut Collector<O>,
        wrap: impl Fn(Self::Out) -> O,
    ) -> OperatorResult {
        out.emit(wrap(Windowed { key: key.clone(), window, value: acc.clone() }));
        Ok(())
    }
}

/// `aggregate(a)`.
#[derive(Clone)]
pub(crate) struct AggregateWindow<A>(pub(crate) A);

impl<K, T, A> WindowFunction<K, T> for AggregateWindow<A>
where
    K: Clone + Send + 'static,
    A: AggregateFunction<T>,
{
    type Acc = A::Acc;
    type Out = Windowed<K, A::Out>;

    #[inline]
    fn add(&mut self, acc: Option<A::Acc>, record: T) -> A::Acc {
        let mut acc = acc.unwrap_or_else(|| self.0.create_accumulator());
        self.0.add(&mut acc, record);
        acc
    }

    fn merge(&mut self, a: A::Acc, b: A::Acc) -> A::Acc {
        self.0.merge(a, b)
    }

    #[inline]
    fn emit<O>(
        &mut self,
        key: &K,
        window: TimeWindow,
        acc: &A::Acc,
        out: &mut Collector<O>,
        wrap: impl Fn(Self::Out) -> O,
    ) -> OperatorResult {
        out.emit(wrap(Windowed { key: key.clone(), window, value: self.0.result(acc) }));
        Ok(())
    }
}

/// `process(p)`: the accumulator is every record.
pub(crate) struct ProcessWindow<P, O> {
    function: P,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<P: Clone, O> Clone for ProcessWindow<P, O> {
    fn clone(&self) -> Self {
        ProcessWindow::new(self.function.clone())
    }
}

impl<P, O> ProcessWindow<P, O> {
    pub(crate) fn new(function: P) -> Self {
        ProcessWindow { function, _out: std::marker::PhantomData }
    }
}

impl<K, T, O, P> WindowFunction<K, T> for ProcessWindow<P, O>
where
    T: StateValue,
    O: Send + 'static,
    P: ProcessWindowFunction<K, T, O>,
{
    type Acc = Vec<T>;
    type Out = O;

    fn add(&mut self, acc: Option<Vec<T>>, record: T) -> Vec<T> {
        let mut records = acc.unwrap_or_default();
        records.push(record);
        records
    }

    fn merge(&mut self, mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
        a.extend(b);
        a
    }

    fn emit<Q>(
        &mut self,
        key: &K,
        window: TimeWindow,
        acc: &Vec<T>,
        out: &mut Collector<Q>,
        wrap: impl Fn(O) -> Q,
    ) -> OperatorResult {
        let mut scratch = Collector::default();
        self.function.process(key, window, acc, &mut scratch)?;
        for record in scratch.drain() {
            out.emit(wrap(record));
        }
        Ok(())
    }
}
