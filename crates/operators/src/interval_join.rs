//! The interval join of two keyed streams (Flink's `KeyedStream.intervalJoin`): every pair of
//! records with equal keys whose event times satisfy
//! `left_time + lower <= right_time <= left_time + upper`, each pair once.
//!
//! Both sides wait in keyed state (RocksDB, so larger than memory), each a list of (event time,
//! record) per key: one point lookup per record, never a scan. A record
//! arriving meets the other side's records already there; one arriving later meets it in turn,
//! so each pair is found once, by the later of its two. A record is dropped from its buffer once
//! the watermark (the minimum of both inputs') is past the last time a partner could have, as
//! Flink does; records behind the watermark when they arrive are late and dropped.

use std::sync::Arc;

use rill_runtime::{Collector, DataStream, KeyedStream, OperatorResult};
use rill_state::{StateKey, StateValue, ValueState};

use crate::co_process::{ConnectedKeyedStreamsExt, KeyedCoProcessFunction};
use crate::keyed::{KeyedContext, StateRegistry};
use crate::timers::TimeDomain;

/// The event times of a joined pair: Flink's `ProcessJoinFunction.Context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinTimes {
    /// The left record's event time.
    pub left: i64,
    /// The right record's event time.
    pub right: i64,
}

impl JoinTimes {
    /// The pair's event time: the larger of the two (as Flink's).
    pub fn timestamp(&self) -> i64 {
        self.left.max(self.right)
    }
}

/// What an interval join does with each joined pair (Flink's `ProcessJoinFunction`). A closure
/// `|left: &A, right: &B, times: JoinTimes, out: &mut Collector<O>| -> OperatorResult` is one.
pub trait ProcessJoinFunction<A, B, O>: Send + Sync + 'static {
    /// Handles one pair of records whose event times are within the join's bounds.
    fn process(&self, left: &A, right: &B, times: JoinTimes, out: &mut Collector<O>) -> OperatorResult;
}

impl<A, B, O, F> ProcessJoinFunction<A, B, O> for F
where
    F: Fn(&A, &B, JoinTimes, &mut Collector<O>) -> OperatorResult + Send + Sync + 'static,
{
    fn process(&self, left: &A, right: &B, times: JoinTimes, out: &mut Collector<O>) -> OperatorResult {
        self(left, right, times, out)
    }
}

/// An event-time accessor of one side's records.
type TimeOf<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;

/// Two keyed streams to join by event-time interval: made by
/// [`IntervalJoinExt::interval_join`], bounded with [`IntervalJoin::between`].
pub struct IntervalJoin<A, B, K> {
    left: KeyedStream<A, K>,
    right: KeyedStream<B, K>,
    left_time: TimeOf<A>,
    right_time: TimeOf<B>,
}

/// An interval join with its bounds: finish it with [`BoundedIntervalJoin::process`].
pub struct BoundedIntervalJoin<A, B, K> {
    join: IntervalJoin<A, B, K>,
    lower: i64,
    upper: i64,
}

/// The interval join on keyed streams.
pub trait IntervalJoinExt<A, K> {
    /// Joins with `right`, keyed the same way, by event time: `left_time` and `right_time` read
    /// each side's records' event time (usually those of their watermark strategies).
    fn interval_join<B>(
        self,
        right: KeyedStream<B, K>,
        left_time: impl Fn(&A) -> i64 + Send + Sync + 'static,
        right_time: impl Fn(&B) -> i64 + Send + Sync + 'static,
    ) -> IntervalJoin<A, B, K>;
}

impl<A, K> IntervalJoinExt<A, K> for KeyedStream<A, K> {
    fn interval_join<B>(
        self,
        right: KeyedStream<B, K>,
        left_time: impl Fn(&A) -> i64 + Send + Sync + 'static,
        right_time: impl Fn(&B) -> i64 + Send + Sync + 'static,
    ) -> IntervalJoin<A, B, K> {
        IntervalJoin { left: self, right, left_time: Arc::new(left_time), right_time: Arc::new(right_time) }
    }
}

impl<A, B, K> IntervalJoin<A, B, K> {
    /// Joins a left record at time t with the right records at times within `[t + lower_ms,
    /// t + upper_ms]` (both inclusive; bounds may be negative; `lower_ms <= upper_ms`).
    pub fn between(self, lower_ms: i64, upper_ms: i64) -> BoundedIntervalJoin<A, B, K> {
        BoundedIntervalJoin { join: self, lower: lower_ms, upper: upper_ms.max(lower_ms) }
    }
}

