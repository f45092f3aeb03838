//! Delivery without failures, against both emulators: every record exactly once, with its
//! partition key, in its selected stream; barriers flush partial batches.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rill_kinesis_common::test_utils::Emulator;
use rill_kinesis_sink::{KinesisSink, KinesisSinkBuilder, Partitioner};
use support::{assert_exactly_once, new_stream, payload, run_sequence, sequence_sink, stored};

fn every_record_is_written_exactly_once_without_failures(emulator: Emulator, records: u64) -> anyhow::Result<()> {
    let stream = new_stream(emulator, "sink-exactly-once", 4)?;
    let sink = sequence_sink(emulator.connection()?, &stream).max_batch_records(100).build()?;
    let stats = sink.stats();
    let result = run_sequence(records, 2, sink)?;
    assert!(result.checkpoints >= 1);
    assert_exactly_once(emulator, &stream, records)?;
    let s = stats.snapshot();
    assert_eq!(s.records_sent, records);
    assert_eq!((s.retried_records, s.dropped), (0, 0));
    Ok(())
}

#[test]
fn every_record_is_written_exactly_once_without_failures_on_kinesalite() -> anyhow::Result<()> {
    every_record_is_written_exactly_once_without_failures(Emulator::Kinesalite, 5_000)
}

#[test]
fn every_record_is_written_exactly_once_without_failures_on_kinesis_local() -> anyhow::Result<()> {
    every_record_is_written_exactly_once_without_failures(Emulator::KinesisLocal, 300)
}

#[test]
fn a_barrier_flushes_a_partial_batch_without_waiting_for_the_linger_time() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-barrier-flush", 1)?;
    let sink = sequence_sink(emulator.connection()?, &stream).linger(Duration::from_secs(600)).build()?;
    let started = Instant::now();
    run_sequence(50, 1, sink)?;
    assert!(started.elapsed() < Duration::from_secs(30), "the job waited for the linger time");
    assert_exactly_once(emulator, &stream, 50)
}

#[test]
fn records_go_to_the_stream_their_selector_picks_and_otherwise_to_the_default() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let default_stream = new_stream(emulator, "sink-default", 1)?;
    let odd_stream = new_stream(emulator, "sink-odd", 1)?;
    let odd = odd_stream.clone();
    let sink = sequence_sink(emulator.connection()?, &default_stream)
        .stream_selector(move |n: &u64| (n % 2 == 1).then(|| odd.clone()))
        .build()?;
    run_sequence(400, 2, sink)?;
    let numbers = |stream: &str| -> anyhow::Result<Vec<u64>> {
        let mut v: Vec<u64> = support::counts(&stored(emulator, stream)?)?.into_keys().collect();
        v.sort();
        Ok(v)
    };
    assert_eq!(numbers(&default_stream)?, (0..400).filter(|n| n % 2 == 0).collect::<Vec<_>>());
    assert_eq!(numbers(&odd_stream)?, (0..400).filter(|n| n % 2 == 1).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn the_fixed_partitioner_keys_records_by_subtask_index() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-fixed", 2)?;
    let sink = KinesisSink::<u64>::builder()
        .connection(emulator.connection()?)
        .stream(&stream)
        .serializer(payload)
        .partitioner(Partitioner::fixed())
        .build()?;
    run_sequence(200, 2, sink)?;
    let records = stored(emulator, &stream)?;
    assert_eq!(records.len(), 200);
    let mut keys: Vec<&str> = records.iter().map(|r| r.partition_key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys, ["0", "1"]);
    Ok(())
}

#[test]
fn an_explicit_hash_key_picks_the_shard() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-hash-key", 2)?;
    // Two shards split the hash key space in halves: 0 is in the first, u128::MAX in the second.
    let sink = KinesisSink::<u64>::builder()
        .connection(emulator.connection()?)
        .stream(&stream)
        .serializer(payload)
        .partitioner(
            Partitioner::random().with_explicit_hash_key(|n: &u64| if n.is_multiple_of(2) { 0 } else { u128::MAX }),
        )
        .build()?;
    run_sequence(100, 1, sink)?;
    let records = stored(emulator, &stream)?;
    assert_eq!(records.len(), 100);
    let mut shard_of_parity: HashMap<bool, Vec<String>> = HashMap::new();
    for r in &records {
        let n: u64 = String::from_utf8(r.data.clone())?.trim_start_matches("record-").parse()?;
        shard_of_parity.entry(n.is_multiple_of(2)).or_default().push(r.shard_id.clone());
    }
    for shards in shard_of_parity.values_mut() {
        shards.dedup();
        assert_eq!(shards.len(), 1, "records with one explicit hash key landed in several shards: {shards:?}");
    }
    assert_ne!(shard_of_parity[&true], shard_of_parity[&false]);
    Ok(())
}

#[test]
fn a_sink_configured_from_flink_properties_writes_to_its_stream() -> anyhow::Result<()> {
    let emulator = Emulator::KinesisLocal;
    let stream = new_stream(emulator, "sink-properties", 1)?;
    let props: HashMap<String, String> = [
        ("aws.region", "us-east-1"),
        ("aws.endpoint", emulator.endpoint()?.as_str()),
        ("aws.credentials.provider", "BASIC"),
        ("aws.credentials.provider.basic.accesskeyid", "rill-test"),
        ("aws.credentials.provider.basic.secretkey", "rill-test-secret"),
        ("stream", stream.as_str()),
        ("sink.batch.max-size", "50"),
        ("sink.flush-buffer.timeout", "20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sink = KinesisSinkBuilder::<u64>::from_properties(&props)?
        .serializer(payload)
        .partitioner(Partitioner::from_record(|n: &u64| support::key_of(*n)))
        .build()?;
    run_sequence(120, 1, sink)?;
    assert_exactly_once(emulator, &stream, 120)
}
