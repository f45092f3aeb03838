//! Window joins and co-groups of two streams (Flink's `DataStream.join(..).where(..).equalTo(..)
//! .window(..).apply(..)` and `coGroup`): the records of both sides with equal keys that fall
//! into one event-time window meet when the watermark (the minimum of both inputs') passes the
//! window's end. A join calls its function for every pair of the window; a co-group once per
//! key and window with both sides' records (one side may be empty).
//!
//! Each key's open windows are keyed state (RocksDB, so larger than memory): a map from window
//! to both sides' records. Tumbling and sliding windows are found from the timer's time; session
//! windows merge per key across both sides as records arrive. Records for windows the watermark
//! has passed are late and dropped, as Flink does.

use std::marker::PhantomData;
use std::sync::Arc;

use rill_runtime::{Collector, DataStream, OperatorResult};
use rill_state::{MapState, StateKey, StateValue};

use crate::co_process::{ConnectedKeyedStreamsExt, KeyedCoProcessFunction};
use crate::keyed::{KeyedContext, StateRegistry};
use crate::timers::TimeDomain;
use crate::window::{TimeWindow, WindowAssigner};

/// Marks a [`WindowJoin`] that joins pairs.
pub struct Join;

/// Marks a [`WindowJoin`] that co-groups.
pub struct CoGroup;

/// A record's key or event time.
type Of<T, V> = Arc<dyn Fn(&T) -> V + Send + Sync>;

/// Two streams to join (or co-group) by key and window: name the keys with `where_key` and
/// `equal_to`, then the window, then the function.
pub struct WindowJoin<A, B, Kind> {
    left: DataStream<A>,
    right: DataStream<B>,
    _kind: PhantomData<Kind>,
}

/// A window join with the first stream's key: give the second's with `equal_to`.
pub struct WindowJoinWhere<A, B, Kind, K> {
    join: WindowJoin<A, B, Kind>,
    left_key: Of<A, K>,
}

/// A window join with both keys: give the windows with `window`.
pub struct WindowJoinKeyed<A, B, Kind, K> {
    join: WindowJoin<A, B, Kind>,
    left_key: Of<A, K>,
    right_key: Of<B, K>,
}

/// The window joins on streams.
pub trait WindowJoinExt<A> {
    /// Joins with `other` by key and window: every pair of records with equal keys in one window
    /// (Flink's `join`).
    fn join<B>(self, other: DataStream<B>) -> WindowJoin<A, B, Join>;

    /// Co-groups with `other` by key and window: once per key and window, both sides' records
    /// (Flink's `coGroup`).
    fn co_group<B>(self, other: DataStream<B>) -> WindowJoin<A, B, CoGroup>;
}

impl<A> WindowJoinExt<A> for DataStream<A> {
    fn join<B>(self, other: DataStream<B>) -> WindowJoin<A, B, Join> {
        WindowJoin { left: self, right: other, _kind: PhantomData }
    }

    fn co_group<B>(self, other: DataStream<B>) -> WindowJoin<A, B, CoGroup> {
        WindowJoin { left: self, right: other, _kind: PhantomData }
    }
}

impl<A, B, Kind> WindowJoin<A, B, Kind> {
    /// The key of the first stream's records (Flink's `where`).
    pub fn where_key<K>(self, key: impl Fn(&A) -> K + Send + Sync + 'static) -> WindowJoinWhere<A, B, Kind, K> {
        WindowJoinWhere { join: self, left_key: Arc::new(key) }
    }
}

impl<A, B, Kind, K> WindowJoinWhere<A, B, Kind, K> {
    /// The key of the second stream's records, of the same type (Flink's `equalTo`).
    pub fn equal_to(self, key: impl Fn(&B) -> K + Send + Sync + 'static) -> WindowJoinKeyed<A, B, Kind, K> {
        WindowJoinKeyed { join: self.join, left_key: self.left_key, right_key: Arc::new(key) }
    }
}

impl<A, B, Kind, K> WindowJoinKeyed<A, B, Kind, K> {
    /// The windows, and each side's event time (usually its watermark strategy's).
    pub fn window(
        self,
        assigner: WindowAssigner,
        left_time: impl Fn(&A) -> i64 + Send + Sync + 'static,
        right_time: impl Fn(&B) -> i64 + Send + Sync + 'static,
    ) -> WindowedJoin<A, B, Kind, K> {
        WindowedJoin { keyed: self, assigner, left_time: Arc::new(left_time), right_time: Arc::new(right_time) }
    }
}

/// A window join with its windows: finish it with `apply`.
pub struct WindowedJoin<A, B, Kind, K> {
    keyed: WindowJoinKeyed<A, B, Kind, K>,
    assigner: WindowAssigner,
    left_time: Of<A, i64>,
    right_time: Of<B, i64>,
}

impl<A: StateValue, B: StateValue, K: StateKey> WindowedJoin<A, B, Join, K> {
    /// Emits `f(left, right)` for every pair of records with equal keys in one window.
    pub fn apply<O: Send + 'static>(self, f: impl Fn(&A, &B) -> O + Send + Sync + 'static) -> DataStream<O> {
        self.finish(Arc::new(move |_: &K, _: TimeWindow, lefts: &[A], rights: &[B], out: &mut Collector<O>| {
            for left in lefts {
                for right in rights {
                    out.emit(f(left, right));
                }
            }
            Ok(())
        }))
    }
}

impl<A: StateValue, B: StateValue, K: StateKey> WindowedJoin<A, B, CoGroup, K> {
    /// Calls `f(key, window, lefts, rights, out)` once per key and window that holds records of
    /// either side.
    pub fn apply<O: Send + 'static>(
        self,
        f: impl Fn(&K, TimeWindow, &[A], &[B], &mut Collector<O>) -> OperatorResult + Send + Sync + 'static,
    ) -> DataStream<O> {
        self.finish(Arc::new(f))
    }
}

