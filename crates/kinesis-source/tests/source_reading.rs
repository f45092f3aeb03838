//! Reading multi-shard streams exactly once, on both emulators, and resuming after a restore at
//! another parallelism.

mod common;

use std::time::Duration;

use common::*;
use rill_kinesis_common::test_utils::Emulator;

fn reads_every_record_of_a_multi_shard_stream_exactly_once(
    emulator: Emulator,
    shards: i32,
    records: usize,
) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-read", shards))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(12, records)))?;
    let dir = tempfile::tempdir()?;
    // Pages of one shard: ListShards paging with NextToken must find every shard (kinesalite
    // ignores MaxResults and answers with all shards at once).
    let source =
        source_builder(emulator.connection()?, &stream, Duration::from_secs(2)).list_shards_page_size(1).build()?;
    let stats = source.stats_handle();
    let result = run_counting_job(source, dir.path(), &JobSpec::default())?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    assert_eq!(result.restarts, 0);
    assert_eq!(stats().records, records as u64);
    assert_eq!(stats().shards, shards as u64);
    Ok(())
}

#[test]
fn kinesalite_multi_shard_stream_is_read_exactly_once() -> anyhow::Result<()> {
    reads_every_record_of_a_multi_shard_stream_exactly_once(Emulator::Kinesalite, 4, 2000)
}

#[test]
fn kinesis_local_multi_shard_stream_is_read_exactly_once() -> anyhow::Result<()> {
    reads_every_record_of_a_multi_shard_stream_exactly_once(Emulator::KinesisLocal, 3, 300)
}

fn restore_at_another_parallelism_resumes_after_last_emitted_record(
    emulator: Emulator,
    n: usize,
) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-rescale", 4))?;
    let mut writer = Writer::default();
    let dir = tempfile::tempdir()?;
    for (round, parallelism) in [2usize, 3, 1].into_iter().enumerate() {
        rt.block_on(put(&client, &stream, &writer.batch(10, n)))?;
        let source = source_builder(emulator.connection()?, &stream, Duration::from_secs(2)).build()?;
        let spec = JobSpec { parallelism, ..JobSpec::default() };
        let stats = source.stats_handle();
        let result = run_counting_job(source, dir.path(), &spec)?;
        assert_eq!(result.restored_from.is_some(), round > 0, "round {round}");
        assert_eq!(stats().records, n as u64, "round {round} at parallelism {parallelism} reads only the new records");
        assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    }
    Ok(())
}

#[test]
fn kinesalite_restore_at_another_parallelism_resumes_after_last_emitted_record() -> anyhow::Result<()> {
    restore_at_another_parallelism_resumes_after_last_emitted_record(Emulator::Kinesalite, 600)
}

#[test]
fn kinesis_local_restore_at_another_parallelism_resumes_after_last_emitted_record() -> anyhow::Result<()> {
    restore_at_another_parallelism_resumes_after_last_emitted_record(Emulator::KinesisLocal, 100)
}

#[test]
fn two_streams_are_read_by_one_source_exactly_once() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let rt = runtime();
    let (client, first) = rt.block_on(new_stream(emulator, "src-multi-a", 2))?;
    let (_, second) = rt.block_on(new_stream(emulator, "src-multi-b", 3))?;
    // Keys of the two streams differ, so each key's order is that of one stream.
    let mut writer_a = Writer::default();
    let batch_a: Vec<(String, Vec<u8>)> =
        writer_a.batch(5, 300).into_iter().map(|(k, d)| (format!("a{k}"), [b"a".as_slice(), &d].concat())).collect();
    let mut writer_b = Writer::default();
    let batch_b: Vec<(String, Vec<u8>)> =
        writer_b.batch(5, 400).into_iter().map(|(k, d)| (format!("b{k}"), [b"b".as_slice(), &d].concat())).collect();
    rt.block_on(put(&client, &first, &batch_a))?;
    rt.block_on(put(&client, &second, &batch_b))?;
    let dir = tempfile::tempdir()?;
    let source = source_builder(emulator.connection()?, &first, Duration::from_secs(2)).stream(&second).build()?;
    let stats = source.stats_handle();
    run_counting_job(source, dir.path(), &JobSpec { parallelism: 3, ..JobSpec::default() })?;
    let mut expected = std::collections::BTreeMap::new();
    for (k, n) in writer_a.counts {
        expected.insert(format!("a{k}"), n);
    }
    for (k, n) in writer_b.counts {
        expected.insert(format!("b{k}"), n);
    }
    assert_exactly_once_in_order(dir.path(), &expected)?;
    assert_eq!(stats().shards, 5);
    Ok(())
}
