//! Kinesis sink throughput against kinesalite: the sink at parallelism 1 and 2 versus a plain
//! aws-sdk PutRecords loop with the same batch size (500), record size and number of
//! concurrent requests. Each measurement runs in its own child process so its peak RSS is its own.
//!
//! ```text
//! eval "$(scripts/emulators.sh env)"
//! cargo bench --bench kinesis_sink -- [--records N] [--record-bytes B] [--concurrency C] [--shards S]
//!     [--plain-workers W] [--repeat R]
//! ```
//!
//! Prints one line per run (`mode=... records=N elapsed_ms=T records_per_sec=X peak_rss_kib=K`)
//! and a summary with the best rate of each mode and the sink/plain ratios.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use aws_sdk_kinesis::Client;
use clap::Parser;
use rill::prelude::*;
use rill_kinesis_common::KinesisConnection;
use rill_kinesis_sink::{KinesisSink, Partitioner};

const BATCH: usize = 500;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 50_000)]
    records: u64,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Concurrent PutRecords requests in all (split evenly over the sink's subtasks).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Shards of each target stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Tokio worker threads of the plain loop (the sink at p=1 uses its subtask thread plus one worker).
    #[arg(long, default_value_t = 2)]
    plain_workers: usize,
    /// Runs per mode (interleaved); the summary takes the best.
    #[arg(long, default_value_t = 2)]
    repeat: usize,
    /// Kinesis endpoint (default: $RILL_KINESALITE_ENDPOINT).
    #[arg(long)]
    endpoint: Option<String>,
    /// Internal: run one measurement in this process (plain, sink-p1, sink-p2).
    #[arg(long, hide = true)]
    mode: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn endpoint(args: &Args) -> anyhow::Result<String> {
    match &args.endpoint {
        Some(e) => Ok(e.clone()),
        None => std::env::var("RILL_KINESALITE_ENDPOINT").context(
            "RILL_KINESALITE_ENDPOINT is not set: start the emulators with `scripts/emulators.sh start all` and \
             `eval \"$(scripts/emulators.sh env)\"`, or pass --endpoint",
        ),
    }
}

fn connection(endpoint: &str) -> anyhow::Result<KinesisConnection> {
    Ok(KinesisConnection::builder()
        .region("us-east-1")
        .endpoint(endpoint)
        .static_credentials("rill-bench", "rill-bench-secret")
        .build()?)
}

/// The data of record `n`: its number, padded to `size` bytes.
fn record_data(n: u64, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size);
    let _ = write!(data, "{n}:");
    data.resize(size, b'x');
    data
}

