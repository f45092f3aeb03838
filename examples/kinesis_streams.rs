//! A small tool for checking Kinesis pipelines on an emulator by hand or from scripts.
//!
//! ```text
//! cargo run --release -p rill-kinesis-sink --example kinesis_streams -- --endpoint URL create NAME SHARDS
//! cargo run --release -p rill-kinesis-sink --example kinesis_streams -- --endpoint URL fill NAME RECORDS
//! cargo run --release -p rill-kinesis-sink --example kinesis_streams -- --endpoint URL compare IN OUT
//! ```
//!
//! `fill` writes records `record-<i>` with partition keys `key-<i % 97>`. `compare` checks that
//! every (partition key, data) of IN is in OUT, prints `in=N out=M missing=X duplicates=D` and
//! exits 1 if anything is missing (duplicates are allowed; D counts them).

use std::collections::HashMap;

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
    Fill { name: String, records: usize },
    /// Checks that OUT holds every record of IN (same key and data).
    Compare { input: String, output: String },
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
        Command::Create { name, shards } => create_stream(&client, &name, shards).await?,
        Command::Fill { name, records } => {
            let records: Vec<(String, Vec<u8>)> =
                (0..records).map(|i| (format!("key-{}", i % 97), format!("record-{i}").into_bytes())).collect();
            put_records(&client, &name, &records).await?;
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
    }
    Ok(())
}
