//! The dataflow API end to end: chaining, partitioning, union, keyed state of every kind.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::prelude::*;

fn env(dir: &std::path::Path, parallelism: usize) -> StreamEnv {
    StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(10))
        .checkpoint_dir(dir)
        .build()
        .unwrap()
}

#[test]
fn map_filter_and_flat_map_chain_in_one_subtask() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sink, out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..1000))
        .filter(|n| n % 2 == 0)
        .map(|n| n * 10)
        .flat_map(|n| [n, n + 1])
        .sink_to(sink);
    env.execute("chain").unwrap();
    let mut got = out.lock().unwrap().clone();
    got.sort_unstable();
    let want: Vec<u64> = (0..1000u64).filter(|n| n % 2 == 0).flat_map(|n| [n * 10, n * 10 + 1]).collect();
    assert_eq!(got, want);
}

#[test]
fn union_of_two_sources_delivers_both_and_aligns_their_barriers() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sink, out) = CollectSink::new();
    let a = env.source("a", GeneratorSource::new(0..50_000).rate_per_second(200_000));
    let b = env.source("b", GeneratorSource::new(100_000..150_000)).set_parallelism(3);
    a.union(vec![b]).key_by(|n: &u64| n % 5).reduce(|x, y| x.max(y)).sink_to(sink);
    let result = env.execute("union").unwrap();
    assert!(result.checkpoints >= 2, "checkpoints must complete across the union: {}", result.checkpoints);
    let got = out.lock().unwrap();
    assert_eq!(got.len(), 100_000);
    for r in 0..5 {
        let max = (100_000..150_000u64).filter(|n| n % 5 == r).max().unwrap();
        assert!(got.contains(&max));
    }
}

#[test]
fn a_union_is_named_by_its_uid_in_the_jobs_vertices() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sink, out) = CollectSink::new();
    let a = env.source("a", GeneratorSource::new(0..100));
    let b = env.source("b", GeneratorSource::new(100..200));
    a.union(vec![b]).uid("all-numbers").key_by(|n: &u64| n % 5).reduce(|x, y| x.max(y)).sink_to(sink);
    let monitor = env.monitor();
    env.execute("named-union").unwrap();
    let ids: Vec<String> = monitor.view().vertices.into_iter().map(|v| v.id).collect();
    assert_eq!(ids[..3], ["a", "b", "all-numbers"], "vertex ids");
    assert!(ids[3].starts_with("reduce-"), "a generated uid: {ids:?}");
    assert_eq!(out.lock().unwrap().len(), 200);
}

#[test]
fn one_keyed_stream_feeds_two_keyed_operators_each_with_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sums, sums_out) = CollectSink::new();
    let (counts, counts_out) = CollectSink::new();
    let keyed = env.source("numbers", GeneratorSource::new(0..10_000).rate_per_second(50_000)).key_by(|n: &u64| n % 7);
    keyed.clone().reduce(|a, b| a + b).sink_to(sums);
    keyed.process(RunningCount::open).set_parallelism(3).sink_to(counts);
    let result = env.execute("fan-out").unwrap();
    assert!(result.checkpoints >= 2, "barriers reach both branches: {}", result.checkpoints);
    let sums = sums_out.lock().unwrap();
    assert_eq!(sums.len(), 10_000);
    for r in 0..7 {
        assert!(sums.contains(&(0..10_000u64).filter(|n| n % 7 == r).sum::<u64>()));
    }
    let counts = counts_out.lock().unwrap();
    assert_eq!(counts.len(), 10_000);
    for r in 0..7u64 {
        let n = (0..10_000u64).filter(|n| n % 7 == r).count() as u64;
        assert!(counts.contains(&(r, n)), "key {r} counted to {n}");
    }
}

