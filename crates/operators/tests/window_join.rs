//! Window joins and co-groups of two streams give, at parallelism 1, 2 and 3, exactly what a
//! batch computation gives: every pair of equal keys in a tumbling or sliding window, and per key
//! and session (merged across both sides) both sides' records.

use std::collections::BTreeMap;
use std::time::Duration;

use rill_operators::{CollectSink, GeneratorSource, StreamExt, WatermarkStrategy, WindowAssigner, WindowJoinExt};
use rill_runtime::{Collector, DataStream, OperatorResult, StreamEnv};

const KEYS: u64 = 5;
/// Left record i: key i % 5, event time 7 i ms; right record j: key j % 5, event time 11 j ms.
const LEFT: u64 = 4_000;
const RIGHT: u64 = 2_500;

fn left_time(i: &u64) -> i64 {
    7 * *i as i64
}

fn right_time(j: &u64) -> i64 {
    11 * *j as i64
}

/// Runs `job` over both inputs at `parallelism` and returns what it emitted, sorted.
fn run<O: Ord + Clone + Send + 'static>(
    parallelism: usize,
    job: impl FnOnce(DataStream<u64>, DataStream<u64>) -> DataStream<O>,
) -> Vec<O> {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(30))
        .tick_interval(Duration::from_millis(5))
        .checkpoint_dir(dir.path())
        .build()
        .unwrap();
    let every = Duration::from_millis(5);
    let left = env
        .source("left", GeneratorSource::new(0..LEFT).ordered().rate_per_second(40_000))
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(left_time).with_emit_interval(every));
    let right = env
        .source("right", GeneratorSource::new(0..RIGHT).ordered().rate_per_second(15_000))
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(right_time).with_emit_interval(every));
    let (sink, collected) = CollectSink::new();
    job(left, right).sink_to(sink);
    env.execute("window-join").unwrap();
    let mut rows = collected.lock().unwrap().clone();
    rows.sort();
    rows
}

/// Pairs of equal keys whose times share a window of `assigner`, one per shared window.
fn pairs_sharing_windows(assigner: WindowAssigner) -> Vec<(u64, u64)> {
    let mut expected = Vec::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..LEFT {
        for j in (0..RIGHT).filter(|j| j % KEYS == i % KEYS) {
            a.clear();
            b.clear();
            assigner.assign(left_time(&i), &mut a);
            assigner.assign(right_time(&j), &mut b);
            for _ in a.iter().filter(|w| b.contains(w)) {
                expected.push((i, j));
            }
        }
    }
    expected.sort();
    expected
}

#[test]
fn a_tumbling_window_join_pairs_every_left_and_right_record_of_one_key_and_window() {
    let assigner = WindowAssigner::tumbling(Duration::from_millis(1_000));
    let expected = pairs_sharing_windows(assigner);
    assert!(expected.len() > 10_000, "{}", expected.len());
    for parallelism in [1, 2, 3] {
        let got = run(parallelism, |left, right| {
            left.join(right)
                .where_key(|i: &u64| i % KEYS)
                .equal_to(|j: &u64| j % KEYS)
                .window(assigner, left_time, right_time)
                .apply(|i: &u64, j: &u64| (*i, *j))
        });
        assert_eq!(got.len(), expected.len(), "parallelism {parallelism}");
        assert!(got == expected, "parallelism {parallelism}: the pairs differ");
    }
}

#[test]
fn a_sliding_window_join_pairs_records_once_per_window_they_share() {
    let assigner = WindowAssigner::sliding(Duration::from_millis(1_000), Duration::from_millis(500));
    let expected = pairs_sharing_windows(assigner);
    for parallelism in [1, 3] {
        let got = run(parallelism, |left, right| {
            left.join(right)
                .where_key(|i: &u64| i % KEYS)
                .equal_to(|j: &u64| j % KEYS)
                .window(assigner, left_time, right_time)
                .apply(|i: &u64, j: &u64| (*i, *j))
        });
        assert!(got == expected, "parallelism {parallelism}: {} pairs, {} expected", got.len(), expected.len());
    }
}

/// A key's sessions over both sides' times (gap `gap`): (key, start, end, lefts, rights).
fn sessions(gap: i64) -> Vec<(u64, i64, i64, usize, usize)> {
    let mut times: BTreeMap<u64, Vec<(i64, bool)>> = BTreeMap::new();
    (0..LEFT).for_each(|i| times.entry(i % KEYS).or_default().push((left_time(&i), true)));
    (0..RIGHT).for_each(|j| times.entry(j % KEYS).or_default().push((right_time(&j), false)));
    let mut out = Vec::new();
    for (key, mut all) in times {
        all.sort();
        let mut current: Option<(i64, i64, usize, usize)> = None;
        for (at, is_left) in all {
            current = match current {
                Some((start, end, l, r)) if at <= end => {
                    Some((start, end.max(at + gap), l + is_left as usize, r + !is_left as usize))
                }
                done => {
                    if let Some((start, end, l, r)) = done {
                        out.push((key, start, end, l, r));
                    }
                    Some((at, at + gap, is_left as usize, !is_left as usize))
                }
            };
        }
        if let Some((start, end, l, r)) = current {
            out.push((key, start, end, l, r));
        }
    }
    out.sort();
    out
}

#[test]
fn a_session_co_group_gets_both_sides_records_of_each_merged_session_once() {
    // Per key, left records come every 35 ms and right ones every 55 ms: a gap of 30 ms cuts
    // sessions where neither side fills it.
    let expected = sessions(30);
    assert!(expected.len() > 100, "{}", expected.len());
    for parallelism in [1, 2] {
        let got = run(parallelism, |left, right| {
            left.co_group(right)
                .where_key(|i: &u64| i % KEYS)
                .equal_to(|j: &u64| j % KEYS)
                .window(WindowAssigner::session(Duration::from_millis(30)), left_time, right_time)
                .apply(
                    |key: &u64,
                     window,
                     lefts: &[u64],
                     rights: &[u64],
                     out: &mut Collector<(u64, i64, i64, usize, usize)>|
                     -> OperatorResult {
                        out.emit((*key, window.start, window.end, lefts.len(), rights.len()));
                        Ok(())
                    },
                )
        });
        assert_eq!(got, expected, "parallelism {parallelism}");
    }
}
