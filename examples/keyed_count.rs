//! Keyed running count over a generated sequence, with exactly-once output.
//!
//! `cargo run --release --example keyed_count -- --records N --keys K --parallelism P
//!  --checkpoint-interval-ms MS --dir DIR [--rate R] [--emit running|none] [--restore-from ID]
//!  [--cache-entries N] [--state-memory-mb MB] [--inject-failure-every-ms MS] [--restart-strategy SPEC]
//!  [--checkpoint-location DIR|s3://bucket/prefix] [--output DIR]`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
//!
//! Re-running the same command after a crash resumes from the latest complete checkpoint in DIR.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use rill::prelude::*;
use rill::KeyedStateConfig;
use rill::RunningCount;

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// Records to generate (seq 0..N-1).
    #[arg(long)]
    records: u64,
    /// Distinct keys (key = seq % K with uniform keys).
    #[arg(long)]
    keys: u64,
    /// How records spread over keys: `uniform` (key = seq % K) or `zipf:S` (key k drawn with
    /// weight 1/(k+1)^S from a hash of seq, so the same seq always gets the same key).
    #[arg(long, default_value = "uniform")]
    key_distribution: KeyDistribution,
    /// Where the counts are written: a local directory or `s3://bucket/prefix`. Default:
    /// `DIR/output`. (`--verify` reads local directories only.)
    #[arg(long)]
    output: Option<String>,
    /// At most this many records per second.
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long, value_enum, default_value_t = Emit::Running)]
    emit: Emit,
    /// Entries per state cache before it spills to RocksDB.
    #[arg(long, default_value_t = 500_000)]
    cache_entries: usize,
    /// Memory for all keyed state of the process in MiB (RocksDB a quarter, caches the rest;
    /// caches then hold as many entries as fit, up to --cache-entries).
    #[arg(long)]
    state_memory_mb: Option<usize>,
    /// Let RocksDB overwrite rows its memtable holds instead of appending every write
    /// (`KeyedStateConfig::in_place_updates` on).
    #[arg(long)]
    in_place_updates: bool,
    /// Do not run: check the output committed in `DIR/output` against the truth for --records
    /// and --keys (every key's counts 1..n, each exactly once), print `verified=ok ...`, and exit
    /// non-zero on any difference.
    #[arg(long)]
    verify: bool,
}

/// Which key each record (sequence number) gets.
#[derive(Clone, Debug)]
enum KeyDistribution {
    Uniform,
    Zipf(f64),
}

impl std::str::FromStr for KeyDistribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "uniform" => Ok(KeyDistribution::Uniform),
            Some(("zipf", exponent)) => exponent
                .parse::<f64>()
                .ok()
                .filter(|e| *e > 0.0)
                .map(KeyDistribution::Zipf)
                .ok_or_else(|| format!("zipf exponent must be a positive number, not {exponent:?}")),
            _ => Err(format!("key distribution must be uniform or zipf:S, not {s:?}")),
        }
    }
}

/// The key of each sequence number: a pure function, so replays after a restore agree.
#[derive(Clone)]
struct Keys {
    keys: u64,
    /// Zipf only: cumulative probability of keys 0..=k.
    cdf: Option<std::sync::Arc<Vec<f64>>>,
}

impl Keys {
    fn new(keys: u64, distribution: &KeyDistribution) -> Self {
        let cdf = match distribution {
            KeyDistribution::Uniform => None,
            KeyDistribution::Zipf(s) => {
                let weights: Vec<f64> = (0..keys).map(|k| 1.0 / ((k + 1) as f64).powf(*s)).collect();
                let total: f64 = weights.iter().sum();
                let mut acc = 0.0;
                Some(std::sync::Arc::new(
                    weights
                        .iter()
                        .map(|w| {
                            acc += w / total;
                            acc
                        })
                        .collect(),
                ))
            }
        };
        Keys { keys, cdf }
    }

