//! Window semantics, driven by hand: records `(key, timestamp)`, hand-fed watermarks, snapshots
//! and restores; no threads, no sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill_runtime::{Collector, HarnessSnapshot, OperatorHarness, OperatorResult};

use super::functions::{AggregateWindow, ProcessWindow, ReduceWindow, WindowFunction};
use super::operator::{WindowAggregate, WindowAggregateOperator};
use super::step::WindowSpec;
use super::*;

type Rec = (u64, i64);

fn spec(assigner: WindowAssigner, lateness_ms: i64) -> WindowSpec<u64, Rec> {
    WindowSpec {
        key: rill_runtime::KeySelector::new(|r: &Rec| r.0, 128),
        timestamps: Arc::new(|r: &Rec| r.1),
        assigner,
        lateness_ms,
        late_records: Arc::new(AtomicU64::new(0)),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type CountOp<L> = WindowAggregate<u64, Rec, AggregateWindow<Count>, L>;

fn count<L>(assigner: WindowAssigner, lateness_ms: i64) -> CountOp<L> {
    WindowAggregate::new(spec(assigner, lateness_ms), AggregateWindow(Count))
}

type Harness<F, L> = OperatorHarness<
    Rec,
    <L as LatePolicy<Rec>>::Output<<F as WindowFunction<u64, Rec>>::Out>,
    WindowAggregateOperator<u64, Rec, F, L>,
>;

fn harness<F, L>(op: WindowAggregate<u64, Rec, F, L>) -> (tempfile::TempDir, Harness<F, L>)
where
    F: WindowFunction<u64, Rec>,
    L: LatePolicy<Rec>,
{
    let dir = tempfile::tempdir().unwrap();
    let h = OperatorHarness::keyed(op, dir.path()).unwrap();
    (dir, h)
}

/// `(key, start, end, count)`, sorted.
fn counts(out: Vec<Windowed<u64, u64>>) -> Vec<(u64, i64, i64, u64)> {
    let mut v: Vec<_> = out.into_iter().map(|w| (w.key, w.window.start, w.window.end, w.value)).collect();
    v.sort_unstable();
    v
}

#[test]
fn a_tumbling_window_fires_once_the_watermark_reaches_its_last_millisecond() {
    let (_dir, mut h) = harness(count::<DropLate>(TumblingEventTimeWindows::of(ms(1000)), 0));
    h.process_all(vec![(1, 0), (1, 999), (2, 500), (1, 1000), (1, 1500)]).unwrap();
    h.watermark(998).unwrap();
    assert!(h.take_output().is_empty());
    h.watermark(999).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 0, 1000, 2), (2, 0, 1000, 1)]);
    assert_eq!(h.take_watermarks(), vec![998, 999]);
    h.watermark(1998).unwrap();
    assert!(h.take_output().is_empty(), "fired windows are gone");
    h.watermark(i64::MAX).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 1000, 2000, 2)]);
}

#[test]
fn out_of_order_records_within_the_watermark_land_in_their_windows() {
    let (_dir, mut h) = harness(count::<DropLate>(TumblingEventTimeWindows::of(ms(100)), 0));
    h.process_all(vec![(1, 150), (1, 20), (1, 99)]).unwrap();
    h.watermark(50).unwrap();
    h.process_all(vec![(1, 60), (1, 120)]).unwrap();
    h.watermark(i64::MAX).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 0, 100, 3), (1, 100, 200, 2)]);
}

#[test]
fn sliding_windows_count_each_record_in_every_window_it_belongs_to() {
    let (_dir, mut h) = harness(count::<DropLate>(SlidingEventTimeWindows::of(ms(300), ms(100)), 0));
    h.process_all(vec![(1, 50), (1, 150), (1, 250)]).unwrap();
    h.watermark(299).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, -200, 100, 1), (1, -100, 200, 2), (1, 0, 300, 3)]);
    h.watermark(i64::MAX).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 100, 400, 2), (1, 200, 500, 1)]);
}

