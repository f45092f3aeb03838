//! The rill runtime: job graphs, parallel subtasks, channels, barrier alignment, checkpoint
//! coordination, restore and restart.
//!
//! - Build a job with [`StreamEnv`]: sources, chained operators, partitioning (forward, hash by
//!   key group, rebalance, broadcast), union, sinks.
//! - Every subtask runs on its own thread; bounded channels carry one [`Message`] enum, so a slow
//!   sink back-pressures the sources. Forward operators are chained in one thread.
//! - Checkpoints are asynchronous barrier snapshots: the coordinator triggers sources, barriers
//!   are aligned by [`BarrierAligner`] before operators see them, and a checkpoint is complete only
//!   when every subtask acknowledged and its manifest is durable; then operators get `on_commit`.
//! - On start the latest complete checkpoint is restored (also at another parallelism); a failing
//!   task restarts the job from it under a [`RestartStrategy`].
//! - Event time: watermarks flow with the data; a subtask's watermark is the minimum over its
//!   inputs ([`WatermarkMerger`]), idle inputs (`Message::Idle`) do not hold it back, optional
//!   watermark alignment pauses inputs that run ahead, and a finished source emits
//!   [`Watermark::MAX`] before end of input. Operators see processing time advance through
//!   `on_processing_time` ticks of a [`ProcessingClock`]. `OperatorHarness` (feature
//!   `test-utils`) drives one operator by hand for deterministic tests.
//!
//! Depends on `rill-state` (RocksDB keyed state, manifests) and `crossbeam-channel`.
#![warn(missing_docs)]

mod align;
mod chain;
mod clock;
mod config;
mod coordinator;
mod error;
mod execute;
mod graph;
#[cfg(any(test, feature = "test-utils"))]
mod harness;
mod message;
mod operator;
mod partition;
mod restore;
mod stream;
mod task;
mod watermark_merger;

pub use align::BarrierAligner;
pub use clock::ProcessingClock;
pub use config::{JobConfig, RestartStrategy, StreamEnvBuilder};
pub use coordinator::{complete_checkpoint, AckOutcome, PendingCheckpoint};
pub use error::{Result, RuntimeError};
pub use execute::JobResult;
#[cfg(any(test, feature = "test-utils"))]
pub use harness::{HarnessSnapshot, OperatorHarness};
pub use message::{Barrier, Message, Watermark};
pub use operator::{Collector, Context, Operator, Source, SourcePoll, TaskInfo, TaskState};
pub use partition::Partitioner;
pub use stream::{DataStream, KeyedStream, StreamEnv};
pub use watermark_merger::{MergedProgress, WatermarkMerger};
