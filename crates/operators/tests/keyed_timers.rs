//! Timers of keyed process functions, driven by hand: hand-fed watermarks and a manual clock, no
//! threads and no sleeps; snapshots and restores (also at another parallelism).

use rill_operators::{
    KeyedContext, KeyedProcess, KeyedProcessFunction, KeyedProcessOperator, StateRegistry, TimeDomain,
};
use rill_runtime::{Collector, HarnessSnapshot, KeySelector, OperatorFactory, OperatorHarness, OperatorResult};
use rill_state::ValueState;

/// Input `(key, delay)`: registers an event-time timer at `delay` (or, when `delay` is negative,
/// a processing-time timer at `-delay`); counts records per key. On a timer, emits
/// `(key, time, domain, count)`. A timer at a multiple of 1000 registers a follow-up at +1.
struct Alarm {
    count: ValueState<u64, u64>,
}

type Fired = (u64, i64, TimeDomain, u64);

impl KeyedProcessFunction<u64, (u64, i64), Fired> for Alarm {
    fn process(
        &mut self,
        (_, at): (u64, i64),
        ctx: &mut KeyedContext<'_, u64>,
        _out: &mut Collector<Fired>,
    ) -> OperatorResult {
        self.count.update(ctx.state(), |c| Some(c.unwrap_or(0) + 1))?;
        if at >= 0 {
            ctx.register_event_time_timer(at)?;
        } else {
            ctx.register_processing_time_timer(-at)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        time: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<Fired>,
    ) -> OperatorResult {
        let n = self.count.get(ctx.state())?.unwrap_or(0);
        out.emit((*ctx.key(), time, domain, n));
        if domain == TimeDomain::EventTime && time % 1000 == 0 {
            ctx.register_event_time_timer(time + 1)?;
        }
        Ok(())
    }
}

type Harness = OperatorHarness<(u64, i64), Fired, KeyedProcessOperator<u64, (u64, i64), Alarm>>;

fn operator() -> impl OperatorFactory<(u64, i64), Fired, Operator = KeyedProcessOperator<u64, (u64, i64), Alarm>> {
    let open =
        |state: &mut StateRegistry<'_, u64>| -> OperatorResult<Alarm> { Ok(Alarm { count: state.value("count")? }) };
    KeyedProcess::new(KeySelector::new(|r: &(u64, i64)| r.0, 128), open)
}

fn sorted(mut v: Vec<Fired>) -> Vec<Fired> {
    v.sort_unstable_by_key(|f| (f.1, f.0));
    v
}

const EVENT: TimeDomain = TimeDomain::EventTime;
const PROC: TimeDomain = TimeDomain::ProcessingTime;

#[test]
fn event_time_timers_fire_in_time_order_once_the_watermark_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut h: Harness = OperatorHarness::keyed(operator(), dir.path()).unwrap();
    h.process_all(vec![(1, 30), (2, 10), (1, 10), (2, 10), (3, 50)]).unwrap();
    h.watermark(9).unwrap();
    assert!(h.take_output().is_empty());
    assert_eq!(h.take_watermarks(), vec![9]);
    h.watermark(30).unwrap();
    let out = h.take_output();
    assert_eq!(sorted(out.clone()), vec![(1, 10, EVENT, 2), (2, 10, EVENT, 2), (1, 30, EVENT, 2)]);
    assert_eq!(out.last().map(|f| f.1), Some(30), "in time order");
    assert_eq!(h.take_watermarks(), vec![30], "the watermark follows the timers' output");
    h.watermark(i64::MAX).unwrap();
    assert_eq!(h.take_output(), vec![(3, 50, EVENT, 1)]);
}

