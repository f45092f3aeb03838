//! Two inputs into one operator (`connect`): a keyed two-input function sees both inputs'
//! records of a key in one subtask with one keyed state, its event-time timers fire only once
//! both inputs' watermarks passed them, and an unkeyed one sees every record of both; at
//! parallelism 1, 2 and 3, with checkpoints on.

use std::collections::BTreeMap;
use std::time::Duration;

use rill_operators::{
    CoProcessFunction, CollectSink, ConnectedKeyedStreamsExt, ConnectedStreamsExt, GeneratorSource,
    KeyedCoProcessFunction, KeyedContext, StateRegistry, StreamExt, TimeDomain, WatermarkStrategy,
};
use rill_runtime::{Collector, OperatorContext, OperatorResult, StreamEnv};
use rill_state::ValueState;

const KEYS: u64 = 4;
/// Orders: order i has key i % 4 and event time i ms.
const ORDERS: u64 = 20_000;
/// Payments: payment j has key j % 4 and event time 4 j ms (the same span of event time).
const PAYMENTS: u64 = 5_000;

fn env(parallelism: usize, dir: &std::path::Path) -> StreamEnv {
    StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(50))
        .tick_interval(Duration::from_millis(5))
        .checkpoint_dir(dir)
        .build()
        .unwrap()
}

/// At each order's event time, once both inputs are past it: how many payments of its key
/// have an event time up to the order's.
struct PaidUpTo {
    payments: ValueState<u64, Vec<i64>>,
}

impl KeyedCoProcessFunction<u64, u64, u64, (u64, i64, usize)> for PaidUpTo {
    fn process1(
        &mut self,
        _order: u64,
        ctx: &mut KeyedContext<'_, u64>,
        _: &mut Collector<(u64, i64, usize)>,
    ) -> OperatorResult {
        let at = ctx.timestamp().expect("orders carry their event time");
        ctx.register_event_time_timer(at)?;
        Ok(())
    }

    fn process2(
        &mut self,
        _payment: u64,
        ctx: &mut KeyedContext<'_, u64>,
        _: &mut Collector<(u64, i64, usize)>,
    ) -> OperatorResult {
        let at = ctx.timestamp().expect("payments carry their event time");
        self.payments.update(ctx.state(), |times| Some([times.unwrap_or_default(), vec![at]].concat()))?;
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp_ms: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<(u64, i64, usize)>,
    ) -> OperatorResult {
        let paid = self.payments.get(ctx.state())?.unwrap_or_default().iter().filter(|t| **t <= timestamp_ms).count();
        out.emit((*ctx.key(), timestamp_ms, paid));
        Ok(())
    }
}

fn paid_up_to(parallelism: usize) -> Vec<(u64, i64, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let env = env(parallelism, dir.path());
    // The orders run ahead in event time (0.5 s for all, the payments 1 s), and both emit
    // watermarks often: a timer fired by the orders' watermark alone would miss payments.
    let every = Duration::from_millis(5);
    let orders = env
        .source("orders", GeneratorSource::new(0..ORDERS).ordered().rate_per_second(40_000))
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(|i: &u64| *i as i64).with_emit_interval(every));
    let payments = env
        .source("payments", GeneratorSource::new(0..PAYMENTS).ordered().rate_per_second(5_000))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::ascending(|j: &u64| 4 * *j as i64).with_emit_interval(every),
        );
    let (sink, collected) = CollectSink::new();
    orders
        .connect(payments)
        .key_by(|i: &u64| i % KEYS, |j: &u64| j % KEYS)
        .process_with_timestamps(
            |i: &u64| *i as i64,
            |j: &u64| 4 * *j as i64,
            |state: &mut StateRegistry<'_, u64>| Ok(PaidUpTo { payments: state.value("payments")? }),
        )
        .sink_to(sink);
    env.execute("paid-up-to").unwrap();
    let mut rows = collected.lock().unwrap().clone();
    rows.sort_unstable();
    rows
}

