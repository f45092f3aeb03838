//! Deduplication with keyed state that expires: the first record of each key passes, repeats
//! within the time to live are dropped; without `--ttl-ms` the state keeps every key ever seen.
//!
//! `cargo run --release --example dedup -- --records N --repeats R --parallelism P --dir DIR
//!  [--ttl-ms MS] [--rate R] [--checkpoint-interval-ms MS]`
//!
//! Record n has the key n / R: each key comes R times in a row, then never again, so the live
//! keys at any moment are few and the keys ever seen are N / R. With a time to live the state's
//! RocksDB size follows the live keys (expired rows are dropped by compaction); without, it grows
//! with every key. `benches/state_ttl.sh` samples the working state's size on disk while it runs.
//! The summary line: `records=N first_seen=F elapsed_ms=T records_per_sec=X ttl_ms=MS|none`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rill::prelude::*;
use rill::TtlValueState;

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// Records to generate.
    #[arg(long)]
    records: u64,
    /// Times each key comes, in a row.
    #[arg(long, default_value_t = 4)]
    repeats: u64,
    /// Time to live of a seen key (processing time); none: kept for ever.
    #[arg(long)]
    ttl_ms: Option<u64>,
    /// At most this many records per second.
    #[arg(long)]
    rate: Option<u64>,
}

/// Passes the first record of a key; remembers the key (for the time to live, if any).
enum Seen {
    Expiring(TtlValueState<u64, bool>),
    Forever(ValueState<u64, bool>),
}

impl KeyedProcessFunction<u64, u64, u64> for Seen {
    fn process(&mut self, record: u64, ctx: &mut KeyedContext<'_, u64>, out: &mut Collector<u64>) -> OperatorResult {
        let seen = match self {
            Seen::Expiring(state) => state.get(ctx)?.is_some(),
            Seen::Forever(state) => state.get(ctx.state())?.is_some(),
        };
        if !seen {
            out.emit(record);
            match self {
                Seen::Expiring(state) => state.set(ctx, true)?,
                Seen::Forever(state) => state.set(ctx.state(), true)?,
            }
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    anyhow::ensure!(args.repeats > 0, "--repeats must be at least 1");
    let env = args.job.builder().build()?;
    let mut source = GeneratorSource::new(0..args.records).ordered();
    if let Some(rate) = args.rate {
        source = source.rate_per_second(rate);
    }
    let (repeats, ttl) = (args.repeats, args.ttl_ms.map(|ms| StateTtlConfig::new(Duration::from_millis(ms))));
    let first_seen = Arc::new(AtomicU64::new(0));
    let counted = first_seen.clone();
    env.source("records", source)
        .uid("records")
        .key_by(move |n: &u64| n / repeats)
        .process(move |state: &mut StateRegistry<'_, u64>| {
            Ok(match ttl {
                Some(ttl) => Seen::Expiring(state.value_with_ttl("seen", ttl)?),
                None => Seen::Forever(state.value("seen")?),
            })
        })
        .uid("dedup")
        .map(move |n: u64| {
            counted.fetch_add(1, Ordering::Relaxed);
            n
        })
        .sink_to(DiscardSink);
    let result = rill::execute_with_progress(env, "dedup").context("dedup job failed")?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "records={} first_seen={} elapsed_ms={} records_per_sec={:.0} ttl_ms={}",
        result.records,
        first_seen.load(Ordering::Relaxed),
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        args.ttl_ms.map_or("none".to_string(), |ms| ms.to_string()),
    );
    Ok(())
}
