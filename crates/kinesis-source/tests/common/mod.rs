//! Shared helpers of the integration tests: emulator streams, a counting job with the
//! exactly-once file sink, and checks of its committed output.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_kinesis::Client;
use rill_kinesis_common::test_utils::{create_stream, put_records, unique_stream_name, Emulator};
use rill_kinesis_common::KinesisConnection;
use rill_kinesis_source::{DeserializeError, InitialPosition, KinesisRecord, KinesisSource, KinesisSourceBuilder};
use rill_operators::{FileSink, KeyedContext, KeyedProcessFunction, KeyedStreamExt, StreamExt};
use rill_runtime::{Collector, JobResult, RestartStrategy, StreamEnv};
use rill_state::ValueState;

/// A record of the tests: `key:index`, index counting from 0 per key in write order.
pub(crate) type Rec = (String, u64);

/// A tokio runtime for the test's own Kinesis calls.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime")
}

/// Parses `key:index`.
pub(crate) fn parse(record: &KinesisRecord<'_>) -> Result<Rec, DeserializeError> {
    let text = std::str::from_utf8(record.data).map_err(DeserializeError::new)?;
    let (key, index) = text.rsplit_once(':').ok_or_else(|| DeserializeError::new(format!("no ':' in '{text}'")))?;
    let index = index.parse().map_err(|e| DeserializeError::new(format!("bad index in '{text}': {e}")))?;
    Ok((key.to_string(), index))
}

/// Writes records and remembers how many each key has, so that indexes continue across calls.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    pub counts: BTreeMap<String, u64>,
}

impl Writer {
    /// `n` records spread over `keys` keys (`k0`, `k1`, ...), partition key = key.
    pub(crate) fn batch(&mut self, keys: usize, n: usize) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let key = format!("k{}", i % keys);
                let index = self.counts.entry(key.clone()).or_default();
                let data = format!("{key}:{index}").into_bytes();
                *index += 1;
                (key, data)
            })
            .collect()
    }
}

/// A client and a fresh stream of `shards` shards.
pub(crate) async fn new_stream(emulator: Emulator, prefix: &str, shards: i32) -> anyhow::Result<(Client, String)> {
    let client = emulator.client().await.with_context(|| format!("client for {}", emulator.name()))?;
    let stream = unique_stream_name(prefix);
    create_stream(&client, &stream, shards).await.with_context(|| format!("create {stream} on {}", emulator.name()))?;
    Ok((client, stream))
}

/// Puts records, with context on failure.
pub(crate) async fn put(client: &Client, stream: &str, records: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    put_records(client, stream, records).await.with_context(|| format!("put {} records to {stream}", records.len()))
}

/// A source builder for tests: TRIM_HORIZON, quick polling and discovery, stops when idle.
pub(crate) fn source_builder(connection: KinesisConnection, stream: &str, idle: Duration) -> KinesisSourceBuilder<Rec> {
    KinesisSource::builder(parse)
        .connection(connection)
        .stream(stream)
        .initial_position(InitialPosition::TrimHorizon)
        .get_records_interval(Duration::from_millis(50))
        .get_records_empty_interval(Duration::from_millis(100))
        .discovery_interval(Duration::from_millis(300))
        .stop_when_idle(idle)
}

/// Counts per key in keyed state and emits `key \t count \t index`.
struct CountAndCheck {
    count: ValueState<String, u64>,
}

impl KeyedProcessFunction<String, Rec, String> for CountAndCheck {
    fn process(
        &mut self,
        rec: Rec,
        ctx: &mut KeyedContext<'_, String>,
        out: &mut Collector<String>,
    ) -> rill_runtime::OperatorResult {
        let mut n = 0;
        self.count.update(ctx.state(), |c| {
            n = c.unwrap_or(0) + 1;
            Some(n)
        })?;
        out.emit(format!("{}\t{n}\t{}", rec.0, rec.1));
        Ok(())
    }
}

/// Job settings of a test run.
#[derive(Debug, Clone)]
pub(crate) struct JobSpec {
    pub parallelism: usize,
    pub checkpoint_interval: Duration,
    pub restarts: RestartStrategy,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            parallelism: 2,
            checkpoint_interval: Duration::from_millis(200),
            restarts: RestartStrategy::fixed_delay(5, Duration::from_millis(100)),
        }
    }
}

/// Runs source → key_by(key) → count → exactly-once file sink in `dir/output`, checkpoints in
/// `dir/checkpoints` (resuming from them if present).
pub(crate) fn run_counting_job(
    source: KinesisSource<Rec>,
    dir: &Path,
    spec: &JobSpec,
) -> rill_runtime::Result<JobResult> {
    let env = StreamEnv::builder()
        .parallelism(spec.parallelism)
        .checkpoint_interval(spec.checkpoint_interval)
        .checkpoint_dir(dir.join("checkpoints"))
        .restart_strategy(spec.restarts)
        .build()?;
    env.source("kinesis", source)
        .key_by(|r: &Rec| r.0.clone())
        .process(|state| Ok(CountAndCheck { count: state.value("count")? }))
        .sink_to(FileSink::exactly_once(dir.join("output")));
    env.execute("kinesis-source-test")
}