#[test]
fn session_windows_merge_records_closer_than_the_gap_and_bridge_sessions() {
    let (_dir, mut h) = harness(count::<DropLate>(EventTimeSessionWindows::with_gap(ms(10)), 0));
    // Key 1: [0,10) grows to [0,15) with the record at 5; [30,40) is apart.
    h.process_all(vec![(1, 0), (1, 30), (2, 0), (1, 5)]).unwrap();
    h.process((1, 20)).unwrap(); // [20,30) touches [30,40): merged [20,40)
    h.process((1, 12)).unwrap(); // [12,22) touches [0,15) and [20,40): everything merges
    h.watermark(8).unwrap();
    assert!(h.take_output().is_empty());
    h.watermark(i64::MAX).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 0, 40, 5), (2, 0, 10, 1)]);
}

#[test]
fn a_session_fires_when_the_watermark_passes_its_gap() {
    let (_dir, mut h) = harness(count::<DropLate>(WindowAssigner::session(ms(10)), 0));
    h.process_all(vec![(1, 100), (1, 105)]).unwrap();
    h.watermark(114).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 100, 115, 2)]);
    h.process((1, 120)).unwrap();
    h.watermark(i64::MAX).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 120, 130, 1)]);
}

#[test]
fn reduce_combines_the_records_of_a_window() {
    let op: WindowAggregate<u64, Rec, _, DropLate> = WindowAggregate::new(
        spec(WindowAssigner::tumbling(ms(10)), 0),
        ReduceWindow(|a: Rec, b: Rec| (a.0, a.1.max(b.1))),
    );
    let (_dir, mut h) = harness(op);
    h.process_all(vec![(3, 4), (3, 7), (3, 2), (3, 12)]).unwrap();
    h.watermark(i64::MAX).unwrap();
    let got: Vec<(i64, Rec)> = h.take_output().into_iter().map(|w| (w.window.start, w.value)).collect();
    assert_eq!(got, vec![(0, (3, 7)), (10, (3, 12))]);
}

#[test]
fn a_process_window_function_sees_every_record_of_the_window_in_arrival_order() {
    let f = |key: &u64, w: TimeWindow, records: &[Rec], out: &mut Collector<String>| -> OperatorResult {
        let ts: Vec<String> = records.iter().map(|r| r.1.to_string()).collect();
        out.emit(format!("{key}@{}:{}", w.start, ts.join(",")));
        Ok(())
    };
    let op: WindowAggregate<u64, Rec, _, DropLate> =
        WindowAggregate::new(spec(WindowAssigner::session(ms(5)), 0), ProcessWindow::new(f));
    let (_dir, mut h) = harness(op);
    h.process_all(vec![(1, 10), (1, 12), (1, 30), (1, 16)]).unwrap();
    h.watermark(i64::MAX).unwrap();
    let mut out = h.take_output();
    out.sort();
    assert_eq!(out, vec!["1@10:10,12,16".to_string(), "1@30:30".to_string()]);
}

#[test]
fn late_records_are_dropped_and_counted() {
    let counter = Arc::new(AtomicU64::new(0));
    let mut s = spec(WindowAssigner::tumbling(ms(100)), 0);
    s.late_records = counter.clone();
    let op: CountOp<DropLate> = WindowAggregate::new(s, AggregateWindow(Count));
    let (_dir, mut h) = harness(op);
    h.process((1, 50)).unwrap();
    h.watermark(150).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 0, 100, 1)]);
    h.process_all(vec![(1, 99), (2, 0), (1, 151)]).unwrap();
    assert_eq!(counter.load(Ordering::SeqCst), 2);
    h.watermark(i64::MAX).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 100, 200, 1)], "late records never reach a window");
}

#[test]
fn late_records_go_to_the_side_output_when_asked() {
    let (_dir, mut h) = harness(count::<SideOutputLate>(WindowAssigner::tumbling(ms(100)), 0));
    h.process((1, 50)).unwrap();
    h.watermark(100).unwrap();
    h.process_all(vec![(1, 10), (1, 100)]).unwrap();
    h.watermark(i64::MAX).unwrap();
    let out = h.take_output();
    let late: Vec<Rec> = out.iter().cloned().filter_map(WindowOutput::late).collect();
    let fired = counts(out.into_iter().filter_map(WindowOutput::fired).collect());
    assert_eq!(late, vec![(1, 10)]);
    assert_eq!(fired, vec![(1, 0, 100, 1), (1, 100, 200, 1)]);
}

