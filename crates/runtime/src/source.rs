//! What user code implements for a parallel source: the running [`Source`] of one subtask, with
//! its typed position, and the [`SourceFactory`] that opens it from the restored positions.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::{Collector, Context, OpenContext};
use crate::{Barrier, OperatorResult};

/// What a source reports after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records were (or may soon be) emitted; poll again at once.
    Ready,
    /// Nothing to read now; poll again after at most this long.
    Idle(Duration),
    /// The source is exhausted for good.
    Finished,
}

/// The running source of one subtask. Its position is union operator state: every subtask's
/// positions go into the checkpoint, and on restore every subtask gets all of them (through
/// [`OpenContext::restored_union_state`]) and keeps its own, so a restore at another parallelism
/// can reassign splits.
pub trait Source<T>: Send + 'static {
    /// One entry of the source's checkpointed position (a split or shard and where it stands).
    type Position: Serialize + DeserializeOwned + Send + 'static;

    /// Emits a small batch. Must return within about 100 ms so that barriers are not delayed.
    fn poll(&mut self, ctx: &mut Context<'_>, out: &mut Collector<T>) -> OperatorResult<SourcePoll>;

    /// A checkpoint is taken at `barrier`: the position after every record emitted so far.
    fn on_barrier(&mut self, barrier: Barrier, ctx: &mut Context<'_>) -> OperatorResult<Vec<Self::Position>>;

    /// Checkpoint `epoch` is complete.
    fn on_commit(&mut self, _epoch: u64, _ctx: &mut Context<'_>) -> OperatorResult {
        Ok(())
    }

    /// The subtask is shutting down.
    fn on_close(&mut self, _ctx: &mut Context<'_>) -> OperatorResult {
        Ok(())
    }
}

/// The description of a source, opened once per subtask. Read the restored positions with
/// `ctx.restored_union_state::<S::Position>()`.
pub trait SourceFactory<T>: Send + Sync + 'static {
    /// The running source.
    type Source: Source<T>;

    /// Opens the source of one subtask.
    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<Self::Source>;
}

impl<T, S, F> SourceFactory<T> for F
where
    S: Source<T>,
    F: Fn(&mut OpenContext<'_>) -> OperatorResult<S> + Send + Sync + 'static,
{
    type Source = S;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<S> {
        self(ctx)
    }
}
