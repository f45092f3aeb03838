//! Tumbling event-time windows counting records per key, with exactly-once output.
//!
//! `cargo run --release --example window_count -- --records N --keys K --parallelism P --dir DIR
//!  --checkpoint-interval-ms MS --window-ms W --out-of-orderness-ms O [--rate R] [--running-counts]`
//!
//! Record i (i = 0..N-1) has the event time max(0, i - (i * 7919) mod O) milliseconds, so input is
//! out of order by less than O ms, and the key i % K. Watermarks trail the largest event time by O
//! (bounded out-of-orderness). Each fired window writes `key<TAB>window_start<TAB>count` to the
//! exactly-once file sink in `DIR/output`; checkpoints go to `DIR/checkpoints`. Re-running the
//! same command after a crash resumes from the latest complete checkpoint; at the end of input the
//! final watermark fires every window before the final checkpoint.
//!
//! With `--running-counts`, the same keyed stream also feeds a keyed running count (the stream
//! is used by two operators), committed as `key<TAB>count` lines to `DIR/running`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rill::prelude::*;

#[derive(Parser, Debug)]
struct Args {
    /// Records to generate (i = 0..N-1).
    #[arg(long)]
    records: u64,
    /// Distinct keys (key = i % K).
    #[arg(long)]
    keys: u64,
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Holds `checkpoints/` and `output/`.
    #[arg(long)]
    dir: PathBuf,
    /// Checkpoint interval; 0 disables periodic checkpoints.
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
    /// Length of the tumbling windows.
    #[arg(long)]
    window_ms: u64,
    /// Bound of the input's disorder, and how far watermarks trail the largest event time.
    #[arg(long)]
    out_of_orderness_ms: u64,
    /// At most this many records per second.
    #[arg(long)]
    rate: Option<u64>,
    /// Also commit each key's running count from the same keyed stream to `DIR/running`.
    #[arg(long)]
    running_counts: bool,
}

/// How often watermarks are emitted (processing time).
const WATERMARK_INTERVAL_MS: u64 = 5;

/// The event time of record `i`: `max(0, i - (i * 7919) mod o)`.
#[inline]
fn event_time(i: u64, o: u64) -> i64 {
    if o == 0 {
        return i as i64;
    }
    let jitter = match i.checked_mul(7919) {
        Some(product) => product % o,
        None => ((u128::from(i) * 7919) % u128::from(o)) as u64,
    };
    i.saturating_sub(jitter) as i64
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    anyhow::ensure!(args.keys > 0, "--keys must be at least 1");
    anyhow::ensure!(args.window_ms > 0, "--window-ms must be at least 1");
    let env = StreamEnv::builder()
        .parallelism(args.parallelism)
        .checkpoint_interval(Duration::from_millis(args.checkpoint_interval_ms))
        .checkpoint_dir(args.dir.join("checkpoints"))
        .tick_interval(Duration::from_millis(WATERMARK_INTERVAL_MS))
        .watermark_alignment(Duration::from_millis(args.window_ms.max(args.out_of_orderness_ms)))
        .build()?;
    let mut source = GeneratorSource::new(0..args.records).ordered();
    if let Some(rate) = args.rate {
        source = source.rate_per_second(rate);
    }
    let (keys, o) = (args.keys, args.out_of_orderness_ms);
    // Frequent watermarks keep few windows open: at millions of records per second, the default
    // 200 ms interval would leave hundreds of thousands of (single-record) windows waiting.
    let strategy =
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(o), move |i: &u64| event_time(*i, o))
            .with_emit_interval(Duration::from_millis(WATERMARK_INTERVAL_MS));
    let late = Arc::new(AtomicU64::new(0));
    let encode: rill::operators::Encoder<Windowed<u64, u64>> = Arc::new(|w, buf| {
        let _ = writeln!(buf, "{}\t{}\t{}", w.key, w.window.start, w.value);
    });
    let keyed =
        env.source("generator", source).assign_timestamps_and_watermarks(strategy).key_by(move |i: &u64| i % keys);
    if args.running_counts {
        keyed
            .clone()
            .process(RunningCount::open)
            .map(|(key, count)| format!("{key}\t{count}"))
            .sink_to(FileSink::exactly_once(args.dir.join("running")));
    }
    keyed
        .window(TumblingEventTimeWindows::of(Duration::from_millis(args.window_ms)), move |i: &u64| event_time(*i, o))
        .count_late_records(late.clone())
        .aggregate(Count)
        .sink_to(FileSink::with_encoder(args.dir.join("output"), encode));
    let result = env.execute("window-count").context("window-count job failed")?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "records={} keys={} parallelism={} window_ms={} elapsed_ms={} records_per_sec={:.0} checkpoints={} late={} restored_from={}",
        result.records,
        args.keys,
        args.parallelism,
        args.window_ms,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.checkpoints,
        late.load(Ordering::Relaxed),
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
    );
    Ok(())
}