impl<A, B, K> BoundedIntervalJoin<A, B, K>
where
    A: StateValue,
    B: StateValue,
    K: StateKey,
{
    /// Calls `f` once for every joined pair.
    pub fn process<O: Send + 'static>(self, f: impl ProcessJoinFunction<A, B, O>) -> DataStream<O> {
        let (lower, upper) = (self.lower, self.upper);
        let (left_time, right_time) = (self.join.left_time, self.join.right_time);
        let f = Arc::new(f);
        self.join.left.connect(self.join.right).process_with_timestamps(
            move |a: &A| left_time(a),
            move |b: &B| right_time(b),
            move |state: &mut StateRegistry<'_, K>| {
                Ok(IntervalJoinFunction {
                    left: state.value("left")?,
                    right: state.value("right")?,
                    lower,
                    upper,
                    f: f.clone(),
                })
            },
        )
    }
}

/// The join as a keyed two-input function: both sides buffered by event time.
struct IntervalJoinFunction<K, A, B, F> {
    left: ValueState<K, Vec<(i64, A)>>,
    right: ValueState<K, Vec<(i64, B)>>,
    lower: i64,
    upper: i64,
    f: Arc<F>,
}

/// When a left record at `at` can meet no more right records (Flink's cleanup time).
fn left_expires(upper: i64, at: i64) -> i64 {
    if upper > 0 {
        at + upper
    } else {
        at
    }
}

/// When a right record at `at` can meet no more left records (Flink's cleanup time).
fn right_expires(lower: i64, at: i64) -> i64 {
    if lower <= 0 {
        at - lower
    } else {
        at
    }
}

/// The records held, with `record` at `at` added.
fn with<T>(held: Option<Vec<(i64, T)>>, at: i64, record: T) -> Option<Vec<(i64, T)>> {
    let mut records = held.unwrap_or_default();
    records.push((at, record));
    Some(records)
}

/// The records held that do not expire by `now`, or `None` if none is left.
fn unexpired<T>(held: Option<Vec<(i64, T)>>, expires: impl Fn(i64) -> i64, now: i64) -> Option<Vec<(i64, T)>> {
    let kept: Vec<(i64, T)> = held.unwrap_or_default().into_iter().filter(|(at, _)| expires(*at) > now).collect();
    (!kept.is_empty()).then_some(kept)
}

/// Whether a record at `at` arrives behind the watermark.
fn late(at: i64, watermark: Option<i64>) -> bool {
    watermark.is_some_and(|w| at < w)
}

impl<K, A, B, O, F> KeyedCoProcessFunction<K, A, B, O> for IntervalJoinFunction<K, A, B, F>
where
    K: StateKey,
    A: StateValue,
    B: StateValue,
    F: ProcessJoinFunction<A, B, O>,
{
    fn process1(&mut self, record: A, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> OperatorResult {
        let at = ctx.timestamp().unwrap_or_default();
        if late(at, ctx.current_watermark()) {
            return Ok(());
        }
        for (right_at, right) in self.right.get(ctx.state())?.unwrap_or_default() {
            if (at + self.lower..=at + self.upper).contains(&right_at) {
                self.f.process(&record, &right, JoinTimes { left: at, right: right_at }, out)?;
            }
        }
        self.left.update(ctx.state(), |held| with(held, at, record))?;
        ctx.register_event_time_timer(left_expires(self.upper, at))?;
        Ok(())
    }

    fn process2(&mut self, record: B, ctx: &mut KeyedContext<'_, K>, out: &mut Collector<O>) -> OperatorResult {
        let at = ctx.timestamp().unwrap_or_default();
        if late(at, ctx.current_watermark()) {
            return Ok(());
        }
        for (left_at, left) in self.left.get(ctx.state())?.unwrap_or_default() {
            if (left_at + self.lower..=left_at + self.upper).contains(&at) {
                self.f.process(&left, &record, JoinTimes { left: left_at, right: at }, out)?;
            }
        }
        self.right.update(ctx.state(), |held| with(held, at, record))?;
        ctx.register_event_time_timer(right_expires(self.lower, at))?;
        Ok(())
    }

    /// Drops every record of the key that can meet no more partners by `timestamp_ms`.
    fn on_timer(
        &mut self,
        timestamp_ms: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        _out: &mut Collector<O>,
    ) -> OperatorResult {
        let (lower, upper) = (self.lower, self.upper);
        self.left.update(ctx.state(), |held| unexpired(held, |at| left_expires(upper, at), timestamp_ms))?;
        self.right.update(ctx.state(), |held| unexpired(held, |at| right_expires(lower, at), timestamp_ms))?;
        Ok(())
    }
}
