//! The yardstick for keyed_count's all-cached speed (issue 11): a hand-written loop, no rill.
//!
//! `cargo run --release --example hashmap_loop -- --records N --keys K --threads T`
//!
//! T threads each count the keys they own (key % T == thread) in a `std` HashMap, over the same
//! sequence keyed_count generates with uniform keys (key = seq % K): no channels, no checkpoints,
//! no serialization. Thread t walks seqs t, t+T, t+2T, ... which with K a multiple of T gives it
//! exactly its own keys. Prints the same `records_per_sec=` summary as keyed_count.

use std::collections::HashMap;
use std::time::Instant;

use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Records to count (seq 0..N-1).
    #[arg(long)]
    records: u64,
    /// Distinct keys (key = seq % K); a multiple of --threads so each thread owns its keys.
    #[arg(long)]
    keys: u64,
    #[arg(long, default_value_t = 2)]
    threads: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(args.keys > 0 && args.keys % args.threads == 0, "--keys must be a positive multiple of --threads");
    let started = Instant::now();
    let totals: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.threads)
            .map(|thread| {
                scope.spawn(move || {
                    let mut counts: HashMap<u64, u64> = HashMap::new();
                    let mut seq = thread;
                    while seq < args.records {
                        *counts.entry(seq % args.keys).or_insert(0) += 1;
                        seq += args.threads;
                    }
                    (counts.len() as u64, counts.values().sum::<u64>())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or((0, 0))).collect()
    });
    let elapsed = started.elapsed();
    let (keys, records): (u64, u64) = totals.iter().fold((0, 0), |(k, r), (tk, tr)| (k + tk, r + tr));
    anyhow::ensure!(records == args.records, "counted {records} records, expected {}", args.records);
    println!(
        "records={records} keys={keys} threads={} elapsed_ms={} records_per_sec={:.0}",
        args.threads,
        elapsed.as_millis(),
        records as f64 / elapsed.as_secs_f64().max(1e-9),
    );
    Ok(())
}
