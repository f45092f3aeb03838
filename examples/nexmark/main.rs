//! The Nexmark benchmark queries as rill jobs (DataStream API, no SQL layer), with exactly-once
//! output.
//!
//! `cargo run --release --example nexmark -- --query q5 (--events N [--rate R] | --input FILE.jsonl
//!  [--input FILE2.jsonl ...]) --parallelism P --dir DIR [--checkpoint-interval-ms MS]
//!  [--output DIR | --discard]`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
//!
//! Events 0..N come from the `nexmark` crate's generator (RisingWave's port of the Nexmark
//! generator) with a fixed base time, so every run, restore and reference sees the same events;
//! or from JSON-lines files as that crate's binary writes them (`input.rs`).
//! Event time is each event's `date_time`, watermarks 4 s behind the largest seen (the official
//! DDL's). Queries: q0, q1, q2, q3, q4, q5, q7, q8, q9 (see `queries.rs`); each writes its rows as
//! CSV lines (the SELECT's columns in order, times as epoch milliseconds) through the
//! exactly-once file sink into `DIR/output` (or `--output`; `--discard` computes them and drops
//! them, as the official Flink setup's `blackhole` sinks do). The summary line:
//! `query=q5 events=N elapsed_ms=T events_per_sec=X rows=R checkpoints=C restored_from=ID|none
//! restarts=N stopped=true|false` (rows: those this run emitted, replays after a restart
//! included).

mod events;
mod input;
mod queries;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rill::prelude::*;

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// The query: q0, q1, q2, q3, q4, q5, q7, q8 or q9.
    #[arg(long)]
    query: String,
    /// Events to generate (or, with --input, read).
    #[arg(long, required_unless_present = "input")]
    events: Option<u64>,
    /// Read the events from this JSON-lines file (as the `nexmark` crate's binary writes them;
    /// repeat for several: they are divided among the source subtasks, each file in order).
    #[arg(long)]
    input: Vec<std::path::PathBuf>,
    /// At most this many events per second.
    #[arg(long)]
    rate: Option<u64>,
    /// Where the result rows go: a local directory or `s3://bucket/prefix`. Default: `DIR/output`.
    #[arg(long, conflicts_with = "discard")]
    output: Option<String>,
    /// Compute the rows and discard them (as the official Flink setup's `blackhole` sinks do):
    /// for measuring the queries without the cost of writing their output.
    #[arg(long)]
    discard: bool,
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    let query = match args.query.as_str() {
        "q0" => queries::q0,
        "q1" => queries::q1,
        "q2" => queries::q2,
        "q3" => queries::q3,
        "q4" => queries::q4,
        "q5" => queries::q5,
        "q7" => queries::q7,
        "q8" => queries::q8,
        "q9" => queries::q9,
        other => anyhow::bail!("unknown query {other:?}: q0, q1, q2, q3, q4, q5, q7, q8 and q9 are implemented"),
    };
    let env = args.job.builder().build()?;
    let events = match args.events.filter(|_| args.input.is_empty()) {
        Some(n) => {
            let mut numbers = GeneratorSource::new(0..n).ordered();
            if let Some(rate) = args.rate {
                numbers = numbers.rate_per_second(rate);
            }
            let numbers = args.job.inject_failures(env.source("events", numbers).uid("events"));
            numbers.transform("to-event", ClonePerSubtask(events::ToEvent::default()))
        }
        None => {
            let read = env.source("events", input::JsonLinesSource::new(args.input.clone())).uid("events");
            args.job.inject_failures(read)
        }
    };
    let events = events.assign_timestamps_and_watermarks(WatermarkStrategy::bounded_out_of_orderness(
        Duration::from_secs(4),
        events::event_time,
    ));
    let rows = Arc::new(AtomicU64::new(0));
    let counted = rows.clone();
    let lines = query(events).map(move |line: String| {
        counted.fetch_add(1, Ordering::Relaxed);
        line
    });
    match args.discard {
        true => lines.sink_to(DiscardSink),
        false => rill::OutputLocation::parse(args.output.as_deref(), args.job.dir.join("output"))?.sink(lines),
    }
    .uid("output");
    let result =
        rill::execute_with_progress(env, "nexmark").with_context(|| format!("nexmark {} failed", args.query))?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "query={} events={} elapsed_ms={} events_per_sec={:.0} rows={} checkpoints={} restored_from={} restarts={} stopped={}",
        args.query,
        result.records,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        rows.load(Ordering::Relaxed),
        result.checkpoints,
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
        result.restarts,
        result.stopped,
    );
    Ok(())
}
