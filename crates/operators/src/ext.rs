//! Extension traits that give [`DataStream`] and [`KeyedStream`] their operator methods.

use std::sync::Arc;

use rill_runtime::{ClonePerSubtask, DataStream, DataStreamSink, KeyedStream, OperatorFactory, OperatorResult};
use rill_state::{StateKey, StateValue};

use crate::basic::{Filter, FlatMap, Map};
use crate::keyed::{KeyedProcess, KeyedProcessFunction, Reduce, StateRegistry};
use crate::watermark_assigner::TimestampsAndWatermarks;
use crate::watermark_strategy::WatermarkStrategy;
use crate::window::{WindowAssigner, WindowedStream};

/// Record-at-a-time operators on any stream.
pub trait StreamExt<T: Send + 'static> {
    /// Applies `f` to every record.
    fn map<O, F>(self, f: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: Fn(T) -> O + Clone + Send + Sync + 'static;

    /// Keeps records for which `f` is true.
    fn filter<F>(self, f: F) -> DataStream<T>
    where
        F: Fn(&T) -> bool + Clone + Send + Sync + 'static;

    /// Turns each record into zero or more.
    fn flat_map<O, It, F>(self, f: F) -> DataStream<O>
    where
        O: Send + 'static,
        It: IntoIterator<Item = O>,
        F: Fn(T) -> It + Clone + Send + Sync + 'static;

    /// Ends the stream in `sink`, which each subtask opens (any [`OperatorFactory`] with no
    /// output: [`crate::FileSink`], [`crate::PrintSink`], `TwoPhaseCommit::new(my_sink)`, ...).
    fn sink_to<S>(self, sink: S) -> DataStreamSink
    where
        S: OperatorFactory<T, ()>;

    /// Gives the stream event time: `strategy` extracts each record's timestamp and generates
    /// watermarks (apply it right after the source). Records pass through unchanged.
    ///
    /// Event time starts here: watermarks from upstream (a source's own) are replaced by the
    /// strategy's, except the final one of a finished source.
    fn assign_timestamps_and_watermarks(self, strategy: WatermarkStrategy<T>) -> DataStream<T>;
}

impl<T: Send + 'static> StreamExt<T> for DataStream<T> {
    fn map<O, F>(self, f: F) -> DataStream<O>
    where
        O: Send + 'static,
        F: Fn(T) -> O + Clone + Send + Sync + 'static,
    {
        self.transform("map", ClonePerSubtask(Map(f)))
    }

    fn filter<F>(self, f: F) -> DataStream<T>
    where
        F: Fn(&T) -> bool + Clone + Send + Sync + 'static,
    {
        self.transform("filter", ClonePerSubtask(Filter(f)))
    }

    fn flat_map<O, It, F>(self, f: F) -> DataStream<O>
    where
        O: Send + 'static,
        It: IntoIterator<Item = O>,
        F: Fn(T) -> It + Clone + Send + Sync + 'static,
    {
        self.transform("flat_map", ClonePerSubtask(FlatMap(f)))
    }

    fn sink_to<S>(self, sink: S) -> DataStreamSink
    where
        S: OperatorFactory<T, ()>,
    {
        self.sink("sink", sink)
    }

    fn assign_timestamps_and_watermarks(self, strategy: WatermarkStrategy<T>) -> DataStream<T> {
        self.transform("watermarks", TimestampsAndWatermarks::new(strategy))
    }
}

/// Keyed operators.
pub trait KeyedStreamExt<T: Send + 'static, K: StateKey> {
    /// Runs a keyed process function with keyed state and timers. `open` is called once per
    /// subtask to register the function's state and build it:
    /// `.process(|state| Ok(MyFunction { count: state.value("count")? }))`.
    fn process<O, P, F>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedProcessFunction<K, T, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static;

    /// As [`KeyedStreamExt::process`], and gives the function each record's event time
    /// ([`crate::KeyedContext::timestamp`]), read by `timestamps` (records carry no timestamp
    /// field; usually the stream's [`WatermarkStrategy`]'s).
    fn process_with_timestamps<O, P, F>(
        self,
        timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static,
        open: F,
    ) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedProcessFunction<K, T, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static;

    /// Rolling reduce per key; emits the reduced value after each record.
    fn reduce<F>(self, f: F) -> DataStream<T>
    where
        T: StateValue + Sync,
        F: Fn(T, T) -> T + Clone + Send + Sync + 'static;

    /// Cuts the stream into event-time windows. Records carry no timestamp field: `timestamps`
    /// gives each record's event time (usually the one of the stream's [`WatermarkStrategy`],
    /// whose watermarks close the windows).
    fn window(
        self,
        assigner: WindowAssigner,
        timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> WindowedStream<T, K>;
}

impl<T: Send + 'static, K: StateKey> KeyedStreamExt<T, K> for KeyedStream<T, K> {
    fn process<O, P, F>(self, open: F) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedProcessFunction<K, T, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
    {
        let keys = self.key_selector();
        self.transform_keyed("process", KeyedProcess::new(keys, open))
    }

    fn process_with_timestamps<O, P, F>(
        self,
        timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static,
        open: F,
    ) -> DataStream<O>
    where
        O: Send + 'static,
        P: KeyedProcessFunction<K, T, O>,
        F: Fn(&mut StateRegistry<'_, K>) -> OperatorResult<P> + Send + Sync + 'static,
    {
        let keys = self.key_selector();
        self.transform_keyed("process", KeyedProcess::new(keys, open).with_timestamps(Arc::new(timestamps)))
    }

    fn reduce<F>(self, f: F) -> DataStream<T>
    where
        T: StateValue + Sync,
        F: Fn(T, T) -> T + Clone + Send + Sync + 'static,
    {
        let keys = self.key_selector();
        let open = move |state: &mut StateRegistry<'_, K>| Reduce::open(f.clone(), state);
        self.transform_keyed("reduce", KeyedProcess::new(keys, open))
    }

    fn window(
        self,
        assigner: WindowAssigner,
        timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> WindowedStream<T, K> {
        WindowedStream::new(self, assigner, Arc::new(timestamps))
    }
}