/// Committed output lines, in commit order (file names start with the epoch).
pub(crate) fn committed_lines(output: &Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(output)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        lines.extend(std::fs::read_to_string(&f)?.lines().map(str::to_string));
    }
    Ok(lines)
}

/// Checks that every key's records were counted exactly once and in write order: the lines of
/// key `k` are exactly `k \t i+1 \t i` for `i` in `0..expected[k]`, in that order.
pub(crate) fn assert_exactly_once_in_order(dir: &Path, expected: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    let lines = committed_lines(&dir.join("output"))?;
    let mut per_key: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for line in &lines {
        let mut parts = line.split('\t');
        let (Some(k), Some(c), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("malformed output line '{line}'");
        };
        per_key.entry(k.to_string()).or_default().push((c.parse()?, i.parse()?));
    }
    let total: u64 = expected.values().sum();
    anyhow::ensure!(
        lines.len() as u64 == total,
        "expected {total} output lines, found {} (keys found {:?})",
        lines.len(),
        per_key.iter().map(|(k, v)| (k.clone(), v.len())).collect::<Vec<_>>()
    );
    for (key, n) in expected {
        let got = per_key.get(key).cloned().unwrap_or_default();
        let want: Vec<(u64, u64)> = (0..*n).map(|i| (i + 1, i)).collect();
        if got != want {
            let first_bad = got.iter().zip(&want).position(|(g, w)| g != w);
            anyhow::bail!(
                "key {key}: expected {} records counted once in order, got {} (first difference at {:?}: got {:?})",
                n,
                got.len(),
                first_bad,
                first_bad.map(|i| got[i])
            );
        }
    }
    Ok(())
}

/// Open shards of a stream as (id, first hash key, last hash key), by hash key.
pub(crate) async fn open_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> anyhow::Result<Vec<(String, u128, u128)>> {
    let out = client.describe_stream().stream_name(stream).send().await?;
    let mut open = Vec::new();
    for s in out.stream_description().map(|d| d.shards()).unwrap_or_default() {
        let closed = s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some();
        if !closed {
            let r = s.hash_key_range().context("hash range")?;
            open.push((s.shard_id().to_string(), r.starting_hash_key().parse()?, r.ending_hash_key().parse()?));
        }
    }
    open.sort_by_key(|s| s.1);
    Ok(open)
}

/// Splits the widest open shard in the middle and waits for ACTIVE.
pub(crate) async fn split_widest(client: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<()> {
    let open = open_shards(client, stream).await?;
    let (id, start, end) = open.into_iter().max_by_key(|s| s.2 - s.1).context("no open shard")?;
    let mid = start + (end - start) / 2;
    client.split_shard().stream_name(stream).shard_to_split(id).new_starting_hash_key(mid.to_string()).send().await?;
    rill_kinesis_common::test_utils::wait_until_active(client, stream, Duration::from_secs(30)).await?;
    Ok(())
}

/// Merges the two lowest adjacent open shards and waits for ACTIVE.
pub(crate) async fn merge_adjacent(client: &aws_sdk_kinesis::Client, stream: &str) -> anyhow::Result<()> {
    let open = open_shards(client, stream).await?;
    anyhow::ensure!(open.len() >= 2, "need two open shards to merge");
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(&open[0].0)
        .adjacent_shard_to_merge(&open[1].0)
        .send()
        .await?;
    rill_kinesis_common::test_utils::wait_until_active(client, stream, Duration::from_secs(30)).await?;
    Ok(())
}

/// What the background writer does, in order.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Put this many records (12 keys).
    Put(usize),
    /// Split the widest open shard.
    Split,
    /// Merge two adjacent open shards.
    Merge,
    /// UpdateShardCount to this many shards (kinesis-local only).
    UpdateShardCount(i32),
    /// Wait.
    Sleep(u64),
}

/// Runs `steps` on a thread of its own while a job reads; returns what was written.
pub(crate) fn spawn_writer(
    emulator: Emulator,
    stream: String,
    mut writer: Writer,
    steps: Vec<Step>,
) -> std::thread::JoinHandle<anyhow::Result<Writer>> {
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async {
            let client = emulator.client().await?;
            for step in steps {
                match step {
                    Step::Put(n) => put(&client, &stream, &writer.batch(12, n)).await?,
                    Step::Split => split_widest(&client, &stream).await?,
                    Step::Merge => merge_adjacent(&client, &stream).await?,
                    Step::UpdateShardCount(n) => {
                        client
                            .update_shard_count()
                            .stream_name(&stream)
                            .target_shard_count(n)
                            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
                            .send()
                            .await?;
                        rill_kinesis_common::test_utils::wait_until_active(&client, &stream, Duration::from_secs(60))
                            .await?;
                    }
                    Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
            }
            Ok(writer)
        })
    })
}
