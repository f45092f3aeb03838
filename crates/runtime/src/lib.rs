//! The rill runtime: job graphs, parallel subtasks, channels, barrier alignment, checkpoint
//! coordination, restore and restart.
//!
//! - Build a job with [`StreamEnv`]: sources, chained operators, partitioning (forward, hash by
//!   key group, rebalance, broadcast), union, two inputs into one operator (`connect`), sinks. The graph is a DAG: clone a stream to feed
//!   several operators.
//! - What a job is given is a description: an [`OperatorFactory`], [`SourceFactory`] or
//!   [`TwoPhaseCommitSink`], shared by all subtasks. Each subtask opens it, after its state is
//!   restored, into the running [`Operator`] or [`Source`] (one required method, default hooks):
//!   state handles are plain fields, and no code path sees an operator that is not opened yet.
//! - Every subtask runs on its own thread; bounded channels carry one [`Message`] enum, so a slow
//!   sink back-pressures the sources. Operators between exchanges are chained in one thread.
//! - Checkpoints are asynchronous barrier snapshots: the coordinator triggers sources, barriers
//!   are aligned by the runtime's input gate before operators see them, and a checkpoint is
//!   complete only when every subtask acknowledged and its manifest is durable; then operators get
//!   `on_commit` (two-phase commit: [`TwoPhaseCommitSink`]).
//! - On start the latest complete checkpoint is restored (also at another parallelism); a failing
//!   task restarts the job from it under a [`RestartStrategy`], unless its error is fatal
//!   ([`ErrorClass`]). Errors of user code ([`BoxError`]) are wrapped with the operator and
//!   subtask they came from.
//! - Event time: watermarks flow with the data; a subtask's watermark is the minimum over its
//!   inputs, idle inputs (`Message::Idle`) do not hold it back, optional watermark alignment
//!   pauses inputs that run ahead, and a finished source emits [`Watermark::MAX`] before end of
//!   input. Operators see processing time advance through `on_processing_time` ticks of a
//!   [`ProcessingClock`]. `OperatorHarness` (feature `test-utils`) drives one operator by hand.
//!
//! Depends on `rill-state` (RocksDB keyed state, manifests), `crossbeam-channel`, and `serde` with
//! `bincode` for typed operator state.

mod align;
mod chain;
mod clock;
mod config;
mod connect;
mod context;
mod coordinator;
mod error;
mod execute;
mod graph;
#[cfg(any(test, feature = "test-utils"))]
mod harness;
mod key_selector;
mod message;
mod operator;
mod operator_watermark;
mod panics;
mod partition;
mod pending_checkpoint;
mod requests;
mod restart;
mod restore;
mod signals;
mod source;
mod stream;
mod task;
mod two_phase;
mod uids;
mod watermark_merger;

pub use clock::ProcessingClock;
pub use config::{JobConfig, StreamEnvBuilder};
pub use connect::{BroadcastConnectedStreams, CoInput, ConnectedKeyedStreams, ConnectedStreams};
pub use context::{Collector, OpenContext, OperatorContext, TaskInfo, UnionState};
pub use error::{classified, fatal, BoxError, ErrorClass, FatalError, OperatorResult, Result, RuntimeError};
pub use execute::JobResult;
#[cfg(any(test, feature = "test-utils"))]
pub use harness::{HarnessSnapshot, OperatorHarness};
pub use key_selector::KeySelector;
pub use message::{Barrier, Message, Watermark};
pub use operator::{ClonePerSubtask, Operator, OperatorFactory};
pub use restart::RestartStrategy;
pub use rill_observe::{JobMonitor, JobState, ShardView};
pub use source::{Positions, Source, SourceFactory, SourcePoll};
pub use stream::{DataStream, DataStreamSink, KeyedStream, StreamEnv};
pub use two_phase::{CommitOutcome, SinkWriter, TwoPhaseCommit, TwoPhaseCommitOperator, TwoPhaseCommitSink, Txn};
