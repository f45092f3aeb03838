//! **rill**: stream processing in Rust with exactly-once checkpoints.
//!
//! One dependency for a job. Write a dataflow against [`StreamEnv`], run it at a chosen
//! parallelism with periodic checkpoints, kill the process at any moment, start it again with the
//! same command, and every input is counted exactly once.
//!
//! ```
//! use rill::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let env = StreamEnv::builder().parallelism(2).checkpoint_dir(dir.path()).build()?;
//! let (sink, out) = CollectSink::new();
//! env.source("numbers", GeneratorSource::new(0..100))
//!     .key_by(|n: &u64| n % 3)
//!     .reduce(|a, b| a + b)
//!     .sink_to(sink);
//! env.execute("sum-by-residue")?;
//! let out = out.lock().unwrap();
//! assert_eq!(out.len(), 100);
//! assert!(out.contains(&(0..100).filter(|n| n % 3 == 0).sum::<u64>()));
//! # Ok(())
//! # }
//! ```
//!
//! With the feature `cli`, [`cli::JobArgs`] gives a job program the flags every rill job takes
//! (parallelism, checkpoints, restore, restart strategy, metrics address), through `clap`.
//!
//! Crates behind the facade: `rill-runtime` (graph, subtasks, barriers, checkpoint coordinator,
//! restore, restart), `rill-state` (RocksDB keyed state, manifests), `rill-storage` (object-store
//! locations), `rill-operators` (operators, sources, sinks), `rill-observe` (live status,
//! Prometheus metrics, dashboard, progress line).

#[cfg(feature = "cli")]
pub mod cli;

/// The README's Rust code, compiled as a doc-test so that the first job a reader sees builds.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Kinesis connection, credentials and Flink `aws.*` properties (shared by source and sink).
pub use rill_kinesis_common as kinesis_common;
/// The at-least-once Kinesis sink.
pub use rill_kinesis_sink as kinesis_sink;
/// The exactly-once Kinesis source.
pub use rill_kinesis_source as kinesis_source;
/// Live status, metrics, the dashboard and the progress line.
pub use rill_observe as observe;
pub use rill_operators as operators;
pub use rill_runtime as runtime;
pub use rill_state as state;
/// Object-store locations (`s3://bucket/prefix`): checkpoints and sink output beyond the disk.
pub use rill_storage as storage;

pub use rill_observe::{JobMonitor, Progress};
pub use rill_operators::{
    committed_lines, committed_part_files, AggregateFunction, BroadcastConnectedStreamsExt, BroadcastState,
    CoProcessFunction, CollectSink, ConnectedKeyedStreamsExt, ConnectedStreamsExt, Count, DiscardSink,
    EventTimeSessionWindows, FileSink, GeneratorSource, InjectFailures, IntervalJoinExt, JoinTimes,
    KeyedBroadcastProcessFunction, KeyedCoProcessFunction, KeyedContext, KeyedProcessFunction, KeyedStreamExt,
    ObjectStoreSink, PrintSink, ProcessJoinFunction, ProcessWindowFunction, RunningCount, SlidingEventTimeWindows,
    StateRegistry, StateTtlConfig, StreamExt, TimeDomain, TimeWindow, TtlListState, TtlMapState, TtlUpdate,
    TtlValueState, TumblingEventTimeWindows, WatermarkGenerator, WatermarkOutput, WatermarkStrategy, WindowAssigner,
    WindowOutput, Windowed, WindowedStream,
};
pub use rill_runtime::{
    fatal, Barrier, BoxError, BroadcastConnectedStreams, ClonePerSubtask, CoInput, Collector, CommitOutcome,
    ConnectedKeyedStreams, ConnectedStreams, DataStream, DataStreamSink, ErrorClass, JobResult, KeyedStream,
    OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult, ProcessingClock, RestartStrategy, Result,
    RuntimeError, SinkWriter, Source, SourceFactory, SourcePoll, StreamEnv, TwoPhaseCommit, TwoPhaseCommitSink,
    Watermark,
};
pub use rill_state::{KeyedStateConfig, ListState, MapState, ValueState};
/// serde, re-exported so that a job's record and state types can derive `Serialize` and
/// `Deserialize` with `rill` as the only dependency (`#[derive(rill::serde::Serialize)]` with
/// `#[serde(crate = "rill::serde")]`).
pub use serde;