#[test]
fn a_timer_registered_while_firing_fires_in_the_same_watermark_if_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut h: Harness = OperatorHarness::keyed(operator(), dir.path()).unwrap();
    h.process((7, 1000)).unwrap();
    h.watermark(1000).unwrap();
    assert_eq!(h.take_output(), vec![(7, 1000, EVENT, 1)]);
    h.watermark(1001).unwrap();
    assert_eq!(h.take_output(), vec![(7, 1001, EVENT, 1)]);
    h.process((8, 2000)).unwrap();
    h.watermark(5000).unwrap();
    assert_eq!(h.take_output(), vec![(8, 2000, EVENT, 1), (8, 2001, EVENT, 1)]);
}

#[test]
fn processing_time_timers_fire_when_the_clock_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut h: Harness = OperatorHarness::keyed(operator(), dir.path()).unwrap();
    h.process_all(vec![(1, -100), (2, -250)]).unwrap();
    h.watermark(i64::MAX - 1).unwrap();
    assert!(h.take_output().is_empty(), "watermarks do not fire processing-time timers");
    h.set_processing_time(99).unwrap();
    assert!(h.take_output().is_empty());
    h.set_processing_time(300).unwrap();
    assert_eq!(h.take_output(), vec![(1, 100, PROC, 1), (2, 250, PROC, 1)]);
}

/// Registers timers for 200 keys at 100 + key, checkpoints, then lets the first half fire.
fn checkpointed_run(dir: &std::path::Path) -> (HarnessSnapshot, Vec<Fired>) {
    let mut h: Harness = OperatorHarness::keyed(operator(), dir).unwrap();
    h.process_all((0..200u64).map(|k| (k, 100 + k as i64)).collect()).unwrap();
    h.process_all((0..200u64).map(|k| (k, -(5_000 + k as i64))).collect()).unwrap();
    h.watermark(99).unwrap();
    let snapshot = h.snapshot(1).unwrap();
    // After the checkpoint: these firings are lost with the crash and must happen again.
    h.watermark(199).unwrap();
    let lost = h.take_output();
    assert_eq!(lost.len(), 100);
    (snapshot, lost)
}

#[test]
fn a_restored_operator_fires_exactly_the_timers_pending_at_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (snapshot, _) = checkpointed_run(dir.path());
    let mut h: Harness = OperatorHarness::restore_keyed(operator(), dir.path(), &[snapshot], 0, 1).unwrap();
    h.watermark(i64::MAX).unwrap();
    h.set_processing_time(10_000).unwrap();
    let fired = sorted(h.take_output());
    let mut want: Vec<Fired> = (0..200u64).map(|k| (k, 100 + k as i64, EVENT, 2)).collect();
    want.extend((0..200u64).map(|k| (k, 5_000 + k as i64, PROC, 2)));
    assert_eq!(fired, sorted(want));
}

#[test]
fn timers_restored_at_another_parallelism_fire_once_in_the_subtask_owning_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let (snapshot, _) = checkpointed_run(dir.path());
    let mut fired = Vec::new();
    for subtask in 0..3 {
        let mut h: Harness =
            OperatorHarness::restore_keyed(operator(), dir.path(), std::slice::from_ref(&snapshot), subtask, 3)
                .unwrap();
        h.watermark(i64::MAX).unwrap();
        let mine = h.take_output();
        let range = rill_state::KeyGroupRange::for_subtask(subtask, 3, rill_state::DEFAULT_MAX_PARALLELISM);
        assert!(mine.iter().all(|f| range.contains(rill_state::key_group_of(&f.0, 128))));
        fired.extend(mine);
    }
    let want: Vec<Fired> = (0..200u64).map(|k| (k, 100 + k as i64, EVENT, 2)).collect();
    assert_eq!(sorted(fired), sorted(want));
}

