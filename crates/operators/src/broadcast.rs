//! Broadcast state (Flink's broadcast state pattern): a keyed input joined with a second input
//! that every subtask sees whole (rules, thresholds, configuration), kept in a map each subtask
//! holds in full. The keyed side reads it, the broadcast side writes it.
//!
//! The map is checkpointed once, by subtask 0 (every subtask holds the same map when the
//! function's updates do not depend on the order in which broadcast records from several source
//! subtasks interleave, as in Flink), and restored into every subtask at any parallelism.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;

use rill_runtime::{
    Barrier, BroadcastConnectedStreams, CoInput, Collector, DataStream, KeySelector, OpenContext, Operator,
    OperatorContext, OperatorFactory, OperatorResult, UnionState, Watermark,
};
use rill_state::StateKey;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keyed::{KeyedContext, KeyedProcessFunction, KeyedProcessOperator, StateRegistry};
use crate::timers::TimeDomain;

/// The map every subtask of a broadcast operator holds in full: written by
/// [`KeyedBroadcastProcessFunction::process_broadcast_element`], read by the keyed side.
#[derive(Debug, Clone)]
pub struct BroadcastState<BK, BV> {
    entries: HashMap<BK, BV>,
}

impl<BK: Hash + Eq, BV> BroadcastState<BK, BV> {
    /// The value of `key`, if any.
    pub fn get(&self, key: &BK) -> Option<&BV> {
        self.entries.get(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &BK) -> bool {
        self.entries.contains_key(key)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&BK, &BV)> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn put(&mut self, key: BK, value: BV) -> Option<BV> {
        self.entries.insert(key, value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &BK) -> Option<BV> {
        self.entries.remove(key)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear()
    }
}

/// A function of a keyed input and a broadcast input (Flink's `KeyedBroadcastProcessFunction`):
/// `process_element` gets the keyed input's records with the [`KeyedContext`] of their key and
/// the broadcast state to read; `process_broadcast_element` gets every record of the broadcast
/// input, in every subtask, with the broadcast state to write.
pub trait KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>: Send + 'static {
    /// Handles one record of the keyed input.
    fn process_element(
        &mut self,
        record: A,
        broadcast: &BroadcastState<BK, BV>,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<O>,
    ) -> OperatorResult;

    /// Handles one record of the broadcast input (every subtask gets each one). Updates must not
    /// depend on the order of records from different broadcast source subtasks: each subtask may
    /// see them interleaved differently.
    fn process_broadcast_element(
        &mut self,
        record: B,
        broadcast: &mut BroadcastState<BK, BV>,
        out: &mut Collector<O>,
    ) -> OperatorResult;

    /// A timer registered for `ctx.key()` at `timestamp_ms` fired. The default does nothing.
    fn on_timer(
        &mut self,
        _timestamp_ms: i64,
        _domain: TimeDomain,
        _broadcast: &BroadcastState<BK, BV>,
        _ctx: &mut KeyedContext<'_, K>,
        _out: &mut Collector<O>,
    ) -> OperatorResult {
        Ok(())
    }
}

/// The function with its broadcast state: the keyed process function of the keyed input.
pub struct WithBroadcast<P, B, BK, BV> {
    function: P,
    state: BroadcastState<BK, BV>,
    _second: PhantomData<fn(B)>,
}

impl<K, A, B, O, P, BK, BV> KeyedProcessFunction<K, A, O> for WithBroadcast<P, B, BK, BV>
where
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    B: 'static,
    BK: Send + 'static,
    BV: Send + 'static,
{
    #[inline]
    fn process(&mut self, record: A, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> OperatorResult {
        self.function.process_element(record, &self.state, ctx, out)
    }

    fn on_timer(
        &mut self,
        timestamp_ms: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        self.function.on_timer(timestamp_ms, domain, &self.state, ctx, out)
    }
}

/// Runs a [`KeyedBroadcastProcessFunction`] in one subtask: the keyed input's records go through
/// a [`KeyedProcessOperator`] (keys, keyed state, timers), the broadcast input's update the map.
pub struct KeyedBroadcastProcessOperator<K, A, B, P, BK, BV> {
    keyed: KeyedProcessOperator<K, A, WithBroadcast<P, B, BK, BV>>,
    snapshot: UnionState<(BK, BV)>,
}

impl<K: StateKey, A, B, P, BK, BV> KeyedBroadcastProcessOperator<K, A, B, P, BK, BV> {
    fn broadcast_element<O>(&mut self, record: B, out: &mut Collector<O>) -> OperatorResult
    where
        P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    {
        let with = self.keyed.function_mut();
        with.function.process_broadcast_element(record, &mut with.state, out)
    }
}

impl<K, A, B, O, P, BK, BV> Operator<CoInput<A, B>, O> for KeyedBroadcastProcessOperator<K, A, B, P, BK, BV>
where
    K: StateKey,
    A: Send + 'static,
    B: Send + 'static,
    O: Send + 'static,
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    BK: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static,
    BV: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    fn process(
        &mut self,
        record: CoInput<A, B>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        match record {
            CoInput::First(a) => self.keyed.process(a, ctx, out),
            CoInput::Second(b) => self.broadcast_element(b, out),
        }
    }

    /// A batch of the keyed input (all of one channel) goes to the keyed operator whole, with
    /// the key groups the exchange computed.
    fn process_batch(
        &mut self,
        batch: Vec<CoInput<A, B>>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        if !batch.iter().all(|r| matches!(r, CoInput::First(_))) {
            return batch.into_iter().try_for_each(|record| self.process(record, ctx, out));
        }
        let keyed: Vec<A> = batch
            .into_iter()
            .filter_map(|record| match record {
                CoInput::First(a) => Some(a),
                CoInput::Second(_) => None,
            })
            .collect();
        self.keyed.process_batch(keyed, ctx, out)
    }

    fn on_watermark(
        &mut self,
        watermark: Watermark,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        self.keyed.on_watermark(watermark, ctx, out)
    }

    fn on_idle(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        self.keyed.on_idle(ctx, out)
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        self.keyed.on_processing_time(now_ms, ctx, out)
    }

    /// Subtask 0 snapshots the map; the others hold the same and snapshot nothing.
    fn on_barrier(
        &mut self,
        barrier: Barrier,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        let entries: Vec<(BK, BV)> = match ctx.info().subtask {
            0 => self.keyed.function_mut().state.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        };
        self.snapshot.snapshot(ctx, &entries)?;
        self.keyed.on_barrier(barrier, ctx, out)
    }

    fn on_commit(&mut self, epoch: u64, ctx: &mut OperatorContext<'_>) -> OperatorResult {
        self.keyed.on_commit(epoch, ctx)
    }

    fn on_end_of_input(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<O>) -> OperatorResult {
        self.keyed.on_end_of_input(ctx, out)
    }

    fn on_close(&mut self, ctx: &mut OperatorContext<'_>) -> OperatorResult {
        self.keyed.on_close(ctx)
    }
}

/// The broadcast input's record type and the broadcast state's types, for a factory that holds
/// none of them.
type BroadcastTypes<B, BK, BV> = fn() -> (B, BK, BV);

/// Opens a [`KeyedBroadcastProcessFunction`] per subtask, with the restored broadcast state.
pub struct KeyedBroadcastProcess<K, A, B, F, BK, BV> {
    selector: KeySelector<A, K>,
    open: F,
    _types: PhantomData<BroadcastTypes<B, BK, BV>>,
}

impl<K, A, B, O, P, F, BK, BV> OperatorFactory<CoInput<A, B>, O> for KeyedBroadcastProcess<K, A, B, F, BK, BV>
where
    K: StateKey,
    A: Send + 'static,
    B: Send + 'static,
    O: Send + 'static,
    P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
    F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
    BK: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static,
    BV: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    type Operator = KeyedBroadcastProcessOperator<K, A, B, P, BK, BV>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator> {
        let (snapshot, restored) = ctx.union_state::<(BK, BV)>()?;
        let state = BroadcastState { entries: restored.into_iter().collect() };
        let keyed = KeyedProcessOperator::open(self.selector.clone(), None, ctx, |registry| {
            (self.open)(registry).map(|function| WithBroadcast { function, state, _second: PhantomData })
        })?;
        Ok(KeyedBroadcastProcessOperator { keyed, snapshot })
    }
}

/// The operator of a keyed input and a broadcast input.
pub trait BroadcastConnectedStreamsExt<A, B, K> {
    /// Runs a [`KeyedBroadcastProcessFunction`]; `open` is called once per subtask to register
    /// its keyed state and build it. The broadcast state is restored before (the same map in
    /// every subtask).
    fn process<O, P, F, BK, BV>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
        BK: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static,
        BV: Clone + Serialize + DeserializeOwned + Send + 'static;
}

impl<A: Send + 'static, B: Send + 'static, K: StateKey> BroadcastConnectedStreamsExt<A, B, K>
    for BroadcastConnectedStreams<A, B, K>
{
    fn process<O, P, F, BK, BV>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedBroadcastProcessFunction<K, A, B, O, BK, BV>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
        BK: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static,
        BV: Clone + Serialize + DeserializeOwned + Send + 'static,
    {
        let selector = self.key_selector();
        self.transform_keyed("broadcast_process", KeyedBroadcastProcess { selector, open, _types: PhantomData })
    }
}
