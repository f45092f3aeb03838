//! Event-time windows over keyed streams: tumbling, sliding and session windows, computed by an
//! incremental reduce or aggregate or by a full-window process function, with allowed lateness
//! and late records dropped (counted) or sent to a side output.
//!
//! ```
//! use std::time::Duration;
//! use rill_operators::{Count, KeyedStreamExt, StreamExt, TumblingEventTimeWindows, WatermarkStrategy, CollectSink, GeneratorSource};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let env = rill_runtime::StreamEnv::builder().parallelism(2).checkpoint_dir(dir.path()).build()?;
//! let (sink, out) = CollectSink::new();
//! env.source("clicks", GeneratorSource::new(0..10_000).ordered())
//!     .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(|ms: &u64| *ms as i64))
//!     .key_by(|ms: &u64| ms % 3)
//!     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)), |ms: &u64| *ms as i64)
//!     .aggregate(Count)
//!     .sink_to(sink);
//! env.execute("clicks per second")?;
//! let out = out.lock().unwrap();
//! assert_eq!(out.len(), 3 * 10);
//! assert_eq!(out.iter().map(|w| w.value).sum::<u64>(), 10_000);
//! # Ok(())
//! # }
//! ```

mod assigner;
mod functions;
mod late;
mod operator;
mod step;
#[cfg(test)]
mod tests;

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use rill_runtime::{DataStream, KeyedStream};
use rill_state::{StateKey, StateValue};

pub use assigner::{
    EventTimeSessionWindows, SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows, WindowAssigner,
};
pub use functions::{AggregateFunction, Count, ProcessWindowFunction, Windowed};
pub use late::{DropLate, LatePolicy, SideOutputLate, WindowOutput};

use crate::watermark_strategy::{duration_ms, TimestampFn};
use functions::{AggregateWindow, ProcessWindow, ReduceWindow, WindowFunction};
use operator::WindowAggregate;
use step::WindowSpec;

/// A keyed stream cut into event-time windows; finish it with [`WindowedStream::reduce`],
/// [`WindowedStream::aggregate`] or [`WindowedStream::process`].
///
/// The type parameter `L` is the policy for late records: [`DropLate`] (default) or
/// [`SideOutputLate`] (see [`WindowedStream::side_output_late_data`]).
pub struct WindowedStream<T, K, L = DropLate> {
    stream: KeyedStream<T, K>,
    spec: WindowSpec<K, T>,
    _late: PhantomData<fn() -> L>,
}

impl<T: Send + 'static, K: 'static> WindowedStream<T, K, DropLate> {
    pub(crate) fn new(stream: KeyedStream<T, K>, assigner: WindowAssigner, timestamps: TimestampFn<T>) -> Self {
        let spec = WindowSpec {
            key: stream.key_selector(),
            timestamps,
            assigner,
            lateness_ms: 0,
            late_records: Arc::new(AtomicU64::new(0)),
        };
        WindowedStream { stream, spec, _late: PhantomData }
    }

    /// Emits late records too, as [`WindowOutput::Late`], beside the results
    /// ([`WindowOutput::Fired`]): Flink's `sideOutputLateData`, on the same stream.
    pub fn side_output_late_data(self) -> WindowedStream<T, K, SideOutputLate> {
        WindowedStream { stream: self.stream, spec: self.spec, _late: PhantomData }
    }
}

impl<T, K, L> WindowedStream<T, K, L>
where
    T: Clone + Send + 'static,
    K: StateKey,
    L: LatePolicy<T>,
{
    /// Keeps windows for `lateness` after they fire: a record arriving meanwhile fires its window
    /// again with the updated contents (Flink's `allowedLateness`; default zero).
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.spec.lateness_ms = duration_ms(lateness);
        self
    }

    /// Counts late records (over all subtasks, in this process) into `counter`.
    pub fn count_late_records(mut self, counter: Arc<AtomicU64>) -> Self {
        self.spec.late_records = counter;
        self
    }

    fn finish<F>(self, name: &str, function: F) -> DataStream<L::Output<F::Out>>
    where
        F: WindowFunction<K, T>,
    {
        let op: WindowAggregate<K, T, F, L> = WindowAggregate::new(self.spec, function);
        self.stream.transform_keyed(name, op)
    }

    /// Reduces each window's records with `f`; emits one [`Windowed`] per key and window.
    pub fn reduce<F>(self, f: F) -> DataStream<L::Output<Windowed<K, T>>>
    where
        T: StateValue,
        F: Fn(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.finish("window-reduce", ReduceWindow(f))
    }

    /// Aggregates each window's records with `aggregate` (for instance [`Count`]); emits one
    /// [`Windowed`] per key and window.
    pub fn aggregate<A>(self, aggregate: A) -> DataStream<L::Output<Windowed<K, A::Out>>>
    where
        A: AggregateFunction<T>,
    {
        self.finish("window-aggregate", AggregateWindow(aggregate))
    }

    /// Hands all records of each fired window to `function`.
    pub fn process<O, P>(self, function: P) -> DataStream<L::Output<O>>
    where
        T: StateValue,
        O: Send + 'static,
        P: ProcessWindowFunction<K, T, O>,
    {
        self.finish("window-process", ProcessWindow::new(function))
    }
}
