//! Tumbling event-time windows counting records per key, with exactly-once output.
//!
//! `cargo run --release --example window_count -- --records N --keys K --parallelism P --dir DIR
//!  --checkpoint-interval-ms MS --window-ms W --out-of-orderness-ms O [--rate R] [--running-counts]
//!  [--restore-from ID] [--inject-failure-every-ms MS] [--restart-strategy SPEC]`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
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
use rill::{WatermarkGenerator, WatermarkOutput};

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// Records to generate (i = 0..N-1).
    #[arg(long)]
    records: u64,
    /// Distinct keys (key = i % K).
    #[arg(long)]
    keys: u64,
    /// Where the output goes: windows under `URL/output`, running counts under `URL/running`; a
    /// local directory or `s3://bucket/prefix`. Default: DIR. (`--verify` reads local ones only.)
    #[arg(long)]
    output: Option<String>,
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
    /// Watermarks trail the largest event time by this (instead of --out-of-orderness-ms), and
    /// come after every record batch (punctuated, so the same input always meets the same
    /// watermarks). Below the disorder, records arrive late: they are dropped and counted.
    #[arg(long)]
    watermark_lag_ms: Option<u64>,
    /// Do not run: check the lines committed in `DIR/output` (and `DIR/running` with
    /// --running-counts) against the true per-key, per-window counts, print `verified=ok ...`,
    /// and exit non-zero on any difference.
    #[arg(long)]
    verify: bool,
}

/// How often watermarks are emitted (processing time).
const WATERMARK_INTERVAL_MS: u64 = 5;

/// Bounded out-of-orderness watermarks, emitted with every record (the runtime passes them on
/// after each batch): deterministic for a given input, unlike periodic ones.
struct EveryBatch(rill::operators::BoundedOutOfOrderness);

impl WatermarkGenerator<u64> for EveryBatch {
    fn on_event(&mut self, record: &u64, timestamp_ms: i64, out: &mut WatermarkOutput) {
        WatermarkGenerator::<u64>::on_event(&mut self.0, record, timestamp_ms, out);
        if let Some(w) = self.0.current() {
            out.emit_watermark(w);
        }
    }

    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
}

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
    if args.verify {
        return verify(&args);
    }
    let env = args
        .job
        .builder()
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
    let at = move |i: &u64| event_time(*i, o);
    let strategy = match args.watermark_lag_ms {
        None => WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(o), at),
        Some(lag) => WatermarkStrategy::from_generator(at, move || {
            EveryBatch(rill::operators::BoundedOutOfOrderness::new(Duration::from_millis(lag)))
        }),
    }
    .with_emit_interval(Duration::from_millis(WATERMARK_INTERVAL_MS));
    let late = Arc::new(AtomicU64::new(0));
    let encode: rill::operators::Encoder<Windowed<u64, u64>> = Arc::new(|w, buf| {
        let _ = writeln!(buf, "{}\t{}\t{}", w.key, w.window.start, w.value);
    });
    // Uids on every stateful operator: the job may change around them (`--running-counts` adds
    // a consumer) and still restore each one's state into it.
    let numbers = args.job.inject_failures(env.source("generator", source).uid("generator"));
    let keyed = numbers.assign_timestamps_and_watermarks(strategy).key_by(move |i: &u64| i % keys);
    let base = output_base(&args);
    let output = |name: &str| rill::OutputLocation::parse(Some(&format!("{base}/{name}")), args.job.dir.join(name));
    if args.running_counts {
        let running = keyed.clone().process(RunningCount::open).uid("running-counts");
        output("running")?.sink(running.map(|(key, count)| format!("{key}\t{count}"))).uid("running");
    }
    let windows = keyed
        .window(TumblingEventTimeWindows::of(Duration::from_millis(args.window_ms)), move |i: &u64| event_time(*i, o))
        .count_late_records(late.clone())
        .aggregate(Count)
        .uid("windows");
    output("output")?.sink_encoded(windows, encode).uid("output");
    let result = rill::execute_with_progress(env, "window-count").context("window-count job failed")?;
    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "records={} keys={} parallelism={} window_ms={} elapsed_ms={} records_per_sec={:.0} checkpoints={} late={} restored_from={} restarts={} stopped={}",
        result.records,
        args.keys,
        args.job.parallelism,
        args.window_ms,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.checkpoints,
        late.load(Ordering::Relaxed),
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
        result.restarts,
        result.stopped,
    );
    Ok(())
}

/// The committed `part-*` lines of `dir`.
fn committed_lines(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    rill::committed_lines(dir).with_context(|| format!("reading {}", dir.display()))
}

/// Where `output/` and `running/` go: `--output`, or DIR.
fn output_base(args: &Args) -> String {
    args.output.clone().unwrap_or_else(|| args.job.dir.display().to_string())
}

/// Checks every window count (and running count) against the truth computed from the records.
fn verify(args: &Args) -> anyhow::Result<()> {
    let base = PathBuf::from(output_base(args));
    let (o, w) = (args.out_of_orderness_ms, args.window_ms as i64);
    let mut truth: std::collections::HashMap<(u64, i64), u64> = std::collections::HashMap::new();
    for i in 0..args.records {
        let t = event_time(i, o);
        *truth.entry((i % args.keys, t - t.rem_euclid(w))).or_default() += 1;
    }
    let lines = committed_lines(&base.join("output"))?;
    let mut seen = std::collections::HashSet::new();
    for line in &lines {
        let mut fields = line.split('\t').map(str::parse::<i64>);
        let (Some(Ok(key)), Some(Ok(start)), Some(Ok(count)), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            anyhow::bail!("bad line {line:?}");
        };
        let want = truth.get(&(key as u64, start)).copied();
        anyhow::ensure!(want == Some(count as u64), "window {key}/{start}: committed {count}, true {want:?}");
        anyhow::ensure!(seen.insert((key, start)), "window {key}/{start} committed twice");
    }
    anyhow::ensure!(seen.len() == truth.len(), "{} windows committed, {} expected", seen.len(), truth.len());
    if args.running_counts {
        let mut counts: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
        for line in committed_lines(&base.join("running"))? {
            let (key, count) = line.split_once('\t').with_context(|| format!("bad line {line:?}"))?;
            counts.entry(key.parse()?).or_default().push(count.parse()?);
        }
        for key in 0..args.keys {
            let n = args.records / args.keys + u64::from(key < args.records % args.keys);
            let mut got = counts.remove(&key).unwrap_or_default();
            got.sort_unstable();
            anyhow::ensure!(got == (1..=n).collect::<Vec<_>>(), "key {key}: running counts are not 1..={n} once");
        }
    }
    println!("verified=ok windows={} lines={}", seen.len(), lines.len());
    Ok(())
}
