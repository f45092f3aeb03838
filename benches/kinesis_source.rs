//! Kinesis source throughput against kinesalite: the source at parallelism 1 and 2 versus a
//! plain aws-sdk GetRecords loop (one tokio task per shard, no pause between calls) over the same
//! pre-filled stream.
//!
//! ```text
//! scripts/emulators.sh start kinesalite && eval "$(scripts/emulators.sh env)"
//! cargo bench --bench kinesis_source -- [--records N] [--record-bytes B] [--shards S] [--repeat R]
//! ```
//!
//! Prints one line per run (`mode=... records=N elapsed_ms=T records_per_sec=X`) and a summary
//! with the best rate of each mode and the source/plain ratios. A source run is timed from
//! `execute` until its N-th record reached the operator after the source (start-up included).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use clap::Parser;
use rill::prelude::*;
use rill_kinesis_common::KinesisConnection;
use rill_kinesis_source::{BytesDeserializer, InitialPosition, KinesisSource};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Records in the stream.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// Shards of the stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Runs per mode (interleaved); the summary takes the best.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Ignored (cargo bench passes it).
    #[arg(long)]
    bench: bool,
}

fn connection() -> anyhow::Result<KinesisConnection> {
    let endpoint = std::env::var("RILL_KINESALITE_ENDPOINT").context(
        "RILL_KINESALITE_ENDPOINT is not set: run `scripts/emulators.sh start kinesalite` and `eval \"$(scripts/emulators.sh env)\"`",
    )?;
    Ok(KinesisConnection::builder()
        .region("us-east-1")
        .endpoint(endpoint)
        .static_credentials("rill-bench", "rill-bench-secret")
        .build()?)
}

async fn prepare(client: &Client, args: &Args) -> anyhow::Result<String> {
    let stream = format!("rill-bench-source-{}", std::process::id());
    client.create_stream().stream_name(&stream).shard_count(args.shards).send().await?;
    loop {
        let s = client.describe_stream_summary().stream_name(&stream).send().await?;
        if s.stream_description_summary().map(|d| d.stream_status()) == Some(&StreamStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payload = vec![b'x'; args.record_bytes];
    let mut written = 0u64;
    while written < args.records {
        let n = (args.records - written).min(500);
        let entries = (0..n)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{}", written + i))
                    .data(Blob::new(payload.clone()))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client.put_records().stream_name(&stream).set_records(Some(entries)).send().await?;
        anyhow::ensure!(out.failed_record_count().unwrap_or(0) == 0, "PutRecords had failures while pre-filling");
        written += n;
    }
    Ok(stream)
}

/// Reads every shard from TRIM_HORIZON to its tip with back-to-back GetRecords calls.
async fn plain_loop(client: &Client, stream: &str) -> anyhow::Result<u64> {
    let shards = client.list_shards().stream_name(stream).send().await?;
    let mut tasks = Vec::new();
    for shard in shards.shards() {
        let client = client.clone();
        let (stream, shard_id) = (stream.to_string(), shard.shard_id().to_string());
        tasks.push(tokio::spawn(async move {
            let it = client
                .get_shard_iterator()
                .stream_name(&stream)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await?;
            let mut iterator = it.shard_iterator().map(str::to_string);
            let mut count = 0u64;
            while let Some(current) = iterator {
                let out = client.get_records().shard_iterator(current).limit(10_000).send().await?;
                count += out.records().len() as u64;
                if out.records().is_empty() && out.millis_behind_latest().unwrap_or(0) == 0 {
                    break;
                }
                iterator = out.next_shard_iterator().map(str::to_string);
            }
            anyhow::Ok(count)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total)
}

/// Runs the source at `parallelism` until `records` reached the operator after it.
fn source_run(stream: &str, parallelism: usize, records: u64) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let source = KinesisSource::builder(BytesDeserializer)
        .connection(connection()?)
        .stream(stream)
        .initial_position(InitialPosition::TrimHorizon)
        .stop_when_idle(Duration::from_millis(500))
        .build()?;
    let env = StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_secs(1))
        .checkpoint_dir(dir.path())
        .build()?;
    let seen = Arc::new(AtomicU64::new(0));
    let done_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (s, d) = (seen.clone(), done_at.clone());
    env.source("kinesis", source)
        .map(move |r: Vec<u8>| {
            if s.fetch_add(1, Ordering::Relaxed) + 1 == records {
                if let Ok(mut d) = d.lock() {
                    *d = Some(Instant::now());
                }
            }
            r.len()
        })
        .sink_to(DiscardSink);
    let start = Instant::now();
    env.execute("kinesis-source-bench")?;
    let got = seen.load(Ordering::Relaxed);
    anyhow::ensure!(got == records, "the source emitted {got} records, expected {records}");
    let end = done_at.lock().ok().and_then(|d| *d).context("no completion time")?;
    Ok(end - start)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = rt.block_on(connection()?.client())?;
    let stream = rt.block_on(prepare(&client, &args))?;
    println!(
        "stream={stream} records={} record_bytes={} shards={} (kinesalite at {})",
        args.records,
        args.record_bytes,
        args.shards,
        std::env::var("RILL_KINESALITE_ENDPOINT").unwrap_or_default()
    );
    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    for round in 0..args.repeat {
        for mode in ["plain", "source-p1", "source-p2"] {
            let elapsed = match mode {
                "plain" => {
                    let start = Instant::now();
                    let n = rt.block_on(plain_loop(&client, &stream))?;
                    anyhow::ensure!(n == args.records, "plain loop read {n} records, expected {}", args.records);
                    start.elapsed()
                }
                "source-p1" => source_run(&stream, 1, args.records)?,
                _ => source_run(&stream, 2, args.records)?,
            };
            let rate = args.records as f64 / elapsed.as_secs_f64();
            println!(
                "round={round} mode={mode} records={} elapsed_ms={} records_per_sec={rate:.0}",
                args.records,
                elapsed.as_millis()
            );
            let entry = best.entry(mode).or_insert(0.0);
            *entry = entry.max(rate);
        }
    }
    let plain = best.get("plain").copied().unwrap_or(f64::NAN);
    println!("summary (best of {}):", args.repeat);
    for (mode, rate) in &best {
        println!("  {mode:<10} {rate:>10.0} records/s  ratio_to_plain={:.2}", rate / plain);
    }
    let _ = rt.block_on(client.delete_stream().stream_name(&stream).send());
    Ok(())
}