#[test]
fn a_sliding_record_is_late_only_when_all_its_windows_are() {
    let (_dir, mut h) = harness(count::<SideOutputLate>(SlidingEventTimeWindows::of(ms(200), ms(100)), 0));
    h.watermark(199).unwrap();
    h.process((1, 150)).unwrap(); // [0,200) closed, [100,300) open
    h.process((1, 50)).unwrap(); // [-100,100) and [0,200) closed: late
    h.watermark(i64::MAX).unwrap();
    let out = h.take_output();
    assert_eq!(out.iter().cloned().filter_map(WindowOutput::late).collect::<Vec<_>>(), vec![(1, 50)]);
    assert_eq!(counts(out.into_iter().filter_map(WindowOutput::fired).collect()), vec![(1, 100, 300, 1)]);
}

#[test]
fn allowed_lateness_fires_again_for_each_late_record_then_purges() {
    let (_dir, mut h) = harness(count::<SideOutputLate>(WindowAssigner::tumbling(ms(100)), 50));
    h.process_all(vec![(1, 10), (1, 20)]).unwrap();
    h.watermark(99).unwrap();
    let fired = |out: Vec<WindowOutput<Windowed<u64, u64>, Rec>>| {
        counts(out.into_iter().filter_map(WindowOutput::fired).collect())
    };
    assert_eq!(fired(h.take_output()), vec![(1, 0, 100, 2)]);
    h.process((1, 30)).unwrap();
    assert_eq!(fired(h.take_output()), vec![(1, 0, 100, 3)], "within the lateness: fires again at once");
    h.process((2, 40)).unwrap();
    assert_eq!(fired(h.take_output()), vec![(2, 0, 100, 1)], "a late window of its own fires at once too");
    h.watermark(148).unwrap();
    h.process((1, 40)).unwrap();
    assert_eq!(fired(h.take_output()), vec![(1, 0, 100, 4)]);
    h.watermark(149).unwrap();
    assert!(h.take_output().is_empty(), "cleanup emits nothing");
    h.process((1, 50)).unwrap();
    assert_eq!(h.take_output(), vec![WindowOutput::Late((1, 50))], "past the lateness: late");
    h.watermark(i64::MAX).unwrap();
    assert!(h.take_output().is_empty());
}

#[test]
fn session_windows_with_allowed_lateness_refire_when_a_late_record_extends_them() {
    let (_dir, mut h) = harness(count::<DropLate>(WindowAssigner::session(ms(10)), 100));
    h.process((1, 0)).unwrap();
    h.watermark(9).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 0, 10, 1)]);
    h.process((1, 5)).unwrap();
    assert!(h.take_output().is_empty(), "merged with the fired session into [0,15), not due yet");
    h.watermark(14).unwrap();
    assert_eq!(counts(h.take_output()), vec![(1, 0, 15, 2)]);
    h.watermark(200).unwrap();
    h.process((1, 5)).unwrap();
    assert!(h.take_output().is_empty(), "after the cleanup the record is late");
}

fn restore(
    dir: &std::path::Path,
    snapshots: &[HarnessSnapshot],
    parallelism: usize,
    lateness: i64,
) -> Vec<(u64, i64, i64, u64)> {
    let mut all = Vec::new();
    for subtask in 0..parallelism {
        let op = count::<DropLate>(WindowAssigner::tumbling(ms(100)), lateness);
        let mut h = OperatorHarness::restore_keyed(op, dir, snapshots, subtask, parallelism).unwrap();
        let range = rill_state::KeyGroupRange::for_subtask(subtask, parallelism, 128);
        let mine = (0..50u64).filter(|k| range.contains(rill_state::key_group_of(k, 128)));
        h.process_all(mine.map(|k| (k, 250)).collect()).unwrap();
        h.watermark(i64::MAX).unwrap();
        all.extend(h.take_output());
    }
    counts(all)
}

