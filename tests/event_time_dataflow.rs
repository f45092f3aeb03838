//! Event time end to end: windows and timers in parallel jobs, the final watermark at end of
//! input, and idle source subtasks that must not hold event time back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill::prelude::*;
use rill::{OperatorContext, Source, SourceFactory, SourcePoll};

fn env(dir: &std::path::Path, parallelism: usize) -> StreamEnv {
    StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(20))
        .checkpoint_dir(dir)
        .build()
        .unwrap()
}

#[test]
fn tumbling_window_counts_of_a_parallel_job_are_the_true_counts() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sink, out) = CollectSink::new();
    let ts = |n: &u64| (*n / 3) as i64;
    env.source("numbers", GeneratorSource::new(0..30_000).ordered())
        .assign_timestamps_and_watermarks(WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(5), ts))
        .key_by(|n: &u64| n % 7)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(250)), ts)
        .aggregate(Count)
        .sink_to(sink);
    env.execute("tumbling").unwrap();
    let mut got: Vec<(u64, i64, u64)> = out.lock().unwrap().iter().map(|w| (w.key, w.window.start, w.value)).collect();
    got.sort_unstable();
    let mut want: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for n in 0..30_000u64 {
        *want.entry((n % 7, ts(&n) / 250 * 250)).or_default() += 1;
    }
    let want: Vec<(u64, i64, u64)> = want.into_iter().map(|((k, w), c)| (k, w, c)).collect();
    assert_eq!(got, want);
}

#[test]
fn session_windows_in_a_job_split_where_the_gap_is() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 3);
    let (sink, out) = CollectSink::new();
    // Per key n % 2, timestamps n * 10 with a 10-second hole in the middle.
    let ts = |n: &u64| if *n < 500 { *n as i64 * 10 } else { *n as i64 * 10 + 10_000 };
    env.source("numbers", GeneratorSource::new(0..1_000).ordered())
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(ts))
        .key_by(|n: &u64| n % 2)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(100)), ts)
        .reduce(|a, b| a.max(b))
        .sink_to(sink);
    env.execute("sessions").unwrap();
    let mut got: Vec<(u64, i64, i64, u64)> =
        out.lock().unwrap().iter().map(|w| (w.key, w.window.start, w.window.end, w.value)).collect();
    got.sort_unstable();
    assert_eq!(got, vec![(0, 0, 5080, 498), (0, 15000, 20080, 998), (1, 10, 5090, 499), (1, 15010, 20090, 999)]);
}

/// Registers an event-time timer 1 s after each record's timestamp (the record itself); emits
/// the key and time of each timer.
#[derive(Clone, Default)]
struct Remind;

impl KeyedProcessFunction<u64, u64, (u64, i64)> for Remind {
    fn process(&mut self, n: u64, ctx: &mut KeyedContext<'_, u64>, _out: &mut Collector<(u64, i64)>) -> OperatorResult {
        Ok(ctx.register_event_time_timer(n as i64 + 1_000)?)
    }

    fn on_timer(
        &mut self,
        time: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<(u64, i64)>,
    ) -> OperatorResult {
        if domain != TimeDomain::EventTime || ctx.current_watermark().is_none_or(|w| w < time) {
            return Err("a timer fired before the watermark reached it".into());
        }
        out.emit((*ctx.key(), time));
        Ok(())
    }
}

#[test]
fn every_event_time_timer_fires_once_by_the_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sink, out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..20_000).ordered())
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(|n: &u64| *n as i64))
        .key_by(|n: &u64| n % 10)
        .process(|_| Ok(Remind))
        .sink_to(sink);
    env.execute("timers").unwrap();
    let mut got = out.lock().unwrap().clone();
    got.sort_unstable();
    let mut want: Vec<(u64, i64)> = (0..20_000u64).map(|n| (n % 10, n as i64 + 1_000)).collect();
    want.sort_unstable();
    assert_eq!(got, want);
}

