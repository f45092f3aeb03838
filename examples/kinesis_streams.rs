//! A small tool for checking Kinesis pipelines on an emulator by hand or from scripts.
//!
//! ```text
//! cargo run --release --example kinesis_streams -- --endpoint URL create NAME SHARDS
//! cargo run --release --example kinesis_streams -- --endpoint URL fill NAME RECORDS [--record-bytes B]
//! cargo run --release --example kinesis_streams -- --endpoint URL compare IN OUT
//! cargo run --release --example kinesis_streams -- --endpoint URL put-json NAME FILE --key-field F [--rate R]
//! cargo run --release --example kinesis_streams -- --endpoint URL read NAME
//! ```
//!
//! `fill` writes records `record-<i>` with partition keys `key-<i % 97>`. `compare` checks that
//! every (partition key, data) of IN is in OUT, prints `in=N out=M missing=X duplicates=D` and
//! exits 1 if anything is missing (duplicates are allowed; D counts them). `put-json` writes each
//! line of FILE (JSON objects, `-` for stdin) as one record, partitioned by the value of field F,
//! at most R records per second. `read` prints every record of NAME from TRIM_HORIZON, one per
//! line: `shard<TAB>sequence number<TAB>partition key<TAB>data`.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rill_kinesis_common::test_utils::{create_stream, put_records, read_all};
use rill_kinesis_common::KinesisConnection;

#[derive(Parser, Debug)]
struct Args {
    /// Kinesis endpoint, e.g. http://127.0.0.1:4567.
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Creates a stream and waits until it is ACTIVE.
    Create { name: String, shards: i32 },
    /// Writes RECORDS records.
    Fill {
        name: String,
        records: usize,
        /// Pad each record's data with '.' to this many bytes.
        #[arg(long, default_value_t = 0)]
        record_bytes: usize,
    },
    /// Checks that OUT holds every record of IN (same key and data).
    Compare { input: String, output: String },
    /// Writes each JSON line of FILE (`-`: stdin) as one record, keyed by a field.
    PutJson {
        name: String,
        file: PathBuf,
        /// The field whose value is the partition key.
        #[arg(long)]
        key_field: String,
        /// At most this many records per second.
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Prints every record of a stream (from TRIM_HORIZON).
    Read { name: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = KinesisConnection::builder()
        .region(&args.region)
        .endpoint(&args.endpoint)
        .static_credentials("rill-local", "rill-local-secret")
        .build()?
        .client()
        .await?;
    match args.command {
        Command::Create { name, shards } => {
            create_stream(&client, &name, shards).await?;
            println!("created stream {name} with {shards} shards (ACTIVE)");
        }
        Command::Fill { name, records, record_bytes } => {
            let records: Vec<(String, Vec<u8>)> = (0..records)
                .map(|i| {
                    let mut data = format!("record-{i}").into_bytes();
                    if data.len() < record_bytes {
                        data.resize(record_bytes, b'.');
                    }
                    (format!("key-{}", i % 97), data)
                })
                .collect();
            put_records(&client, &name, &records).await?;
            println!("put {} records into {name}", records.len());
        }
        Command::Compare { input, output } => {
            let mut want: HashMap<(String, Vec<u8>), usize> = HashMap::new();
            for r in read_all(&client, &input).await.context("reading IN")? {
                *want.entry((r.partition_key, r.data)).or_default() += 1;
            }
            let mut got: HashMap<(String, Vec<u8>), usize> = HashMap::new();
            for r in read_all(&client, &output).await.context("reading OUT")? {
                *got.entry((r.partition_key, r.data)).or_default() += 1;
            }
            let missing: usize = want.iter().map(|(k, n)| n.saturating_sub(got.get(k).copied().unwrap_or(0))).sum();
            let duplicates: usize = got.iter().map(|(k, n)| n.saturating_sub(want.get(k).copied().unwrap_or(0))).sum();
            let (n_in, n_out): (usize, usize) = (want.values().sum(), got.values().sum());
            println!("in={n_in} out={n_out} missing={missing} duplicates={duplicates}");
            if missing > 0 {
                std::process::exit(1);
            }
        }
        Command::PutJson { name, file, key_field, rate } => {
            let reader: Box<dyn std::io::BufRead> = match file.to_str() {
                Some("-") => Box::new(std::io::stdin().lock()),
                _ => Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
                )),
            };
            let started = Instant::now();
            let mut batch = Vec::new();
            let mut sent = 0u64;
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value =
                    serde_json::from_str(&line).with_context(|| format!("line {}: not JSON", n + 1))?;
                let key = match value.get(&key_field) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => anyhow::bail!("line {}: no field '{key_field}'", n + 1),
                };
                batch.push((key, line.into_bytes()));
                let limit = rate.map_or(500, |r| r.clamp(1, 500) as usize);
                if batch.len() >= limit {
                    sent += batch.len() as u64;
                    put_records(&client, &name, &std::mem::take(&mut batch)).await?;
                    if let Some(rate) = rate {
                        let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
                        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
                    }
                }
            }
            sent += batch.len() as u64;
            put_records(&client, &name, &batch).await?;
            println!("records={sent} elapsed_ms={}", started.elapsed().as_millis());
        }
        Command::Read { name } => {
            for r in read_all(&client, &name).await.context("reading the stream")? {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.shard_id,
                    r.sequence_number,
                    r.partition_key,
                    String::from_utf8_lossy(&r.data)
                );
            }
        }
    }
    Ok(())
}