#[test]
fn open_windows_survive_a_checkpoint_and_fire_once_after_a_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, mut h) = harness(count::<DropLate>(WindowAssigner::tumbling(ms(100)), 0));
    h.process_all((0..50u64).flat_map(|k| [(k, 10), (k, 110), (k, 120)]).collect()).unwrap();
    h.watermark(99).unwrap();
    assert_eq!(h.take_output().len(), 50);
    let snapshot = h.snapshot(1).unwrap();
    // Output after the checkpoint is lost with the crash and produced again after the restore.
    h.watermark(i64::MAX).unwrap();
    let straight = counts(h.take_output());
    let restored = restore(dir.path(), &[snapshot], 3, 0);
    let mut want = straight;
    want.extend((0..50u64).map(|k| (k, 200, 300, 1)));
    want.sort_unstable();
    assert_eq!(restored, want, "windows [100,200) once each, with both records, plus the new ones");
}

#[test]
fn a_window_fired_before_the_checkpoint_does_not_fire_again_after_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, mut h) = harness(count::<DropLate>(WindowAssigner::tumbling(ms(100)), 1000));
    h.process_all((0..50u64).map(|k| (k, 10)).collect()).unwrap();
    h.watermark(150).unwrap();
    assert_eq!(h.take_output().len(), 50, "fired, kept for the allowed lateness");
    let snapshot = h.snapshot(1).unwrap();
    assert_eq!(restore(dir.path(), &[snapshot], 2, 1000), (0..50u64).map(|k| (k, 200, 300, 1)).collect::<Vec<_>>());
}

#[test]
fn windows_opened_and_fired_between_checkpoints_leave_nothing_in_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, mut h) = harness(count::<DropLate>(WindowAssigner::tumbling(ms(100)), 0));
    h.process_all((0..50u64).map(|k| (k, 10)).collect()).unwrap();
    let first = h.snapshot(1).unwrap();
    h.process_all((0..50u64).map(|k| (k, 20)).collect()).unwrap();
    h.process_all((0..50u64).map(|k| (k, 150)).collect()).unwrap();
    h.watermark(199).unwrap();
    assert_eq!(h.take_output().len(), 100);
    let second = h.snapshot(2).unwrap();
    assert_eq!(restore(dir.path(), &[second], 1, 0), (0..50u64).map(|k| (k, 200, 300, 1)).collect::<Vec<_>>());
    let mut want: Vec<_> = (0..50u64).flat_map(|k| [(k, 0, 100, 1), (k, 200, 300, 1)]).collect();
    want.sort_unstable();
    assert_eq!(restore(dir.path(), &[first], 1, 0), want);
}

#[test]
fn an_invalid_window_is_a_configuration_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = OperatorHarness::keyed(count::<DropLate>(WindowAssigner::tumbling(Duration::ZERO), 0), dir.path())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("window size must be positive"), "{err}");
}

#[test]
fn a_restored_window_keeps_its_watermark_so_replayed_late_records_stay_late() {
    // The same input through one operator, and through one snapshotted and restored at the
    // barrier, must give the same windows: a record late before the barrier is late after it.
    let run = |restore: bool| -> Vec<(u64, i64, i64, u64)> {
        let (dir, mut h) = harness(count::<DropLate>(WindowAssigner::tumbling(ms(100)), 0));
        h.process_all(vec![(1, 10), (1, 150), (2, 20)]).unwrap();
        h.watermark(250).unwrap();
        let mut out = h.take_output();
        let snapshot = h.snapshot(1).unwrap();
        if restore {
            let op = count::<DropLate>(WindowAssigner::tumbling(ms(100)), 0);
            h = OperatorHarness::restore_keyed(op, dir.path(), &[snapshot], 0, 1).unwrap();
        }
        // Replayed after the barrier: a late record of a window that fired and was purged.
        h.process_all(vec![(1, 50), (1, 260)]).unwrap();
        h.watermark(i64::MAX).unwrap();
        out.extend(h.take_output());
        counts(out)
    };
    let straight = run(false);
    assert_eq!(straight, vec![(1, 0, 100, 1), (1, 100, 200, 1), (1, 200, 300, 1), (2, 0, 100, 1)]);
    assert_eq!(run(true), straight, "the restored operator must not reopen window [0, 100)");
}
