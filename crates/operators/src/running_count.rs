//! A keyed running count: the number of records seen so far for each key.

use rill_runtime::{Collector, OperatorResult};
use rill_state::{StateKey, ValueState};

use crate::keyed::{KeyedContext, KeyedProcessFunction, StateRegistry};

/// Emits `(key, n)` for the n-th record of each key; the count is a keyed `ValueState<K, u64>`.
/// Pass [`RunningCount::open`] to `process`.
///
/// ```
/// use rill_operators::{GeneratorSource, KeyedStreamExt, RunningCount, CollectSink, StreamExt};
/// let dir = tempfile::tempdir().unwrap();
/// let env = rill_runtime::StreamEnv::builder().checkpoint_dir(dir.path()).build().unwrap();
/// let (sink, out) = CollectSink::new();
/// env.source("n", GeneratorSource::new(0..10)).key_by(|n: &u64| n % 2).process(RunningCount::open).sink_to(sink);
/// env.execute("count").unwrap();
/// assert!(out.lock().unwrap().contains(&(1, 5)));
/// ```
#[derive(Debug)]
pub struct RunningCount<K> {
    count: ValueState<K, u64>,
}

impl<K> Clone for RunningCount<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for RunningCount<K> {}

impl<K: StateKey> RunningCount<K> {
    /// Opens the count of one subtask: registers its keyed state.
    pub fn open(state: &mut StateRegistry<'_, K>) -> OperatorResult<Self> {
        Ok(RunningCount { count: state.value("count")? })
    }
}

impl<K: StateKey, I: Send + 'static> KeyedProcessFunction<K, I, (K, u64)> for RunningCount<K> {
    fn process(&mut self, _record: I, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<(K, u64)>) -> OperatorResult {
        let mut n = 0;
        self.count.update(ctx.state(), |c| {
            n = c.unwrap_or(0) + 1;
            Some(n)
        })?;
        out.emit((ctx.key().clone(), n));
        Ok(())
    }
}
