//! Copies a Kinesis stream into another: every record's data unchanged, with its partition key.
//!
//! `cargo run --release --example kinesis_pipe -- --endpoint URL --region R --source-stream IN
//!  --sink-stream OUT --parallelism P --dir DIR --checkpoint-interval-ms MS --idle-exit-ms IDLE
//!  [--ordering]`
//!
//! The flags every job shares (`rill::cli::JobArgs`): `--parallelism`, `--dir`,
//! `--checkpoint-interval-ms`, `--checkpoint-location`, `--checkpoint-timeout-ms`,
//! `--tolerable-checkpoint-failures`, `--restore-from`, `--metrics-addr`, `--restart-strategy`,
//! `--inject-failure-every-ms`.
//!
//! Reads IN from TRIM_HORIZON with the Kinesis source and writes OUT with the Kinesis sink.
//! Re-running the same command resumes from the latest complete checkpoint in DIR. After IDLE ms
//! without input it takes a final checkpoint, exits 0 and prints one last line
//! `records=N elapsed_ms=T records_per_sec=X restored_from=ID|none sent=S throttled=H restarts=R`
//! (records the sink stored, entries Kinesis throttled, restarts after task failures).
//!
//! `--ordering` keeps the order of each partition key's records in OUT, also across throttling
//! and retries (one record per key in flight at a time).
//!
//! Guarantee: every record of IN is in OUT at least once, whatever crashes happen; exactly once
//! in a run without failures (a restart re-sends what came after the last checkpoint).
//!
//! Credentials: the AWS default chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile, ...).
//! When no `AWS_ACCESS_KEY_ID` is set and the endpoint is on this machine (an emulator), fixed
//! dummy keys are used, since emulators check none.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rill::prelude::*;
use rill_kinesis_common::KinesisConnection;
use rill_kinesis_sink::{KinesisSink, Partitioner};
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
    /// Stream to read (from TRIM_HORIZON).
    #[arg(long)]
    source_stream: String,
    /// Stream to write.
    #[arg(long)]
    sink_stream: String,
    /// Finish after this long without input.
    #[arg(long)]
    idle_exit_ms: u64,
    /// Keep per-partition-key order in OUT across retries.
    #[arg(long)]
    ordering: bool,
}

/// A record on its way through: partition key and data.
type Passing = (String, Vec<u8>);

fn connection(args: &Args) -> anyhow::Result<KinesisConnection> {
    Ok(KinesisConnection::builder()
        .region(&args.region)
        .endpoint(&args.endpoint)
        .dummy_credentials_for_local_endpoint()
        .build()?)
}

fn main() -> anyhow::Result<()> {
    rill::init_logging();
    let args = Args::parse();
    let connection = connection(&args)?;

    let passthrough = |r: &KinesisRecord<'_>| -> Result<Passing, DeserializeError> {
        Ok((r.partition_key.to_string(), r.data.to_vec()))
    };
    let source = KinesisSource::builder(passthrough)
        .connection(connection.clone())
        .stream(&args.source_stream)
        .initial_position(InitialPosition::TrimHorizon)
        .stop_when_idle(Duration::from_millis(args.idle_exit_ms))
        .build()
        .context("invalid source configuration")?;
    let sink = KinesisSink::<Passing>::builder()
        .connection(connection)
        .stream(&args.sink_stream)
        .serializer(|(_, data)| data)
        .partitioner(Partitioner::from_record(|(key, _): &Passing| key.clone()))
        .ordering(args.ordering)
        .build()
        .context("invalid sink configuration")?;

    let env = args.job.builder().build()?;
    let sink_stats = sink.stats();
    args.job.inject_failures(env.source("kinesis-in", source).uid("kinesis-in")).sink_to(sink).uid("kinesis-out");
    let result = rill::execute_with_progress(env, "kinesis-pipe").context("kinesis-pipe job failed")?;

    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let sent = sink_stats.snapshot();
    println!(
        "records={} elapsed_ms={} records_per_sec={:.0} restored_from={} sent={} throttled={} restarts={} stopped={}",
        result.records,
        result.elapsed.as_millis(),
        result.records as f64 / secs,
        result.restored_from.map_or_else(|| "none".to_string(), |id| id.to_string()),
        sent.records_sent,
        sent.throttles,
        result.restarts,
        result.stopped,
    );
    Ok(())
}