/// Subtask 0 emits 0..1000 (timestamps = the numbers), then waits until a window has fired.
/// Subtask 1 emits nothing: with `mark_idle` it tells so; without, it emits `early` records and
/// falls silent. Both give up after 20 s, which the test treats as a failure.
#[derive(Clone)]
struct Lopsided {
    fired: Arc<AtomicBool>,
    gave_up: Arc<AtomicBool>,
    mark_idle: bool,
    early: u64,
    next: u64,
    started: Option<Instant>,
}

/// Each subtask opens a clone (it has no position to restore).
impl SourceFactory<u64> for Lopsided {
    type Source = Lopsided;

    fn open(&self, _ctx: &mut OpenContext<'_>, _restored: Vec<()>) -> OperatorResult<Lopsided> {
        Ok(self.clone())
    }
}

impl Source<u64> for Lopsided {
    type Position = ();

    fn poll(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<u64>) -> OperatorResult<SourcePoll> {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.fired.load(Ordering::SeqCst) {
            return Ok(SourcePoll::Finished);
        }
        if started.elapsed() > Duration::from_secs(20) {
            self.gave_up.store(true, Ordering::SeqCst);
            return Ok(SourcePoll::Finished);
        }
        let limit = if ctx.info().subtask == 0 { 1_000 } else { self.early };
        if self.next < limit {
            out.emit(self.next);
            self.next += 1;
            return Ok(SourcePoll::Ready);
        }
        if ctx.info().subtask == 1 && self.mark_idle {
            out.mark_idle();
        }
        Ok(SourcePoll::Idle(Duration::from_millis(5)))
    }

    fn on_barrier(&mut self, _barrier: Barrier, _ctx: &mut OperatorContext<'_>) -> OperatorResult<Vec<()>> {
        Ok(Vec::new())
    }
}

/// Notes window results and raises the flag the sources wait for.
#[derive(Clone)]
struct Flag {
    fired: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u64, i64, u64)>>>,
}

impl Operator<Windowed<u64, u64>, ()> for Flag {
    fn process(
        &mut self,
        w: Windowed<u64, u64>,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<()>,
    ) -> OperatorResult {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).push((w.key, w.window.start, w.value));
        self.fired.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn lopsided_job(mark_idle: bool, early: u64, idleness: Option<Duration>) -> (bool, Vec<(u64, i64, u64)>) {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let fired = Arc::new(AtomicBool::new(false));
    let gave_up = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let source = Lopsided { fired: fired.clone(), gave_up: gave_up.clone(), mark_idle, early, next: 0, started: None };
    let mut strategy = WatermarkStrategy::ascending(|n: &u64| *n as i64).with_emit_interval(Duration::from_millis(20));
    if let Some(timeout) = idleness {
        strategy = strategy.with_idleness(timeout);
    }
    env.source("lopsided", source)
        .assign_timestamps_and_watermarks(strategy)
        .key_by(|n: &u64| n % 2)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)), |n: &u64| *n as i64)
        .aggregate(Count)
        .sink_to(ClonePerSubtask(Flag { fired, seen: seen.clone() }));
    env.execute("lopsided").unwrap();
    let seen = seen.lock().unwrap().clone();
    (gave_up.load(Ordering::SeqCst), seen)
}

#[test]
fn a_source_subtask_marked_idle_does_not_hold_windows_back() {
    let (gave_up, seen) = lopsided_job(true, 0, None);
    assert!(!gave_up, "no window fired while a source subtask was idle");
    assert!(seen.contains(&(0, 0, 50)) && seen.contains(&(1, 0, 50)), "{seen:?}");
}

#[test]
fn a_silent_input_is_marked_idle_after_the_strategys_timeout() {
    let (gave_up, seen) = lopsided_job(false, 3, Some(Duration::from_millis(200)));
    assert!(!gave_up, "no window fired although the silent subtask timed out as idle");
    assert!(!seen.is_empty());
}