#[test]
fn a_keyed_two_input_timer_fires_only_when_both_inputs_watermarks_passed_it_and_sees_both_sides_state() {
    let mut expected = Vec::new();
    for i in 0..ORDERS {
        let (key, at) = (i % KEYS, i as i64);
        let paid = (0..PAYMENTS).filter(|j| j % KEYS == key && 4 * *j as i64 <= at).count();
        expected.push((key, at, paid));
    }
    expected.sort_unstable();
    for parallelism in [1, 2, 3] {
        let got = paid_up_to(parallelism);
        assert_eq!(got.len(), expected.len(), "parallelism {parallelism}: one row per order");
        let wrong: Vec<_> = got.iter().zip(&expected).filter(|(g, e)| g != e).take(3).collect();
        assert!(wrong.is_empty(), "parallelism {parallelism}: (got, expected) {wrong:?}");
    }
}

/// Counts each input's records per subtask and emits both counts at the end.
struct CountBoth(u64, u64);

impl CoProcessFunction<u64, String, (u64, u64)> for CountBoth {
    fn process1(&mut self, _: u64, _: &mut OperatorContext<'_>, _: &mut Collector<(u64, u64)>) -> OperatorResult {
        self.0 += 1;
        Ok(())
    }

    fn process2(&mut self, _: String, _: &mut OperatorContext<'_>, _: &mut Collector<(u64, u64)>) -> OperatorResult {
        self.1 += 1;
        Ok(())
    }

    fn on_end_of_input(&mut self, _: &mut OperatorContext<'_>, out: &mut Collector<(u64, u64)>) -> OperatorResult {
        out.emit((self.0, self.1));
        Ok(())
    }
}

#[test]
fn an_unkeyed_two_input_function_sees_every_record_of_both_inputs_of_different_types() {
    for parallelism in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let env = env(parallelism, dir.path());
        let numbers = env.source("numbers", GeneratorSource::new(0..30_000));
        let words = env.source("words", GeneratorSource::new(0..7_000)).map(|n: u64| format!("w{n}"));
        let (sink, collected) = CollectSink::new();
        numbers.connect(words).process(|_: &mut _| Ok(CountBoth(0, 0))).sink_to(sink);
        env.execute("count-both").unwrap();
        let per_subtask = collected.lock().unwrap().clone();
        assert_eq!(per_subtask.len(), parallelism, "one count per subtask");
        let totals = per_subtask.iter().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        assert_eq!(totals, (30_000, 7_000), "parallelism {parallelism}");
    }
}

#[test]
fn both_inputs_records_of_one_key_share_its_state_in_one_subtask() {
    struct Tally(ValueState<u64, (u64, u64)>);
    impl KeyedCoProcessFunction<u64, u64, u64, (u64, u64, u64)> for Tally {
        fn process1(
            &mut self,
            _: u64,
            ctx: &mut KeyedContext<'_, u64>,
            out: &mut Collector<(u64, u64, u64)>,
        ) -> OperatorResult {
            let (a, b) = self.0.get(ctx.state())?.unwrap_or_default();
            self.0.set(ctx.state(), (a + 1, b))?;
            out.emit((*ctx.key(), a + 1, b));
            Ok(())
        }
        fn process2(
            &mut self,
            _: u64,
            ctx: &mut KeyedContext<'_, u64>,
            out: &mut Collector<(u64, u64, u64)>,
        ) -> OperatorResult {
            let (a, b) = self.0.get(ctx.state())?.unwrap_or_default();
            self.0.set(ctx.state(), (a, b + 1))?;
            out.emit((*ctx.key(), a, b + 1));
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let env = env(3, dir.path());
    let left = env.source("left", GeneratorSource::new(0..50_000));
    let right = env.source("right", GeneratorSource::new(0..20_000));
    let (sink, collected) = CollectSink::new();
    left.connect(right)
        .key_by(|n: &u64| n % 101, |n: &u64| n % 101)
        .process(|state: &mut StateRegistry<'_, u64>| Ok(Tally(state.value("tally")?)))
        .sink_to(sink);
    env.execute("tally").unwrap();
    let mut last: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (key, a, b) in collected.lock().unwrap().iter() {
        let seen = last.entry(*key).or_default();
        *seen = (seen.0.max(*a), seen.1.max(*b));
    }
    for key in 0..101 {
        let expected = (50_000 / 101 + u64::from(key < 50_000 % 101), 20_000 / 101 + u64::from(key < 20_000 % 101));
        assert_eq!(last[&key], expected, "key {key}: both sides counted in one state");
    }
}