    fn of(&self, seq: u64) -> u64 {
        let Some(cdf) = &self.cdf else { return seq % self.keys };
        // splitmix64 of seq, as a number in [0, 1).
        let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        (cdf.partition_point(|c| *c <= u) as u64).min(self.keys - 1)
    }

    /// How many of seqs 0..records each key gets.
    fn expected(&self, records: u64) -> Vec<u64> {
        let mut counts = vec![0u64; self.keys as usize];
        match self.cdf {
            None => counts
                .iter_mut()
                .enumerate()
                .for_each(|(k, c)| *c = records / self.keys + u64::from((k as u64) < records % self.keys)),
            Some(_) => (0..records).for_each(|seq| counts[self.of(seq) as usize] += 1),
        }
        counts
    }
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
    if args.verify {
        return verify(&args);
    }
    let env = args
        .job
        .builder()
        .keyed_state(KeyedStateConfig {
            cache_entries_per_state: args.cache_entries,
            memory_budget_bytes: args.state_memory_mb.map(|mb| mb << 20),
            in_place_updates: args.in_place_updates,
            ..KeyedStateConfig::default()
        })
        .build()?;
    let mut source = GeneratorSource::new(0..args.records);
    if let Some(rate) = args.rate {
        source = source.rate_per_second(rate);
    }
    let keys = Keys::new(args.keys, &args.key_distribution);
    // Uids on every stateful operator: the job may change around them (`--inject-failure-every-ms`
    // adds an operator) and still restore each one's state into it.
    let numbers = args.job.inject_failures(env.source("generator", source).uid("generator"));
    let counts = numbers.key_by(move |seq: &u64| keys.of(*seq)).process(RunningCount::open).uid("counts");
    match args.emit {
        Emit::Running => rill::OutputLocation::parse(args.output.as_deref(), args.job.dir.join("output"))?
            .sink(counts.map(|(key, count)| format!("{key}\t{count}"))),
        Emit::None => counts.sink_to(DiscardSink),
    }
    .uid("output");
    let result = rill::execute_with_progress(env, "keyed-count").context("keyed-count job failed")?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "records={} keys={} parallelism={} elapsed_ms={} records_per_sec={:.0} checkpoints={} restored_from={} restarts={} stopped={} uploaded_bytes={}",
        result.records,
        args.keys,
        args.job.parallelism,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.checkpoints,
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
        result.restarts,
        result.stopped,
        result.uploaded_bytes,
    );
    Ok(())
}

/// Checks that each key's committed counts are exactly 1..=n, each once (a bitmap per key).
fn verify(args: &Args) -> anyhow::Result<()> {
    let (records, keys) = (args.records, args.keys);
    let counts = Keys::new(keys, &args.key_distribution).expected(records);
    let expected = |key: u64| counts[key as usize];
    let mut seen: Vec<Vec<u64>> = (0..keys).map(|k| vec![0u64; expected(k).div_ceil(64) as usize]).collect();
    let mut lines = 0u64;
    let output = args.output.as_deref().map_or_else(|| args.job.dir.join("output"), PathBuf::from);
    let files = rill::committed_part_files(&output).with_context(|| format!("reading {}", output.display()))?;
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines() {
            let (key, count) = line.split_once('\t').with_context(|| format!("bad line {line:?}"))?;
            let (key, count): (u64, u64) = (key.parse()?, count.parse()?);
            anyhow::ensure!(key < keys && (1..=expected(key)).contains(&count), "unexpected line {line:?}");
            let (word, bit) = (((count - 1) / 64) as usize, (count - 1) % 64);
            anyhow::ensure!(seen[key as usize][word] & (1 << bit) == 0, "key {key}: count {count} committed twice");
            seen[key as usize][word] |= 1 << bit;
            lines += 1;
        }
    }
    anyhow::ensure!(lines == records, "{lines} lines committed, {records} expected (some counts missing)");
    println!("verified=ok lines={lines} keys={keys}");
    Ok(())
}
