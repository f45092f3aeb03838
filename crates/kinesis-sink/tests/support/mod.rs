//! Shared helpers of the sink's integration tests: streams on an emulator, a job that writes a
//! numbered sequence through the sink, and checks on what the stream holds.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use rill_kinesis_common::test_utils::{
    create_stream, read_all, unique_stream_name, Emulator, FaultInjector, StoredRecord,
};
use rill_kinesis_common::KinesisConnection;
use rill_kinesis_sink::{KinesisSink, KinesisSinkBuilder, Partitioner};
use rill_operators::{GeneratorSource, StreamExt};
use rill_runtime::{JobResult, RestartStrategy, RuntimeError, StreamEnv};

/// Runs a future on a fresh single-thread runtime (test setup and checks).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a test runtime").block_on(future)
}

/// A new stream with `shards` shards on `emulator`; returns its name.
pub(crate) fn new_stream(emulator: Emulator, prefix: &str, shards: i32) -> anyhow::Result<String> {
    let name = unique_stream_name(prefix);
    block_on(async {
        let client = emulator.client().await?;
        create_stream(&client, &name, shards).await
    })?;
    Ok(name)
}

/// Every record of `stream`.
pub(crate) fn stored(emulator: Emulator, stream: &str) -> anyhow::Result<Vec<StoredRecord>> {
    Ok(block_on(async {
        let client = emulator.client().await?;
        read_all(&client, stream).await
    })?)
}

/// The data of record `n` of the test sequence.
pub(crate) fn payload(n: u64) -> Vec<u8> {
    format!("record-{n}").into_bytes()
}

/// The partition key of record `n` of the test sequence.
pub(crate) fn key_of(n: u64) -> String {
    format!("key-{}", n % 13)
}

/// A sink builder for the test sequence: data `record-N`, partition key `key-(N % 13)`.
pub(crate) fn sequence_sink(connection: KinesisConnection, stream: &str) -> KinesisSinkBuilder<u64> {
    KinesisSink::<u64>::builder()
        .connection(connection)
        .stream(stream)
        .serializer(payload)
        .partitioner(Partitioner::from_record(|n: &u64| key_of(*n)))
        .linger(Duration::from_millis(20))
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
}

/// The emulator's connection with `faults` installed around its HTTP client.
pub(crate) fn faulty_connection(emulator: Emulator, faults: &FaultInjector) -> anyhow::Result<KinesisConnection> {
    Ok(faults.install(emulator.connection_builder()?).build()?)
}

/// Runs `GeneratorSource(0..records)` into `sink` at `parallelism`, checkpointing every 200 ms,
/// without restarts (a task failure fails the job).
pub(crate) fn run_sequence(
    records: u64,
    parallelism: usize,
    sink: KinesisSink<u64>,
) -> Result<JobResult, RuntimeError> {
    let dir = tempfile::tempdir().map_err(|e| RuntimeError::Internal(format!("temporary directory: {e}")))?;
    let env = StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(200))
        .checkpoint_dir(dir.path())
        .restart_strategy(RestartStrategy::none())
        .build()?;
    env.source("numbers", GeneratorSource::new(0..records).splits(16)).sink_to(sink);
    env.execute("kinesis-sink-test")
}

/// How many times each number of the sequence is stored, checking data and partition key.
pub(crate) fn counts(records: &[StoredRecord]) -> anyhow::Result<BTreeMap<u64, usize>> {
    let mut counts = BTreeMap::new();
    for r in records {
        let text = String::from_utf8(r.data.clone())?;
        let n: u64 =
            text.strip_prefix("record-").ok_or_else(|| anyhow::anyhow!("unexpected data {text:?}"))?.parse()?;
        anyhow::ensure!(r.partition_key == key_of(n), "record {n} has partition key {}", r.partition_key);
        *counts.entry(n).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Fails unless every number in `0..records` is stored exactly once and nothing else is.
pub(crate) fn assert_exactly_once(emulator: Emulator, stream: &str, records: u64) -> anyhow::Result<()> {
    let counts = counts(&stored(emulator, stream)?)?;
    let missing: Vec<u64> = (0..records).filter(|n| !counts.contains_key(n)).take(10).collect();
    let repeated: Vec<(u64, usize)> = counts.iter().filter(|(_, c)| **c > 1).map(|(n, c)| (*n, *c)).take(10).collect();
    let extra: Vec<u64> = counts.keys().filter(|n| **n >= records).copied().take(10).collect();
    anyhow::ensure!(
        missing.is_empty() && repeated.is_empty() && extra.is_empty() && counts.len() as u64 == records,
        "{}: stream {stream}: {} distinct of {records}; missing (first 10) {missing:?}; repeated {repeated:?}; unexpected {extra:?}",
        emulator.name(),
        counts.len()
    );
    Ok(())
}
