//! `kinesis-limits`: runs the limits proxy in front of a Kinesis emulator until killed.
//!
//! Prints `kinesis-limits listening on HOST:PORT` on stdout once it accepts calls, logs to
//! stderr (`RUST_LOG`, default `info`), and every 5 s logs what it admitted and throttled when
//! that changed.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rill_kinesis_limits::{Limits, LimitsProxy, Stats};
use tracing_subscriber::EnvFilter;

/// How often the summary is logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// An HTTP proxy in front of a Kinesis emulator that enforces AWS's per-shard limits.
#[derive(Debug, Parser)]
#[command(name = "kinesis-limits", version)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:4570 (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// The emulator's URL, e.g. http://127.0.0.1:4567.
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// Bytes GetRecords may return per shard per second [AWS: 2 MiB].
    #[arg(long, value_name = "B", default_value_t = Limits::default().read_bytes_per_shard)]
    read_bytes_per_shard: u64,
    /// GetRecords calls per shard per second [AWS: 5].
    #[arg(long, value_name = "N", default_value_t = Limits::default().reads_per_shard)]
    reads_per_shard: u32,
    /// Bytes (data + partition key) written per shard per second [AWS: 1 MiB].
    #[arg(long, value_name = "B", default_value_t = Limits::default().write_bytes_per_shard)]
    write_bytes_per_shard: u64,
    /// Records written per shard per second [AWS: 1000].
    #[arg(long, value_name = "N", default_value_t = Limits::default().write_records_per_shard)]
    write_records_per_shard: u32,
    /// Factor applied to every control-plane rate [AWS: 1.0].
    #[arg(long, value_name = "F", default_value_t = Limits::default().control_plane_scale)]
    control_plane_scale: f64,
}

impl Args {
    fn limits(&self) -> Limits {
        Limits {
            read_bytes_per_shard: self.read_bytes_per_shard,
            reads_per_shard: self.reads_per_shard,
            write_bytes_per_shard: self.write_bytes_per_shard,
            write_records_per_shard: self.write_records_per_shard,
            control_plane_scale: self.control_plane_scale,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let limits = args.limits();
    let proxy = match LimitsProxy::start(args.listen, &args.upstream, limits.clone()).await {
        Ok(proxy) => proxy,
        Err(e) => {
            tracing::error!(error = %e, "kinesis-limits cannot start");
            eprintln!("kinesis-limits: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %proxy.local_addr(), upstream = %args.upstream, ?limits, "kinesis-limits listening");
    println!("kinesis-limits listening on {}", proxy.local_addr());
    let _ = std::io::stdout().flush();

    let mut last = Stats::default();
    let mut ticks = tokio::time::interval(SUMMARY_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let now = proxy.stats();
        if let Some(summary) = now.summary_since(&last) {
            tracing::info!("last {} s: {summary}", SUMMARY_EVERY.as_secs());
        }
        last = now;
    }
}
