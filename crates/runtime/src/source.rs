//! What user code implements for a parallel source: the running [`Source`] of one subtask, with
//! its typed position, and the [`SourceFactory`] that opens it from the restored positions.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::{Collector, OpenContext, OperatorContext};
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
/// [`SourceFactory::open`]) and keeps its own, so a restore at another parallelism can reassign
/// splits.
pub trait Source<T>: Send + 'static {
    /// One entry of the source's checkpointed position (a split or shard and where it stands).
    type Position: Serialize + DeserializeOwned + Send + 'static;

    /// Emits a small batch. Must return within about 100 ms so that barriers are not delayed.
    fn poll(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<T>) -> OperatorResult<SourcePoll>;

    /// A checkpoint is taken at `barrier`: the position after every record emitted so far.
    fn on_barrier(&mut self, barrier: Barrier, ctx: &mut OperatorContext<'_>) -> OperatorResult<Vec<Self::Position>>;

    /// Checkpoint `epoch` is complete.
    fn on_commit(&mut self, _epoch: u64, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        Ok(())
    }

    /// The subtask is shutting down.
    fn on_close(&mut self, _ctx: &mut OperatorContext<'_>) -> OperatorResult {
        Ok(())
    }
}

/// The positions of source `S` over records `T`, as a checkpoint holds them.
pub type Positions<S, T> = Vec<<S as Source<T>>::Position>;

/// The description of a source, opened once per subtask with the restored positions.
pub trait SourceFactory<T>: Send + Sync + 'static {
    /// The running source.
    type Source: Source<T>;

    /// Opens the source of one subtask. `restored` holds the positions of every subtask of the
    /// restored checkpoint (empty on a fresh start), typed as the source returned them at its
    /// barrier: the source keeps those that belong to this subtask.
    fn open(&self, ctx: &mut OpenContext<'_>, restored: Positions<Self::Source, T>) -> OperatorResult<Self::Source>;
}
