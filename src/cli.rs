//! A job's command line, once: the flags every rill job program takes, as a `clap` [`Args`]
//! struct to `#[command(flatten)]` into a program's own (feature `cli`).
//!
//! ```no_run
//! use clap::Parser;
//! use rill::prelude::*;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     job: rill::cli::JobArgs,
//!     /// Records to generate.
//!     #[arg(long)]
//!     records: u64,
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     let args = Args::parse();
//!     let env = args.job.builder().build()?;
//!     let numbers = args.job.inject_failures(env.source("numbers", GeneratorSource::new(0..args.records)));
//!     numbers.key_by(|n: &u64| n % 10).process(RunningCount::open).sink_to(DiscardSink);
//!     env.execute("numbers")?;
//!     Ok(())
//! }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::observe::ControlToken;
use crate::{DataStream, RestartStrategy, StreamEnv};

/// The flags every job program shares, with the same names and meanings in all of them.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// Parallelism of the job's operators.
    #[arg(long, default_value_t = 2)]
    pub parallelism: usize,
    /// The job's directory: checkpoints (`DIR/checkpoints` unless --checkpoint-location) and,
    /// unless the job says otherwise, its output.
    #[arg(long)]
    pub dir: PathBuf,
    /// Checkpoint interval; 0 disables periodic checkpoints.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_interval_ms: u64,
    /// Where checkpoints are kept: a local directory or `s3://bucket/prefix` (endpoint and
    /// credentials from the standard AWS variables). Default: `DIR/checkpoints`.
    #[arg(long)]
    pub checkpoint_location: Option<String>,
    /// A checkpoint not complete within this long is abandoned (default: 10 minutes).
    #[arg(long)]
    pub checkpoint_timeout_ms: Option<u64>,
    /// Checkpoints that may fail in a row before the job fails over.
    #[arg(long, default_value_t = 0)]
    pub tolerable_checkpoint_failures: usize,
    /// Restore this checkpoint id instead of the latest complete one.
    #[arg(long)]
    pub restore_from: Option<u64>,
    /// Serve /metrics (Prometheus), the live dashboard and the REST API on HOST:PORT.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the control API (savepoints, stop) on HOST:PORT instead of the metrics address (which
    /// then serves control only when it is a loopback address or a control token is set).
    #[arg(long)]
    pub control_addr: Option<SocketAddr>,
    /// The token control requests must carry (`Authorization: Bearer TOKEN`); default: the
    /// RILL_CONTROL_TOKEN environment variable (which, unlike a flag, other users of the machine
    /// cannot read). Never printed.
    #[arg(long, value_parser = control_token)]
    pub control_token: Option<ControlToken>,
    /// Restart strategy: none, default, fixed-delay:RESTARTS:DELAY_MS,
    /// failure-rate:FAILURES:INTERVAL_MS:DELAY_MS, exponential-delay:INITIAL_MS:MAX_MS or
    /// exponential-delay:INITIAL_MS:MAX_MS:RESET_MS.
    #[arg(long, default_value = "default")]
    pub restart_strategy: RestartStrategy,
    /// Panic a task at a random record about every MS milliseconds of processing (in-process
    /// failures for the restart strategy to handle).
    #[arg(long)]
    pub inject_failure_every_ms: Option<u64>,
}

/// `--control-token`: a non-empty token.
fn control_token(text: &str) -> Result<ControlToken, String> {
    ControlToken::new(text).ok_or_else(|| "the control token must not be empty".to_string())
}

impl JobArgs {
    /// A job builder configured from these flags (more settings may follow before `build`).
    pub fn builder(&self) -> crate::runtime::StreamEnvBuilder {
        let mut builder = StreamEnv::builder()
            .parallelism(self.parallelism)
            .checkpoint_interval(Duration::from_millis(self.checkpoint_interval_ms))
            .checkpoint_dir(self.dir.join("checkpoints"))
            .tolerable_checkpoint_failures(self.tolerable_checkpoint_failures)
            .restart_strategy(self.restart_strategy)
            .metrics_addr(self.metrics_addr)
            .control_addr(self.control_addr);
        if let Some(token) = &self.control_token {
            builder = builder.control_token_of(token.clone());
        }
        if let Some(location) = &self.checkpoint_location {
            builder = builder.checkpoint_location(location);
        }
        if let Some(ms) = self.checkpoint_timeout_ms {
            builder = builder.checkpoint_timeout(Duration::from_millis(ms));
        }
        if let Some(id) = self.restore_from {
            builder = builder.restore_from(id);
        }
        builder
    }

    /// `stream`, with a task failing about every `--inject-failure-every-ms` if given.
    pub fn inject_failures<T: Send + 'static>(&self, stream: DataStream<T>) -> DataStream<T> {
        match self.inject_failure_every_ms {
            Some(ms) => stream.transform("inject-failures", crate::InjectFailures::every(Duration::from_millis(ms))),
            None => stream,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Program {
        #[command(flatten)]
        job: JobArgs,
    }

    #[test]
    fn the_shared_flags_parse_with_their_defaults() {
        let p = Program::try_parse_from(["job", "--dir", "/tmp/j"]).unwrap();
        assert_eq!(p.job.parallelism, 2);
        assert_eq!(p.job.checkpoint_interval_ms, 1000);
        assert_eq!(p.job.dir, PathBuf::from("/tmp/j"));
        assert!(p.job.restore_from.is_none() && p.job.metrics_addr.is_none());
        let p = Program::try_parse_from([
            "job",
            "--dir",
            "d",
            "--parallelism",
            "3",
            "--restart-strategy",
            "none",
            "--restore-from",
            "7",
            "--metrics-addr",
            "127.0.0.1:9000",
        ])
        .unwrap();
        assert_eq!((p.job.parallelism, p.job.restore_from), (3, Some(7)));
        assert!(Program::try_parse_from(["job"]).is_err(), "--dir is required");
    }
}