fn record_key(n: u64) -> String {
    (n % 1000).to_string()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn create_stream(client: &Client, name: &str, shards: i32) -> anyhow::Result<()> {
    client.create_stream().stream_name(name).shard_count(shards).send().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = client.describe_stream_summary().stream_name(name).send().await?;
        if out.stream_description_summary().map(|s| s.stream_status()) == Some(&StreamStatus::Active) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("stream {name} did not become ACTIVE");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The baseline: `concurrency` tasks, each sending 500-record PutRecords batches in a loop and
/// re-sending failed entries.
async fn plain_loop(client: Client, stream: String, args: Args) -> anyhow::Result<u64> {
    let next_batch = Arc::new(AtomicU64::new(0));
    let batches = args.records.div_ceil(BATCH as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, stream, next_batch, args) = (client.clone(), stream.clone(), next_batch.clone(), args.clone());
        tasks.spawn(async move {
            let mut sent = 0u64;
            loop {
                let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return Ok::<u64, anyhow::Error>(sent);
                }
                let first = batch * BATCH as u64;
                let last = (first + BATCH as u64).min(args.records);
                let mut entries: Vec<PutRecordsRequestEntry> = (first..last)
                    .map(|n| {
                        PutRecordsRequestEntry::builder()
                            .data(Blob::new(record_data(n, args.record_bytes)))
                            .partition_key(record_key(n))
                            .build()
                    })
                    .collect::<Result<_, _>>()?;
                while !entries.is_empty() {
                    let out =
                        client.put_records().stream_name(&stream).set_records(Some(entries.clone())).send().await?;
                    let failed: Vec<PutRecordsRequestEntry> = entries
                        .into_iter()
                        .zip(out.records())
                        .filter(|(_, r)| r.error_code().is_some())
                        .map(|(e, _)| e)
                        .collect();
                    sent += out.records().len() as u64 - failed.len() as u64;
                    entries = failed;
                }
            }
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok(total)
}

/// One measurement in this process.
fn run_mode(args: &Args, mode: &str) -> anyhow::Result<()> {
    let endpoint = endpoint(args)?;
    let connection = connection(&endpoint)?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let stream = format!("bench-{mode}-{}-{nanos}", std::process::id());
    let workers = if mode == "plain" { args.plain_workers.max(1) } else { 1 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    let client = runtime.block_on(connection.client())?;
    runtime.block_on(create_stream(&client, &stream, args.shards))?;

    let (records, elapsed) = match mode {
        "plain" => {
            let started = Instant::now();
            let sent = runtime.block_on(plain_loop(client.clone(), stream.clone(), args.clone()))?;
            (sent, started.elapsed())
        }
        "sink-p1" | "sink-p2" => {
            let parallelism = if mode == "sink-p1" { 1 } else { 2 };
            let size = args.record_bytes;
            let sink = KinesisSink::<u64>::builder()
                .connection(connection.clone())
                .stream(&stream)
                .serializer(move |n| record_data(n, size))
                .partitioner(Partitioner::from_record(|n: &u64| record_key(*n)))
                .max_batch_records(BATCH)
                .max_in_flight_requests((args.concurrency / parallelism).max(1))
                .build()?;
            let stats = sink.stats();
            let dir = tempfile::tempdir()?;
            let env = StreamEnv::builder()
                .parallelism(parallelism)
                .checkpoint_interval(Duration::from_secs(1))
                .checkpoint_dir(dir.path())
                .build()?;
            env.source("numbers", GeneratorSource::new(0..args.records)).sink_to(sink);
            let started = Instant::now();
            env.execute("kinesis-sink-bench")?;
            let elapsed = started.elapsed();
            (stats.snapshot().records_sent, elapsed)
        }
        other => bail!("unknown mode {other}"),
    };
    if records != args.records {
        bail!("{mode}: sent {records} records, expected {}", args.records);
    }
    runtime.block_on(async { client.delete_stream().stream_name(&stream).send().await })?;
    println!(
        "mode={mode} records={records} record_bytes={} concurrency={} elapsed_ms={} records_per_sec={:.0} peak_rss_kib={}",
        args.record_bytes,
        args.concurrency,
        elapsed.as_millis(),
        records as f64 / elapsed.as_secs_f64().max(1e-9),
        peak_rss_kib(),
    );
    Ok(())
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(mode) = &args.mode {
        return run_mode(&args, mode);
    }
    let endpoint = endpoint(&args)?;
    let exe = std::env::current_exe()?;
    let modes = ["plain", "sink-p1", "sink-p2"];
    let mut best: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for _ in 0..args.repeat {
        for mode in modes {
            let out = Command::new(&exe)
                .args(["--mode", mode, "--endpoint", &endpoint])
                .args(["--records", &args.records.to_string()])
                .args(["--record-bytes", &args.record_bytes.to_string()])
                .args(["--concurrency", &args.concurrency.to_string()])
                .args(["--shards", &args.shards.to_string()])
                .args(["--plain-workers", &args.plain_workers.to_string()])
                .output()?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!("{mode} failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
            }
            let line = stdout.lines().last().unwrap_or_default().to_string();
            println!("{line}");
            let rate: f64 = field(&line, "records_per_sec").and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let rss: u64 = field(&line, "peak_rss_kib").and_then(|v| v.parse().ok()).unwrap_or(0);
            let entry = best.entry(mode).or_insert((0.0, 0));
            entry.0 = entry.0.max(rate);
            entry.1 = entry.1.max(rss);
        }
    }
    let plain = best.get("plain").map_or(0.0, |b| b.0);
    println!("summary (best of {} runs; peak RSS is the largest seen):", args.repeat);
    for mode in modes {
        if let Some((rate, rss)) = best.get(mode) {
            let ratio = if plain > 0.0 { rate / plain } else { 0.0 };
            println!(
                "  {mode:<8} {rate:>9.0} records/s  {ratio:>5.2}x plain  peak RSS {:.1} MiB",
                *rss as f64 / 1024.0
            );
        }
    }
    Ok(())
}
