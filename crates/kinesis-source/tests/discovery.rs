//! Shard discovery is shared by the subtasks of a process, and a ListShards answer that says
//! "not now" keeps the previous shard list instead of failing the task (as Flink).

mod common;

use std::time::{Duration, Instant};

use common::*;
use rill_kinesis_common::test_utils::{Emulator, Fault, FaultInjector};

#[test]
fn one_discovery_serves_every_subtask_of_the_process() -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(Emulator::Kinesalite, "src-discovery", 4))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(8, 400)))?;
    let faults = FaultInjector::new();
    let connection = faults.install(Emulator::Kinesalite.connection_builder()?).build()?;
    let interval = Duration::from_millis(300);
    let source = source_builder(connection, &stream, Duration::from_secs(4)).discovery_interval(interval).build()?;
    let stats = source.stats_handle();
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let result = run_counting_job(source, dir.path(), &JobSpec { parallelism: 4, ..JobSpec::default() })?;
    let elapsed = started.elapsed();
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    assert_eq!(result.restarts, 0);
    assert_eq!(faults.calls("DescribeStreamSummary"), 1, "the stream is checked once, not once per subtask");
    let rounds = elapsed.as_secs_f64() / interval.as_secs_f64();
    let listings = faults.calls("ListShards");
    assert_eq!(stats().listings as usize, listings);
    // Four subtasks listing on their own would make about 4 * rounds calls.
    assert!(
        (listings as f64) < rounds * 1.5 + 8.0,
        "{listings} ListShards calls in {elapsed:?} ({rounds:.0} discovery intervals) with 4 subtasks"
    );
    Ok(())
}

#[test]
fn resource_in_use_and_expired_tokens_on_list_shards_keep_the_previous_shard_list() -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(Emulator::Kinesalite, "src-in-use", 2))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(6, 300)))?;
    let faults = FaultInjector::new();
    faults.inject_nth("ListShards", 2, Fault::error("ResourceInUseException", 400));
    faults.inject_nth("ListShards", 3, Fault::error("ExpiredNextTokenException", 400));
    faults.inject_nth("ListShards", 5, Fault::error("ResourceInUseException", 400));
    let connection = faults.install(Emulator::Kinesalite.connection_builder()?).build()?;
    let source = source_builder(connection, &stream, Duration::from_secs(3)).build()?;
    let stats = source.stats_handle();
    let dir = tempfile::tempdir()?;
    let result = run_counting_job(source, dir.path(), &JobSpec::default())?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    assert_eq!(faults.injected("ListShards"), 3, "every fault was injected");
    assert_eq!(result.restarts, 0, "a busy stream or an expired token does not fail the task");
    assert_eq!(stats().listings_kept, 3);
    Ok(())
}
