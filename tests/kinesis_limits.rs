//! Acceptance (issue 10): the Kinesis connectors ride out real AWS limits. Both examples run
//! against the `kinesis-limits` proxy in front of kinesalite, with the per-shard limits scaled
//! down so that each run takes a minute or more:
//!
//! - `kinesis_count` backfills a 4-shard stream while a second, plain consumer reads the same
//!   stream (the read budget of each shard is shared, as in AWS): the output is exactly once and
//!   the job has no task failure, although the proxy throttled reads.
//! - `kinesis_pipe` copies a stream into one whose write limit is far below what the source
//!   delivers: every record arrives exactly once, without task failures; with `--ordering`, each
//!   partition key's records arrive in the order they were written although writes were
//!   throttled.
//!
//! Needs kinesalite (`scripts/emulators.sh start all`, `eval "$(scripts/emulators.sh env)"`);
//! a missing `RILL_KINESALITE_ENDPOINT` fails the test. The example binaries are built by
//! `cargo test --release`.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use rill_kinesis_common::test_utils::{create_stream, put_records, read_all, unique_stream_name, Emulator};
use rill_kinesis_limits::{Limits, LimitsProxy, Stats};

/// One record: partition key and about 100 bytes of data naming key and index.
fn record(i: usize, keys: usize) -> (String, Vec<u8>) {
    let key = format!("k{}", i % keys);
    let mut data = format!("{key}:{i}:").into_bytes();
    data.resize(100, b'.');
    (key, data)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A client talking to `endpoint` without SDK retries (the plain consumer handles throttling).
async fn client(endpoint: &str) -> anyhow::Result<Client> {
    let connection = Emulator::Kinesalite.connection_builder()?.endpoint(endpoint).build()?.with_max_attempts(1);
    Ok(connection.client().await?)
}

/// Runs an example to completion, keeping its output in `dir/NAME.{out,err}`; returns its last
/// line (the summary).
fn run_example(name: &str, args: &[String], dir: &Path, timeout: Duration) -> anyhow::Result<String> {
    let out = File::create(dir.join(format!("{name}.out")))?;
    let err = File::create(dir.join(format!("{name}.err")))?;
    let mut child = Command::new(support::example(name))
        .args(args)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            anyhow::bail!("{name} did not finish within {timeout:?}; its output is in {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(dir.join(format!("{name}.out")))?;
    let stderr = std::fs::read_to_string(dir.join(format!("{name}.err")))?;
    anyhow::ensure!(status.success(), "{name} failed ({status}); stderr tail:\n{}", tail(&stderr));
    Ok(stdout.lines().last().unwrap_or_default().to_string())
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn field<'a>(summary: &'a str, name: &str) -> &'a str {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in '{summary}'"))
}

/// Reads every shard of `stream` from TRIM_HORIZON through `endpoint` as fast as throttling
/// lets it, retrying throttled calls after a short pause, until `expected` records were read.
async fn plain_consumer(endpoint: String, stream: String, expected: usize) -> anyhow::Result<usize> {
    let client = client(&endpoint).await?;
    let shards = rill_kinesis_common::test_utils::list_shard_ids(&client, &stream).await?;
    let mut tasks = Vec::new();
    for shard in shards {
        let (client, stream) = (client.clone(), stream.clone());
        tasks.push(tokio::spawn(async move {
            let mut iterator = loop {
                match client
                    .get_shard_iterator()
                    .stream_name(&stream)
                    .shard_id(&shard)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                {
                    Ok(out) => break out.shard_iterator().map(str::to_string),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let mut read = 0usize;
            let mut empty = 0;
            while let Some(it) = iterator.clone() {
                match client.get_records().shard_iterator(&it).send().await {
                    Ok(out) => {
                        read += out.records().len();
                        empty = if out.records().is_empty() { empty + 1 } else { 0 };
                        if empty >= 3 {
                            break;
                        }
                        iterator = out.next_shard_iterator().map(str::to_string);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            read
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    anyhow::ensure!(total == expected, "the plain consumer read {total} records, expected {expected}");
    Ok(total)
}

#[test]
fn a_backfill_under_shared_read_limits_finishes_exactly_once_without_a_task_failure() -> anyhow::Result<()> {
    const RECORDS: usize = 60_000;
    const KEYS: usize = 40;
    const READ_BYTES_PER_SHARD: u64 = 40 * 1024;
    let upstream = Emulator::Kinesalite.endpoint()?;
    let rt = runtime();
    let stream = unique_stream_name("limits-backfill");
    let records: Vec<(String, Vec<u8>)> = (0..RECORDS).map(|i| record(i, KEYS)).collect();
    rt.block_on(async {
        let direct = client(&upstream).await?;
        create_stream(&direct, &stream, 4).await?;
        put_records(&direct, &stream, &records).await?;
        anyhow::Ok(())
    })?;
    let limits = Limits { read_bytes_per_shard: READ_BYTES_PER_SHARD, ..Limits::default() };
    let proxy = rt.block_on(LimitsProxy::start("127.0.0.1:0".parse()?, &upstream, limits))?;
    let endpoint = proxy.endpoint();

    let plain = rt.spawn(plain_consumer(endpoint.clone(), stream.clone(), RECORDS));
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let args: Vec<String> = [
        "--endpoint",
        &endpoint,
        "--region",
        "us-east-1",
        "--stream",
        &stream,
        "--parallelism",
        "2",
        "--dir",
        &dir.path().to_string_lossy(),
        "--checkpoint-interval-ms",
        "1000",
        "--initial-position",
        "TRIM_HORIZON",
        "--idle-exit-ms",
        "5000",
        "--read-bytes-per-shard",
        &READ_BYTES_PER_SHARD.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let summary = run_example("kinesis_count", &args, dir.path(), Duration::from_secs(900))?;
    let elapsed = started.elapsed();
    rt.block_on(plain)??;
    let stats = proxy.stats();
    eprintln!("kinesis_count: {summary}\nin {elapsed:?}; proxy: {stats:?}");

    assert_eq!(field(&summary, "restarts"), "0", "throttling must not fail a task: {summary}");
    assert_eq!(field(&summary, "records"), RECORDS.to_string(), "{summary}");
    assert!(stats.get_records_throttled > 0, "the limits were never reached, so the test proves nothing: {stats:?}");
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (key, _) in &records {
        *expected.entry(key.clone()).or_default() += 1;
    }
    support::assert_counts_exactly_once_by_name(&dir.path().join("output"), &expected);
    Ok(())
}

/// Copies IN to OUT with `kinesis_pipe` through the proxy; returns the summary line and proxy
/// stats. IN is written directly to the emulator.
fn pipe_through_limits(
    records: &[(String, Vec<u8>)],
    write_records_per_shard: u32,
    ordering: bool,
) -> anyhow::Result<(String, Stats, Vec<rill_kinesis_common::test_utils::StoredRecord>)> {
    let upstream = Emulator::Kinesalite.endpoint()?;
    let rt = runtime();
    let (source, sink) = (unique_stream_name("limits-in"), unique_stream_name("limits-out"));
    rt.block_on(async {
        let direct = client(&upstream).await?;
        create_stream(&direct, &source, 2).await?;
        create_stream(&direct, &sink, 2).await?;
        put_records(&direct, &source, records).await?;
        anyhow::Ok(())
    })?;
    let limits = Limits { write_records_per_shard, ..Limits::default() };
    let proxy = rt.block_on(LimitsProxy::start("127.0.0.1:0".parse()?, &upstream, limits))?;
    let endpoint = proxy.endpoint();
    let dir = tempfile::tempdir()?;
    let mut args: Vec<String> = [
        "--endpoint",
        &endpoint,
        "--region",
        "us-east-1",
        "--source-stream",
        &source,
        "--sink-stream",
        &sink,
        "--parallelism",
        "2",
        "--dir",
        &dir.path().to_string_lossy(),
        "--checkpoint-interval-ms",
        "1000",
        "--idle-exit-ms",
        "3000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if ordering {
        args.push("--ordering".into());
    }
    let summary = run_example("kinesis_pipe", &args, dir.path(), Duration::from_secs(900))?;
    let stored = rt.block_on(async { anyhow::Ok(read_all(&client(&upstream).await?, &sink).await?) })?;
    Ok((summary, proxy.stats(), stored))
}

#[test]
fn a_sink_writing_far_above_the_write_limit_loses_nothing_and_never_fails() -> anyhow::Result<()> {
    // 12,000 records into 2 shards at 100 records/s each: at least a minute of writing, while
    // the source delivers far more than three times that.
    const RECORDS: usize = 12_000;
    let records: Vec<(String, Vec<u8>)> = (0..RECORDS).map(|i| record(i, 40)).collect();
    let started = Instant::now();
    let (summary, stats, stored) = pipe_through_limits(&records, 100, false)?;
    eprintln!("kinesis_pipe: {summary}\nin {:?}; proxy: {stats:?}", started.elapsed());
    assert_eq!(field(&summary, "restarts"), "0", "throttling must not fail a task: {summary}");
    assert!(stats.put_entries_throttled > 0, "the write limit was never reached: {stats:?}");
    let mut want: Vec<(String, Vec<u8>)> = records;
    let mut got: Vec<(String, Vec<u8>)> = stored.into_iter().map(|r| (r.partition_key, r.data)).collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "OUT holds {} records, IN {}", got.len(), want.len());
    assert!(got == want, "OUT differs from IN");
    Ok(())
}

#[test]
fn in_ordering_mode_each_keys_records_arrive_in_write_order_although_writes_were_throttled() -> anyhow::Result<()> {
    const RECORDS: usize = 3_000;
    let records: Vec<(String, Vec<u8>)> = (0..RECORDS).map(|i| record(i, 40)).collect();
    let (summary, stats, stored) = pipe_through_limits(&records, 100, true)?;
    eprintln!("kinesis_pipe --ordering: {summary}; proxy: {stats:?}");
    assert_eq!(field(&summary, "restarts"), "0", "{summary}");
    assert!(stats.put_entries_throttled > 0, "the write limit was never reached: {stats:?}");
    assert_eq!(stored.len(), RECORDS);
    let mut last: HashMap<String, usize> = HashMap::new();
    for r in &stored {
        let text = String::from_utf8_lossy(&r.data);
        let index: usize = text.split(':').nth(1).and_then(|i| i.parse().ok()).expect("record index");
        if let Some(prev) = last.insert(r.partition_key.clone(), index) {
            assert!(prev < index, "key {}: record {index} stored after record {prev}", r.partition_key);
        }
    }
    Ok(())
}