#[test]
fn fired_and_deleted_timers_are_not_part_of_a_later_checkpoint() {
    struct Cancel;
    impl KeyedProcessFunction<u64, (u64, i64), Fired> for Cancel {
        fn process(
            &mut self,
            (_, at): (u64, i64),
            ctx: &mut KeyedContext<'_, u64>,
            _: &mut Collector<Fired>,
        ) -> OperatorResult {
            if at >= 0 {
                ctx.register_event_time_timer(at)?;
            } else {
                ctx.delete_event_time_timer(-at)?;
            }
            Ok(())
        }
        fn on_timer(
            &mut self,
            t: i64,
            d: TimeDomain,
            ctx: &mut KeyedContext<'_, u64>,
            out: &mut Collector<Fired>,
        ) -> OperatorResult {
            out.emit((*ctx.key(), t, d, 0));
            Ok(())
        }
    }
    let open = |_: &mut StateRegistry<'_, u64>| -> OperatorResult<Cancel> { Ok(Cancel) };
    let op = || KeyedProcess::new(KeySelector::new(|r: &(u64, i64)| r.0, 128), open);
    let dir = tempfile::tempdir().unwrap();
    let mut h = OperatorHarness::keyed(op(), dir.path()).unwrap();
    h.process_all(vec![(1, 10), (2, 20), (3, 30), (4, 40)]).unwrap();
    h.snapshot(1).unwrap();
    h.process_all(vec![(2, -20), (5, 50), (5, -50)]).unwrap();
    h.watermark(10).unwrap();
    assert_eq!(h.take_output(), vec![(1, 10, EVENT, 0)]);
    let snapshot = h.snapshot(2).unwrap();
    let mut r = OperatorHarness::restore_keyed(op(), dir.path(), &[snapshot], 0, 1).unwrap();
    r.watermark(i64::MAX).unwrap();
    assert_eq!(sorted(r.take_output()), vec![(3, 30, EVENT, 0), (4, 40, EVENT, 0)]);
}

#[test]
fn the_keyed_context_gives_the_records_timestamp_and_in_on_timer_the_timers() {
    /// Input `(key, event time)`: emits `(key, ctx.timestamp())` and sets a timer 100 ms later,
    /// which emits `(key, ctx.timestamp())` again.
    struct Stamp;
    impl KeyedProcessFunction<u64, (u64, i64), (u64, Option<i64>)> for Stamp {
        fn process(
            &mut self,
            _record: (u64, i64),
            ctx: &mut KeyedContext<'_, u64>,
            out: &mut Collector<(u64, Option<i64>)>,
        ) -> OperatorResult {
            out.emit((*ctx.key(), ctx.timestamp()));
            if let Some(t) = ctx.timestamp() {
                ctx.register_event_time_timer(t + 100)?;
            }
            Ok(())
        }
        fn on_timer(
            &mut self,
            _t: i64,
            _d: TimeDomain,
            ctx: &mut KeyedContext<'_, u64>,
            out: &mut Collector<(u64, Option<i64>)>,
        ) -> OperatorResult {
            out.emit((*ctx.key(), ctx.timestamp()));
            Ok(())
        }
    }
    let open = |_: &mut StateRegistry<'_, u64>| -> OperatorResult<Stamp> { Ok(Stamp) };
    let keys = || KeySelector::new(|r: &(u64, i64)| r.0, 128);
    let dir = tempfile::tempdir().unwrap();

    let timed = KeyedProcess::new(keys(), open).with_timestamps(std::sync::Arc::new(|r: &(u64, i64)| r.1));
    let mut h = OperatorHarness::keyed(timed, &dir.path().join("timed")).unwrap();
    h.process_all(vec![(1, 1_000), (2, 2_000)]).unwrap();
    assert_eq!(h.take_output(), vec![(1, Some(1_000)), (2, Some(2_000))], "the records' event times");
    h.watermark(2_100).unwrap();
    assert_eq!(h.take_output(), vec![(1, Some(1_100)), (2, Some(2_100))], "the timers' times");

    let untimed = KeyedProcess::new(keys(), open);
    let mut h = OperatorHarness::keyed(untimed, &dir.path().join("untimed")).unwrap();
    h.process_all(vec![(1, 1_000)]).unwrap();
    assert_eq!(h.take_output(), vec![(1, None)], "no timestamps given: none");
}