#[test]
fn a_stream_used_twice_reaches_an_exchange_and_a_chained_sink() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (direct, direct_out) = CollectSink::new();
    let (shuffled, shuffled_out) = CollectSink::new();
    let doubled = env.source("numbers", GeneratorSource::new(0..1_000)).map(|n| n * 2);
    doubled.clone().sink_to(direct);
    doubled.rebalance().set_parallelism(3).map(|n| n + 1).sink_to(shuffled);
    env.execute("twice").unwrap();
    let mut a = direct_out.lock().unwrap().clone();
    a.sort_unstable();
    assert_eq!(a, (0..1_000u64).map(|n| n * 2).collect::<Vec<_>>());
    let mut b = shuffled_out.lock().unwrap().clone();
    b.sort_unstable();
    assert_eq!(b, (0..1_000u64).map(|n| n * 2 + 1).collect::<Vec<_>>());
}

#[test]
fn broadcast_sends_every_record_to_every_subtask() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 1);
    let (sink, out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..100)).broadcast().set_parallelism(3).sink_to(sink);
    env.execute("broadcast").unwrap();
    assert_eq!(out.lock().unwrap().len(), 300);
}

#[test]
fn rebalance_spreads_records_over_all_subtasks() {
    #[derive(Clone)]
    struct Tag;
    impl Operator<u64, usize> for Tag {
        fn process(
            &mut self,
            _r: u64,
            ctx: &mut rill::OperatorContext<'_>,
            out: &mut Collector<usize>,
        ) -> OperatorResult {
            out.emit(ctx.info().subtask);
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 1);
    let (sink, out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..3000))
        .rebalance()
        .set_parallelism(3)
        .transform("tag", ClonePerSubtask(Tag))
        .sink_to(sink);
    env.execute("rebalance").unwrap();
    let mut per_subtask = BTreeMap::new();
    for s in out.lock().unwrap().iter() {
        *per_subtask.entry(*s).or_insert(0) += 1;
    }
    assert_eq!(per_subtask.values().copied().collect::<Vec<_>>(), vec![1000, 1000, 1000]);
}

/// Keeps, per key, the list of records and a map of residue -> count.
struct Shapes {
    list: ListState<u64, u64>,
    map: MapState<u64, u64, u64>,
}

impl KeyedProcessFunction<u64, u64, (u64, usize, Vec<(u64, u64)>)> for Shapes {
    fn process(
        &mut self,
        record: u64,
        ctx: &mut KeyedContext<'_, u64>,
        out: &mut Collector<(u64, usize, Vec<(u64, u64)>)>,
    ) -> OperatorResult {
        let (list, map) = (self.list, self.map);
        list.add(ctx.state(), record)?;
        let residue = record % 3;
        let n = map.get(ctx.state(), &residue)?.unwrap_or(0);
        map.put(ctx.state(), residue, n + 1)?;
        let len = list.get(ctx.state())?.len();
        out.emit((*ctx.key(), len, map.entries(ctx.state())?));
        Ok(())
    }
}

#[test]
fn list_and_map_state_hold_every_record_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 2);
    let (sink, out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..600))
        .key_by(|n: &u64| n % 4)
        .process(|state| Ok(Shapes { list: state.list("seen")?, map: state.map("residues")? }))
        .sink_to(sink);
    env.execute("shapes").unwrap();
    let out = out.lock().unwrap();
    for key in 0..4u64 {
        let last = out.iter().filter(|(k, _, _)| *k == key).max_by_key(|(_, len, _)| *len).unwrap();
        assert_eq!(last.1, 150);
        let total: u64 = last.2.iter().map(|(_, c)| c).sum();
        assert_eq!(total, 150);
    }
}

#[test]
fn stream_without_a_sink_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), 1);
    let _dangling = env.source("numbers", GeneratorSource::new(0..10)).map(|n| n + 1);
    let err = env.execute("dangling").unwrap_err();
    assert!(err.to_string().contains("never consumed"), "{err}");
}

#[test]
fn missing_checkpoint_dir_is_a_configuration_error() {
    let err = StreamEnv::builder().parallelism(2).build().err().expect("must fail");
    assert!(err.to_string().contains("checkpoint directory"), "{err}");
}
