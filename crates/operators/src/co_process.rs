//! Functions of two inputs (Flink's `KeyedCoProcessFunction` and `CoProcessFunction`), run on
//! streams joined with `connect`.
//!
//! A keyed one runs as the [`KeyedProcessFunction`] of its tagged records, so it gets the same
//! keyed state (shared by both sides), timers, event time and batching as a one-input `process`;
//! the runtime aligns barriers across both inputs and holds the watermark at the minimum of theirs.

use std::sync::Arc;

use rill_runtime::{
    Barrier, CoInput, Collector, ConnectedKeyedStreams, ConnectedStreams, DataStream, OpenContext, Operator,
    OperatorContext, OperatorFactory, OperatorResult,
};
use rill_state::StateKey;

use crate::keyed::{KeyedContext, KeyedProcess, KeyedProcessFunction, StateRegistry};
use crate::timers::TimeDomain;

/// A function of two keyed inputs with keyed state shared by both sides and timers (Flink's
/// `KeyedCoProcessFunction`): `process1` gets the first input's records, `process2` the
/// second's, each with the [`KeyedContext`] of its key.
///
/// ```
/// use rill_operators::{KeyedCoProcessFunction, KeyedContext};
/// use rill_runtime::{Collector, OperatorResult};
/// use rill_state::ValueState;
///
/// /// Alerts (account, amount) enriched with the account's latest profile name.
/// struct Enrich { profile: ValueState<u64, String> }
///
/// impl KeyedCoProcessFunction<u64, (u64, u64), (u64, String), String> for Enrich {
///     fn process1(&mut self, alert: (u64, u64), ctx: &mut KeyedContext<'_, u64>, out: &mut Collector<String>) -> OperatorResult {
///         let name = self.profile.get(ctx.state())?.unwrap_or_default();
///         out.emit(format!("{} {} {name}", alert.0, alert.1));
///         Ok(())
///     }
///     fn process2(&mut self, profile: (u64, String), ctx: &mut KeyedContext<'_, u64>, _out: &mut Collector<String>) -> OperatorResult {
///         self.profile.set(ctx.state(), profile.1)?;
///         Ok(())
///     }
/// }
/// ```
pub trait KeyedCoProcessFunction<K, A, B, O>: Send + 'static {
    /// Handles one record of the first input, of the current key.
    fn process1(&mut self, record: A, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> OperatorResult;

    /// Handles one record of the second input, of the current key.
    fn process2(&mut self, record: B, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> OperatorResult;

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

/// A [`KeyedCoProcessFunction`] as the keyed process function of its tagged records.
struct BothSides<P>(P);

impl<K, A, B, O, P> KeyedProcessFunction<K, CoInput<A, B>, O> for BothSides<P>
where
    P: KeyedCoProcessFunction<K, A, B, O>,
{
    #[inline]
    fn process(
        &mut self,
        record: CoInput<A, B>,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        match record {
            CoInput::First(a) => self.0.process1(a, ctx, out),
            CoInput::Second(b) => self.0.process2(b, ctx, out),
        }
    }

    fn on_timer(
        &mut self,
        timestamp_ms: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        self.0.on_timer(timestamp_ms, domain, ctx, out)
    }
}

/// The keyed two-input operators.
pub trait ConnectedKeyedStreamsExt<A, B, K> {
    /// Runs a keyed two-input function with keyed state and timers. `open` is called once per
    /// subtask to register the function's state and build it, as for a one-input `process`.
    fn process<O, P, F>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedCoProcessFunction<K, A, B, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static;

    /// As [`ConnectedKeyedStreamsExt::process`], and gives the function each record's event
    /// time ([`KeyedContext::timestamp`]): `first` reads it from the first input's records,
    /// `second` from the second's.
    fn process_with_timestamps<O, P, F>(
        self,
        first: impl Fn(&A) -> i64 + Send + Sync + 'static,
        second: impl Fn(&B) -> i64 + Send + Sync + 'static,
        open: F,
    ) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedCoProcessFunction<K, A, B, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static;
}

impl<A, B, K> ConnectedKeyedStreamsExt<A, B, K> for ConnectedKeyedStreams<A, B, K>
where
    A: Send + 'static,
    B: Send + 'static,
    K: StateKey,
{
    fn process<O, P, F>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedCoProcessFunction<K, A, B, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
    {
        let keys = self.key_selector();
        let open = move |state: &mut StateRegistry<'_, K>| open(state).map(BothSides);
        self.transform_keyed("co_process", KeyedProcess::new(keys, open))
    }

    fn process_with_timestamps<O, P, F>(
        self,
        first: impl Fn(&A) -> i64 + Send + Sync + 'static,
        second: impl Fn(&B) -> i64 + Send + Sync + 'static,
        open: F,
    ) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedCoProcessFunction<K, A, B, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
    {
        let keys = self.key_selector();
        let open = move |state: &mut StateRegistry<'_, K>| open(state).map(BothSides);
        let timestamps = Arc::new(move |record: &CoInput<A, B>| match record {
            CoInput::First(a) => first(a),
            CoInput::Second(b) => second(b),
        });
        self.transform_keyed("co_process", KeyedProcess::new(keys, open).with_timestamps(timestamps))
    }
}

/// A function of two inputs without keys (Flink's `CoProcessFunction`): `process1` gets the
/// first input's records, `process2` the second's. Operator state goes through the
/// [`OpenContext`] it is opened with ([`OpenContext::union_state`]), snapshotted in
/// [`CoProcessFunction::on_barrier`].
pub trait CoProcessFunction<A, B, O>: Send + 'static {
    /// Handles one record of the first input.
    fn process1(&mut self, record: A, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult;

    /// Handles one record of the second input.
    fn process2(&mut self, record: B, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult;

    /// A checkpoint barrier arrived on both inputs: snapshot operator state here. The default
    /// does nothing.
    fn on_barrier(&mut self, _barrier: Barrier, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        Ok(())
    }

    /// Both inputs ended: emit whatever is held back. The default does nothing.
    fn on_end_of_input(&mut self, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<O>) -> OperatorResult {
        Ok(())
    }
}

/// Runs a [`CoProcessFunction`] in one subtask.
pub struct CoProcessOperator<P>(P);

impl<A, B, O, P> Operator<CoInput<A, B>, O> for CoProcessOperator<P>
where
    A: Send + 'static,
    B: Send + 'static,
    P: CoProcessFunction<A, B, O>,
{
    #[inline]
    fn process(
        &mut self,
        record: CoInput<A, B>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        match record {
            CoInput::First(a) => self.0.process1(a, ctx, out),
            CoInput::Second(b) => self.0.process2(b, ctx, out),
        }
    }

    fn on_barrier(
        &mut self,
        barrier: Barrier,
        ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<O>,
    ) -> OperatorResult {
        self.0.on_barrier(barrier, ctx)
    }

    fn on_end_of_input(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        self.0.on_end_of_input(ctx, out)
    }
}

/// Opens a [`CoProcessFunction`] per subtask.
struct CoProcess<F>(F);

impl<A, B, O, P, F> OperatorFactory<CoInput<A, B>, O> for CoProcess<F>
where
    A: Send + 'static,
    B: Send + 'static,
    P: CoProcessFunction<A, B, O>,
    F: Fn(&mut OpenContext<'_>) -> OperatorResult<P> + Send + Sync + 'static,
{
    type Operator = CoProcessOperator<P>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<CoProcessOperator<P>> {
        (self.0)(ctx).map(CoProcessOperator)
    }
}

/// The unkeyed two-input operator.
pub trait ConnectedStreamsExt<A, B> {
    /// Runs a two-input function; `open` builds it in each subtask (and opens its operator state).
    fn process<O, P, F>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: CoProcessFunction<A, B, O>,
        F: Fn(&mut OpenContext<'_>) -> OperatorResult<P> + Send + Sync + 'static;
}

impl<A: Send + 'static, B: Send + 'static> ConnectedStreamsExt<A, B> for ConnectedStreams<A, B> {
    fn process<O, P, F>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: CoProcessFunction<A, B, O>,
        F: Fn(&mut OpenContext<'_>) -> OperatorResult<P> + Send + Sync + 'static,
    {
        self.transform("co_process", CoProcess(open))
    }
}
