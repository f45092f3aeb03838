//! Rate control per shard, against the `kinesis-limits` proxy: a hot shard throttled at its
//! write limit slows down only itself; the subtask's own in-flight limit (which governs every
//! shard) is never lowered for it.

mod support;

use std::time::Duration;

use rill_kinesis_common::test_utils::Emulator;
use rill_kinesis_limits::{Limits, LimitsProxy};
use rill_kinesis_sink::{KinesisSink, Partitioner};
use support::{assert_exactly_once, key_of, new_stream, payload, run_sequence};

#[test]
fn a_throttled_hot_shard_does_not_slow_the_subtask_down_for_the_other_shards() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-hot-shard", 2)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let limits = Limits { write_records_per_shard: 100, ..Limits::default() };
    let proxy = rt.block_on(LimitsProxy::start("127.0.0.1:0".parse()?, &emulator.endpoint()?, limits))?;
    let connection = emulator.connection_builder()?.endpoint(proxy.endpoint()).build()?;
    // Nine records of ten go to the lower shard (hot), one to the upper one.
    let sink = KinesisSink::<u64>::builder()
        .connection(connection)
        .stream(&stream)
        .serializer(payload)
        .partitioner(Partitioner::from_record(|n: &u64| key_of(*n)).with_explicit_hash_key(|n: &u64| {
            if n.is_multiple_of(10) {
                u128::MAX
            } else {
                0
            }
        }))
        .linger(Duration::from_millis(20))
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
        .build()?;
    let stats = sink.stats();
    run_sequence(800, 1, sink)?;
    assert_exactly_once(emulator, &stream, 800)?;
    let (sink, proxy) = (stats.snapshot(), proxy.stats());
    assert!(proxy.put_entries_throttled > 0, "the hot shard was never throttled: {proxy:?}");
    assert_eq!(sink.throttles, proxy.put_entries_throttled);
    assert_eq!(sink.rate_decreases, 0, "throttling of one shard lowered the subtask's limit for every shard: {sink:?}");
    Ok(())
}