/// Logs rill's warnings (a skipped corrupt checkpoint, late records, rolled-back output, a
/// restart and its cause) to stderr: `warn` and above by default, or what `RUST_LOG` says
/// (`RUST_LOG=rill_runtime=debug` shows every checkpoint). Call it once at the start of `main`;
/// without a `tracing` subscriber nothing is logged. A second call does nothing.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a log file or a pipe gets plain text, no ANSI escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// Runs `env`'s job as [`StreamEnv::execute`] does, showing its progress on standard error
/// meanwhile: a live line (records/s, checkpoints, lag) on a terminal, a plain line every 10
/// seconds otherwise.
pub fn execute_with_progress(env: StreamEnv, job: &str) -> Result<JobResult> {
    let progress = Progress::start(env.monitor());
    let result = env.execute(job);
    progress.finish();
    result
}

/// Where a job's line output goes: a local directory ([`FileSink`]) or an object store
/// ([`ObjectStoreSink`]).
#[derive(Debug)]
pub struct OutputLocation(pub rill_storage::Location);

impl OutputLocation {
    /// `location` if given (`s3://bucket/prefix`, configured from the standard AWS variables, or
    /// a local directory: [`rill_storage::Location::parse`]), else the directory `default`.
    pub fn parse(location: Option<&str>, default: std::path::PathBuf) -> Result<Self> {
        match location {
            Some(text) => rill_storage::Location::parse(text)
                .map(OutputLocation)
                .map_err(|e| rill_runtime::RuntimeError::Config(format!("output location: {e}"))),
            None => Ok(OutputLocation(rill_storage::Location::Directory(default))),
        }
    }

    /// Ends `lines` in the exactly-once sink for this location, one `Display` line per record.
    pub fn sink<T: std::fmt::Display + Send + 'static>(self, lines: DataStream<T>) -> DataStreamSink {
        self.sink_encoded(
            lines,
            std::sync::Arc::new(|t: &T, buf: &mut Vec<u8>| {
                use std::io::Write as _;
                let _ = writeln!(buf, "{t}");
            }),
        )
    }

    /// Ends `records` in the exactly-once sink for this location, encoded by `encode`.
    pub fn sink_encoded<T: Send + 'static>(
        self,
        records: DataStream<T>,
        encode: rill_operators::Encoder<T>,
    ) -> DataStreamSink {
        use rill_operators::StreamExt as _;
        match self.0 {
            rill_storage::Location::Directory(dir) => records.sink_to(FileSink::with_encoder(dir, encode)),
            rill_storage::Location::ObjectStore(location) => {
                records.sink_to(ObjectStoreSink::with_encoder(location, encode))
            }
        }
    }
}

/// Everything a job names or implements: `use rill::prelude::*;`. The operator, source and sink
/// traits with their contexts and the barrier they get, state handles, windows, watermarks, and
/// the built-in sources and sinks.
pub mod prelude {
    pub use crate::{
        fatal, AggregateFunction, Barrier, BroadcastConnectedStreamsExt, BroadcastState, ClonePerSubtask,
        CoProcessFunction, CollectSink, CommitOutcome, ConnectedKeyedStreamsExt, ConnectedStreamsExt, Count,
        DataStream, DiscardSink, EventTimeSessionWindows, FileSink, GeneratorSource, IntervalJoinExt, JoinTimes,
        KeyedBroadcastProcessFunction, KeyedCoProcessFunction, KeyedContext, KeyedProcessFunction, KeyedStream,
        KeyedStreamExt, ListState, MapState, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult,
        PrintSink, ProcessWindowFunction, RunningCount, SinkWriter, SlidingEventTimeWindows, Source, SourceFactory,
        SourcePoll, StateRegistry, StateTtlConfig, StreamEnv, StreamExt, TimeDomain, TimeWindow, TtlUpdate,
        TumblingEventTimeWindows, TwoPhaseCommit, TwoPhaseCommitSink, ValueState, Watermark, WatermarkGenerator,
        WatermarkOutput, WatermarkStrategy, WindowAssigner, WindowOutput, Windowed,
    };
    pub use rill_runtime::Collector;
}