/// What a fired window does with both sides' records.
type Fire<K, A, B, O> = Arc<dyn Fn(&K, TimeWindow, &[A], &[B], &mut Collector<O>) -> OperatorResult + Send + Sync>;

impl<A: StateValue, B: StateValue, Kind, K: StateKey> WindowedJoin<A, B, Kind, K> {
    fn finish<O: Send + 'static>(self, fire: Fire<K, A, B, O>) -> DataStream<O> {
        let WindowJoinKeyed { join, left_key, right_key } = self.keyed;
        let WindowJoin { left, right, .. } = join;
        let (left_time, right_time, assigner) = (self.left_time, self.right_time, self.assigner);
        left.connect(right).key_by(move |a: &A| left_key(a), move |b: &B| right_key(b)).process_with_timestamps(
            move |a: &A| left_time(a),
            move |b: &B| right_time(b),
            move |state: &mut StateRegistry<'_, K>| {
                Ok(WindowJoinFunction {
                    assigner,
                    windows: state.map("windows")?,
                    fire: fire.clone(),
                    assigned: Vec::new(),
                })
            },
        )
    }
}

/// Both sides' records of one key and window.
type Contents<A, B> = (Vec<A>, Vec<B>);

/// The join as a keyed two-input function.
struct WindowJoinFunction<K, A, B, O> {
    assigner: WindowAssigner,
    windows: MapState<K, (i64, i64), Contents<A, B>>,
    fire: Fire<K, A, B, O>,
    assigned: Vec<TimeWindow>,
}

impl<K: StateKey, A: StateValue, B: StateValue, O> WindowJoinFunction<K, A, B, O> {
    /// Adds `record` (by `push`) to every window of time `at` the watermark has not passed: a
    /// clone to each but the last, which gets the record itself.
    fn add<R: Clone>(
        &mut self,
        at: i64,
        ctx: &mut KeyedContext<'_, K>,
        record: R,
        push: impl Fn(&mut Contents<A, B>, R),
    ) -> OperatorResult {
        let watermark = ctx.current_watermark();
        self.assigned.clear();
        self.assigner.assign(at, &mut self.assigned);
        let mut windows = std::mem::take(&mut self.assigned);
        windows.retain(|window| watermark.is_none_or(|w| window.max_timestamp() > w));
        let mut record = Some(record);
        for (i, window) in windows.iter().enumerate() {
            let (window, mut contents) = match self.assigner.is_merging() {
                true => self.merge_sessions(*window, ctx)?,
                false => (*window, self.windows.take(ctx.state(), &(window.start, window.end))?.unwrap_or_default()),
            };
            let this = if i + 1 == windows.len() { record.take() } else { record.clone() };
            if let Some(this) = this {
                push(&mut contents, this);
            }
            self.windows.put(ctx.state(), (window.start, window.end), contents)?;
            ctx.register_event_time_timer(window.max_timestamp())?;
        }
        self.assigned = windows;
        Ok(())
    }

    /// Takes every session of the key that `window` touches out of state: the session covering
    /// them all, with their records.
    fn merge_sessions(
        &mut self,
        window: TimeWindow,
        ctx: &mut KeyedContext<'_, K>,
    ) -> OperatorResult<(TimeWindow, Contents<A, B>)> {
        let (mut merged, mut contents) = (window, (Vec::new(), Vec::new()));
        for ((start, end), held) in self.windows.entries(ctx.state())? {
            let session = TimeWindow::new(start, end);
            if session.intersects(&window) {
                merged = merged.cover(&session);
                contents.0.extend(held.0);
                contents.1.extend(held.1);
                self.windows.remove(ctx.state(), (start, end))?;
            }
        }
        Ok((merged, contents))
    }
}

impl<K, A, B, O> KeyedCoProcessFunction<K, A, B, O> for WindowJoinFunction<K, A, B, O>
where
    K: StateKey,
    A: StateValue,
    B: StateValue,
    O: Send + 'static,
{
    fn process1(&mut self, record: A, ctx: &mut KeyedContext<'_, K>, _out: &mut Collector<O>) -> OperatorResult {
        let at = ctx.timestamp().unwrap_or_default();
        self.add(at, ctx, record, |contents, record| contents.0.push(record))
    }

    fn process2(&mut self, record: B, ctx: &mut KeyedContext<'_, K>, _out: &mut Collector<O>) -> OperatorResult {
        let at = ctx.timestamp().unwrap_or_default();
        self.add(at, ctx, record, |contents, record| contents.1.push(record))
    }

    /// Fires the key's windows that end by `timestamp_ms`.
    fn on_timer(
        &mut self,
        timestamp_ms: i64,
        _: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<O>,
    ) -> OperatorResult {
        let due: Vec<(i64, i64)> = match self.assigner {
            WindowAssigner::Tumbling { size_ms, .. } | WindowAssigner::Sliding { size_ms, .. } => {
                vec![(timestamp_ms + 1 - size_ms, timestamp_ms + 1)]
            }
            WindowAssigner::Session { .. } => {
                let open = self.windows.entries(ctx.state())?;
                open.into_iter().map(|(key, _)| key).filter(|(_, end)| end - 1 <= timestamp_ms).collect()
            }
        };
        for key in due {
            if let Some((lefts, rights)) = self.windows.take(ctx.state(), &key)? {
                (self.fire)(ctx.key(), TimeWindow::new(key.0, key.1), &lefts, &rights, out)?;
            }
        }
        Ok(())
    }
}
