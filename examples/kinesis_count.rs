//! Keyed running count over Kinesis records, with exactly-once output.
//!
//! `cargo run --release --example kinesis_count -- --endpoint URL --region R --stream NAME[,NAME...]
//!  --parallelism P --dir DIR --checkpoint-interval-ms MS --initial-position TRIM_HORIZON|LATEST|AT_TIMESTAMP
//!  [--timestamp UNIX_SECONDS] --idle-exit-ms IDLE [--read-bytes-per-shard B]`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
//!
//! Counts records per partition key and writes `key<TAB>count` for every record to the
//! exactly-once file sink in `DIR/output` (committed `part-*` files). Running the same command
//! again resumes from the latest complete checkpoint in `DIR/checkpoints`. When no record has
//! arrived for IDLE ms, the job takes a final checkpoint, commits, prints one last line
//! `records=N shards=S elapsed_ms=T records_per_sec=X restored_from=ID|none bytes=B
//! get_records_calls=C throttles=H restarts=R` and exits 0 (bytes, calls and throttles of the
//! source in this run; restarts after task failures).
//!
//! Credentials: the AWS default chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile,
//! ...). With an endpoint on this machine (an emulator) and no `AWS_ACCESS_KEY_ID`, fixed dummy
//! keys are used, since emulators check none.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use rill::prelude::*;
use rill::RunningCount;
use rill_kinesis_common::KinesisConnection;
use rill_kinesis_source::{DeserializeError, InitialPosition, KinesisRecord, KinesisSource};

#[derive(Parser, Debug)]
struct Args {
    /// The flags every job shares: parallelism, checkpoints, restore, restart strategy, metrics.
    #[command(flatten)]
    job: rill::cli::JobArgs,
    /// Kinesis endpoint, e.g. http://127.0.0.1:4567.
    #[arg(long)]
    endpoint: String,
    /// AWS region.
    #[arg(long)]
    region: String,
    /// Stream(s) to read, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    stream: Vec<String>,
    /// Where the counts are written: a local directory or `s3://bucket/prefix`. Default: `DIR/output`.
    #[arg(long)]
    output: Option<String>,
    /// Where shards start when DIR holds no checkpoint.
    #[arg(long, value_enum)]
    initial_position: Position,
    /// Start time for AT_TIMESTAMP, in (possibly fractional) unix seconds.
    #[arg(long)]
    timestamp: Option<f64>,
    /// Finish after this long without a record.
    #[arg(long)]
    idle_exit_ms: u64,
    /// The read rate per shard adaptive reads aim at (the Kinesis limit by default; lower it
    /// to match a scaled-down `kinesis-limits` proxy).
    #[arg(long, default_value_t = rill_kinesis_source::DEFAULT_READ_BYTES_PER_SECOND)]
    read_bytes_per_shard: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum Position {
    TrimHorizon,
    Latest,
    AtTimestamp,
}

fn connection(args: &Args) -> anyhow::Result<KinesisConnection> {
    Ok(KinesisConnection::builder()
        .region(&args.region)
        .endpoint(&args.endpoint)
        .dummy_credentials_for_local_endpoint()
        .build()?)
}

fn initial_position(args: &Args) -> anyhow::Result<InitialPosition> {
    Ok(match args.initial_position {
        Position::TrimHorizon => InitialPosition::TrimHorizon,
        Position::Latest => InitialPosition::Latest,
        Position::AtTimestamp => {
            let secs = args.timestamp.context("--timestamp UNIX_SECONDS is required with AT_TIMESTAMP")?;
            anyhow::ensure!(secs.is_finite() && secs >= 0.0, "--timestamp must be non-negative unix seconds");
            InitialPosition::AtTimestamp { millis: (secs * 1000.0).round() as i64 }
        }
    })
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    anyhow::ensure!(args.idle_exit_ms > 0, "--idle-exit-ms must be positive");
    let idle = Duration::from_millis(args.idle_exit_ms);

    let partition_key = |r: &KinesisRecord<'_>| -> Result<String, DeserializeError> { Ok(r.partition_key.to_string()) };
    let source = KinesisSource::builder(partition_key)
        .connection(connection(&args)?)
        .streams(args.stream.iter().cloned())
        .initial_position(initial_position(&args)?)
        .discovery_interval((idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(10)))
        .stop_when_idle(idle)
        .adaptive_reads(Some(args.read_bytes_per_shard))
        .build()
        .context("invalid Kinesis source configuration")?;

    let env = args.job.builder().build()?;
    let stats = source.stats_handle();
    let counts = args
        .job
        .inject_failures(env.source("kinesis", source).uid("kinesis"))
        .key_by(|key: &String| key.clone())
        .process(RunningCount::open)
        .uid("counts")
        .map(|(key, count)| format!("{key}\t{count}"));
    rill::OutputLocation::parse(args.output.as_deref(), args.job.dir.join("output"))?.sink(counts).uid("output");
    let result = rill::execute_with_progress(env, "kinesis-count").context("kinesis-count job failed")?;

    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let stats = stats();
    println!(
        "records={} shards={} elapsed_ms={} records_per_sec={:.0} restored_from={} bytes={} get_records_calls={} \
         throttles={} restarts={} stopped={}",
        result.records,
        stats.shards,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.restored_from.map_or("none".to_string(), |id| id.to_string()),
        stats.bytes,
        stats.get_records_calls,
        stats.throttles,
        result.restarts,
        result.stopped,
    );
    Ok(())
}
