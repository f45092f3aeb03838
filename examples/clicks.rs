//! JSON clicks from Kinesis: per-user event-time windows out to Kinesis, and a running total per
//! user out to the exactly-once file sink — one keyed stream feeding two operators.
//!
//! `cargo run --release --example clicks -- --endpoint URL --region R --source-stream IN
//!  --sink-stream OUT --dir DIR [--window-ms W] [--out-of-orderness-ms O] [--parallelism P]
//!  [--checkpoint-interval-ms MS] --idle-exit-ms IDLE`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
//!
//! Each record of IN is a JSON object `{"user": "...", "page": "...", "at_ms": 1700000000000}`.
//! Event time is `at_ms`. The source makes the watermarks, per shard (trailing each shard's
//! largest `at_ms` by O ms, default 500) and the minimum over shards, so a shard read ahead of
//! another does not make the other's clicks late — the way to do event time on Kinesis. Every
//! W ms tumbling window (default 10 s) of a user writes `{"user", "window_start", "clicks"}` as
//! JSON to OUT (at-least-once: a window may be written again after a crash), partitioned by
//! user; every click writes `user<TAB>total` to `DIR/totals` (exactly once). Checkpoints live in
//! `DIR/checkpoints`; running the same command again after a crash resumes. After IDLE ms without
//! a record the job finishes (every open window fires) and prints
//! `records=N elapsed_ms=T records_per_sec=X checkpoints=C restarts=R restored_from=ID|none`.
//!
//! Put clicks into a stream with the stream tool: `cargo run --release --example
//! kinesis_streams -- --endpoint URL put-json IN clicks.jsonl --key-field user`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rill::kinesis_common::KinesisConnection;
use rill::kinesis_sink::{KinesisSink, Partitioner};
use rill::kinesis_source::{InitialPosition, JsonDeserializer, KinesisRecord, KinesisSource};
use rill::prelude::*;
use rill::serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// Kinesis endpoint, e.g. http://127.0.0.1:4567.
    #[arg(long)]
    endpoint: String,
    /// AWS region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Stream of JSON clicks (read from TRIM_HORIZON).
    #[arg(long)]
    source_stream: String,
    /// Stream the window counts go to.
    #[arg(long)]
    sink_stream: String,
    /// Length of the tumbling windows.
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
    /// How far watermarks trail the largest event time.
    #[arg(long, default_value_t = 500)]
    out_of_orderness_ms: u64,
    /// Finish after this long without a record.
    #[arg(long)]
    idle_exit_ms: u64,
}

/// One click, as it arrives.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "rill::serde")]
struct Click {
    user: String,
    #[allow(dead_code)]
    page: String,
    at_ms: i64,
}

/// A user's clicks in one window, as it leaves.
#[derive(Debug, Serialize)]
#[serde(crate = "rill::serde")]
struct WindowCount {
    user: String,
    window_start: i64,
    clicks: u64,
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    anyhow::ensure!(args.idle_exit_ms > 0, "--idle-exit-ms must be positive");
    let connection = KinesisConnection::builder()
        .region(&args.region)
        .endpoint(&args.endpoint)
        .dummy_credentials_for_local_endpoint()
        .build()?;
    let idle = Duration::from_millis(args.idle_exit_ms);
    let source = KinesisSource::builder(JsonDeserializer::<Click>::new())
        .connection(connection.clone())
        .stream(&args.source_stream)
        .initial_position(InitialPosition::TrimHorizon)
        .timestamp_assigner(|c: &Click, _: &KinesisRecord<'_>| Some(c.at_ms))
        .max_out_of_orderness(Duration::from_millis(args.out_of_orderness_ms))
        .discovery_interval((idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(10)))
        .stop_when_idle(idle)
        .build()
        .context("invalid Kinesis source configuration")?;
    let sink = KinesisSink::<WindowCount>::builder()
        .connection(connection)
        .stream(&args.sink_stream)
        .json()
        .partitioner(Partitioner::from_record(|w: &WindowCount| w.user.clone()))
        .build()
        .context("invalid Kinesis sink configuration")?;

    let env = args.job.builder().build()?;
    let at = |c: &Click| c.at_ms;
    // Uids on every stateful operator: the job may change around them (a flag that adds an
    // operator) and still restore each one's state into it.
    let clicks =
        args.job.inject_failures(env.source("clicks", source).uid("clicks")).key_by(|c: &Click| c.user.clone());
    clicks
        .clone()
        .window(TumblingEventTimeWindows::of(Duration::from_millis(args.window_ms)), at)
        .aggregate(Count)
        .uid("clicks-per-window")
        .map(|w| WindowCount { user: w.key, window_start: w.window.start, clicks: w.value })
        .sink_to(sink)
        .uid("window-counts-out");
    clicks
        .process(RunningCount::open)
        .uid("clicks-per-user")
        .map(|(user, total)| format!("{user}\t{total}"))
        .sink_to(FileSink::exactly_once(args.job.dir.join("totals")))
        .uid("totals");
    let result = rill::execute_with_progress(env, "clicks").context("clicks job failed")?;

    let secs = result.elapsed.as_secs_f64().max(1e-9);
    println!(
        "records={} elapsed_ms={} records_per_sec={:.0} checkpoints={} restarts={} stopped={} restored_from={}",
        result.records,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.checkpoints,
        result.restarts,
        result.stopped,
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
    );
    Ok(())
}
