//! Keyed running count over a generated sequence, with exactly-once output.
//!
//! `cargo run --release --example keyed_count -- --records N --keys K --parallelism P
//!  --checkpoint-interval-ms MS --dir DIR [--rate R] [--emit running|none]`
//!
//! Re-running the same command after a crash resumes from the latest complete checkpoint in DIR.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use rill::prelude::*;
use rill::KeyedStateConfig;
use rill::RunningCount;

#[derive(Parser, Debug)]
struct Args {
    /// Records to generate (seq 0..N-1).
    #[arg(long)]
    records: u64,
    /// Distinct keys (key = seq % K).
    #[arg(long)]
    keys: u64,
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Checkpoint interval; 0 disables periodic checkpoints.
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
    /// Holds checkpoints, working state and `output/`.
    #[arg(long)]
    dir: PathBuf,
    /// At most this many records per second.
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long, value_enum, default_value_t = Emit::Running)]
    emit: Emit,
    /// Restore this checkpoint id instead of the latest complete one.
    #[arg(long)]
    restore_from: Option<u64>,
    /// Entries per state cache before it spills to RocksDB.
    #[arg(long, default_value_t = 500_000)]
    cache_entries: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Emit {
    Running,
    None,
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    anyhow::ensure!(args.keys > 0, "--keys must be at least 1");
    let mut builder = StreamEnv::builder();
    if let Some(id) = args.restore_from {
        builder = builder.restore_from(id);
    }
    let env = builder
        .parallelism(args.parallelism)
        .checkpoint_interval(Duration::from_millis(args.checkpoint_interval_ms))
        .checkpoint_dir(args.dir.join("checkpoints"))
        .keyed_state(KeyedStateConfig { cache_entries_per_state: args.cache_entries, ..KeyedStateConfig::default() })
        .build()?;
    let mut source = GeneratorSource::new(0..args.records);
    if let Some(rate) = args.rate {
        source = source.rate_per_second(rate);
    }
    let keys = args.keys;
    let counts = env.source("generator", source).key_by(move |seq: &u64| seq % keys).process(RunningCount::open);
    match args.emit {
        Emit::Running => counts
            .map(|(key, count)| format!("{key}\t{count}"))
            .sink_to(FileSink::exactly_once(args.dir.join("output"))),
        Emit::None => counts.sink_to(DiscardSink),
    }
    let result = env.execute("keyed-count").context("keyed-count job failed")?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "records={} keys={} parallelism={} elapsed_ms={} records_per_sec={:.0} checkpoints={} restored_from={}",
        result.records,
        args.keys,
        args.parallelism,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.checkpoints,
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
    );
    Ok(())
}
