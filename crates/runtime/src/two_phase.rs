//! Two-phase-commit sinks: exactly-once output through checkpoints (Flink's
//! `TwoPhaseCommittingSink`: a writer per subtask, a committer shared by all).
//!
//! 1. **Write**: records go into the subtask's open transaction ([`SinkWriter::write`]).
//! 2. **Pre-commit** at each barrier: the writer seals its transaction and returns it
//!    ([`SinkWriter::pre_commit`]); the runtime stores every sealed, uncommitted transaction in the
//!    checkpoint (typed union state).
//! 3. **Commit** once that checkpoint is complete: [`TwoPhaseCommitSink::commit`] for each of them.
//! 4. **Recover** on restore: the transactions of the restored checkpoint are committed again
//!    (commits are idempotent), each by one subtask, then [`TwoPhaseCommitSink::abort_others`]
//!    discards what earlier attempts left that no complete checkpoint holds.
//!
//! Wrap a sink in [`TwoPhaseCommit`] to use it as an operator factory.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::{Collector, OpenContext, OperatorContext, UnionState};
use crate::{Barrier, Operator, OperatorFactory, OperatorResult, TaskInfo};

/// The writing half of a two-phase-commit sink, one per subtask.
pub trait SinkWriter<T>: Send + 'static {
    /// A sealed transaction: what the committer needs to make it visible (a file name, an upload
    /// id, a row range). Stored in checkpoints, so it must serialize.
    type Transaction: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// Adds one record to the open transaction.
    fn write(&mut self, record: T) -> OperatorResult;

    /// Seals the open transaction at `barrier` (flushed and durable, not yet visible) and
    /// returns it; `None` if nothing was written since the last one. At the barrier of the last
    /// checkpoint of a run (`barrier.then_stop`: all input ended, or the job is stopping) nothing
    /// is written after it, so a writer need not prepare for more.
    fn pre_commit(&mut self, barrier: Barrier) -> OperatorResult<Option<Self::Transaction>>;
}

/// A sink with exactly-once output: the description shared by all subtasks, which opens their
/// writers and commits their transactions.
pub trait TwoPhaseCommitSink<T>: Send + Sync + 'static {
    /// The writer of one subtask.
    type Writer: SinkWriter<T>;

    /// Opens the writer of one subtask (after recovery).
    fn open_writer(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Writer>;

    /// Makes a sealed transaction visible. Must be idempotent: after a crash the same transaction
    /// is committed again, and committing one that is already visible succeeds
    /// ([`CommitOutcome::Committed`]). One whose result and source are both gone (a consumer
    /// moved the output, a lifecycle rule expired it) is [`CommitOutcome::Missing`], never an
    /// error: no retry could bring it back.
    fn commit(&self, transaction: &Txn<T, Self>) -> OperatorResult<CommitOutcome>;

    /// On open, after the restored checkpoint's transactions (`kept`, those of every subtask) were
    /// committed: discard what earlier attempts left behind that no complete checkpoint holds.
    /// Called in every subtask; `ctx.restored_checkpoint()` tells which checkpoint was restored.
    fn abort_others(&self, _ctx: &mut OpenContext<'_>, _kept: &[Txn<T, Self>]) -> OperatorResult {
        Ok(())
    }
}

/// What committing one transaction found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The transaction's result is visible: made so now, or found there already.
    Committed,
    /// Neither its result nor what it would be made from exists any more: nothing can be done.
    /// The runtime warns, naming `what`, counts it in `rill_sink_commits_missing_total`, and
    /// goes on (Flink treats such a transaction as committed).
    Missing {
        /// The transaction as a person would look for it (files, objects, upload ids).
        what: String,
    },
}

/// Commits one transaction of `sink`; a missing one is reported and counted, not an error.
fn commit_one<T, S: TwoPhaseCommitSink<T>>(
    sink: &S,
    transaction: &Txn<T, S>,
    info: &TaskInfo,
    epoch: u64,
) -> OperatorResult {
    if let CommitOutcome::Missing { what } = sink.commit(transaction)? {
        tracing::warn!(task = %info.name(), epoch, transaction = %what,
            "a committed transaction's output is gone and cannot be committed again (moved or expired); skipped");
        metrics::counter!("rill_sink_commits_missing_total", "job" => info.job.clone(), "vertex" => info.vertex.clone(),
            "subtask" => info.subtask.to_string())
        .increment(1);
    }
    Ok(())
}

/// The transaction type of sink `S` over records `T`.
pub type Txn<T, S> = <<S as TwoPhaseCommitSink<T>>::Writer as SinkWriter<T>>::Transaction;

/// A sealed transaction waiting for its checkpoint, as stored in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending<X> {
    epoch: u64,
    transaction: X,
}

/// Runs a [`TwoPhaseCommitSink`] as the last operator of a stream (an operator factory).
pub struct TwoPhaseCommit<S>(Arc<S>);

impl<S> TwoPhaseCommit<S> {
    /// Wraps `sink`.
    pub fn new(sink: S) -> Self {
        TwoPhaseCommit(Arc::new(sink))
    }
}

impl<T, S> OperatorFactory<T, ()> for TwoPhaseCommit<S>
where
    T: Send + 'static,
    S: TwoPhaseCommitSink<T>,
{
    type Operator = TwoPhaseCommitOperator<T, S>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Operator> {
        let (state, restored) = ctx.union_state::<Pending<Txn<T, S>>>()?;
        let (subtask, parallelism) = (ctx.info().subtask, ctx.info().parallelism);
        // Each restored transaction is committed by exactly one subtask.
        for (i, pending) in restored.iter().enumerate() {
            if i % parallelism == subtask {
                commit_one(self.0.as_ref(), &pending.transaction, ctx.info(), pending.epoch)?;
            }
        }
        let kept: Vec<Txn<T, S>> = restored.into_iter().map(|p| p.transaction).collect();
        self.0.abort_others(ctx, &kept)?;
        let writer = self.0.open_writer(ctx)?;
        Ok(TwoPhaseCommitOperator { sink: self.0.clone(), writer, pending: Vec::new(), state })
    }
}

/// The running operator of a [`TwoPhaseCommit`] sink.
pub struct TwoPhaseCommitOperator<T, S: TwoPhaseCommitSink<T>> {
    sink: Arc<S>,
    writer: S::Writer,
    pending: Vec<Pending<Txn<T, S>>>,
    state: UnionState<Pending<Txn<T, S>>>,
}

impl<T, S> Operator<T, ()> for TwoPhaseCommitOperator<T, S>
where
    T: Send + 'static,
    S: TwoPhaseCommitSink<T>,
{
    #[inline]
    fn process(&mut self, record: T, _ctx: &mut OperatorContext<'_>, _out: &mut Collector<()>) -> OperatorResult {
        self.writer.write(record)
    }

    fn on_barrier(
        &mut self,
        barrier: Barrier,
        ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<()>,
    ) -> OperatorResult {
        if let Some(transaction) = self.writer.pre_commit(barrier)? {
            self.pending.push(Pending { epoch: barrier.epoch, transaction });
        }
        self.state.snapshot(ctx, &self.pending)?;
        Ok(())
    }

    fn on_commit(&mut self, epoch: u64, ctx: &mut OperatorContext<'_>) -> OperatorResult {
        let (ready, later) = std::mem::take(&mut self.pending).into_iter().partition(|p| p.epoch <= epoch);
        self.pending = later;
        let ready: Vec<Pending<Txn<T, S>>> = ready;
        for pending in &ready {
            commit_one(self.sink.as_ref(), &pending.transaction, ctx.info(), pending.epoch)?;
        }
        Ok(())
    }
}
