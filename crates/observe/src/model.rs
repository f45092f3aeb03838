//! What the REST API answers (and the dashboard shows): plain serializable views of a job.

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Restoring state and starting subtasks.
    Starting,
    /// Every subtask is running.
    Running,
    /// A task failed; waiting to restart from the latest complete checkpoint.
    Restarting,
    /// Asked to stop: taking the final checkpoint.
    Stopping,
    /// Ended after its final checkpoint committed.
    Finished,
    /// Ended with an error.
    Failed,
}

impl JobState {
    /// Whether the job has ended (finished or failed): no request will be answered any more.
    pub fn has_ended(self) -> bool {
        matches!(self, JobState::Finished | JobState::Failed)
    }

    /// Its name, as the API spells it.
    pub fn label(self) -> &'static str {
        match self {
            JobState::Starting => "starting",
            JobState::Running => "running",
            JobState::Restarting => "restarting",
            JobState::Stopping => "stopping",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }
    }
}

/// A job as the dashboard shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    /// Job name.
    pub job: String,
    /// Where it is in its life.
    pub state: JobState,
    /// When this process started running it (milliseconds since the Unix epoch).
    pub started_at_ms: u64,
    /// Milliseconds since then.
    pub uptime_ms: u64,
    /// The checkpoint the current attempt restored, if any.
    pub restored_from: Option<u64>,
    /// Records per second emitted by all sources, over the last sampled second.
    pub records_per_second: f64,
    /// Records per second emitted by all sources, one sample per second, oldest first (at most
    /// two minutes).
    pub throughput: Vec<f64>,
    /// The operator chains (vertices) of the job graph, in graph order.
    pub vertices: Vec<VertexView>,
    /// Restarts after task failures, oldest first.
    pub restarts: Vec<RestartView>,
    /// The latest completed checkpoint, if any.
    pub last_checkpoint: Option<CheckpointView>,
    /// Checkpoints completed in this process.
    pub checkpoints_completed: u64,
    /// Checkpoints that failed or expired in this process.
    pub checkpoints_failed: u64,
}

/// One vertex (a chain of operators run by `parallelism` subtasks).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VertexView {
    /// Stable vertex id.
    pub id: String,
    /// Operator names of the chain.
    pub name: String,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Whether the chain starts with a source.
    pub is_source: bool,
    /// Upstream vertices (by index in [`JobView::vertices`]).
    pub inputs: Vec<usize>,
    /// Records taken in, over all subtasks.
    pub records_in: u64,
    /// Records sent on, over all subtasks.
    pub records_out: u64,
    /// Records taken in per second, over all subtasks.
    pub records_in_per_second: f64,
    /// Records sent on per second, over all subtasks.
    pub records_out_per_second: f64,
    /// Busy milliseconds per second, the highest of its subtasks.
    pub busy_ms_per_second: f64,
    /// Back-pressured milliseconds per second (blocked on a full output channel), the highest of
    /// its subtasks.
    pub backpressured_ms_per_second: f64,
    /// The lowest input watermark of its subtasks, if all have one.
    pub watermark: Option<i64>,
    /// Per subtask.
    pub subtasks: Vec<SubtaskView>,
}

/// One subtask.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubtaskView {
    /// Index within the vertex.
    pub subtask: usize,
    /// Records taken in.
    pub records_in: u64,
    /// Records sent on.
    pub records_out: u64,
    /// Records taken in per second.
    pub records_in_per_second: f64,
    /// Records sent on per second.
    pub records_out_per_second: f64,
    /// Milliseconds per second spent working.
    pub busy_ms_per_second: f64,
    /// Milliseconds per second spent waiting for input.
    pub idle_ms_per_second: f64,
    /// Milliseconds per second spent blocked on a full output channel.
    pub backpressured_ms_per_second: f64,
    /// Share of the input channels' capacity in use (0 to 1).
    pub input_queue_fill: f64,
    /// Current input watermark (milliseconds), if any.
    pub watermark: Option<i64>,
    /// Last checkpoint's synchronous part, milliseconds.
    pub checkpoint_sync_ms: f64,
    /// Last checkpoint's asynchronous part, milliseconds.
    pub checkpoint_async_ms: f64,
    /// Last barrier alignment, milliseconds.
    pub checkpoint_alignment_ms: f64,
    /// Keyed state in memory as of the last checkpoint, bytes: the caches' estimate (with
    /// writes held back during a snapshot), RocksDB memtables, RocksDB index and filter blocks.
    /// Zero for a subtask without keyed state.
    #[serde(default)]
    pub state_cache_bytes: u64,
    /// See `state_cache_bytes`.
    #[serde(default)]
    pub state_memtable_bytes: u64,
    /// See `state_cache_bytes`.
    #[serde(default)]
    pub state_table_readers_bytes: u64,
}

/// What became of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStatus {
    /// Triggered, not yet acknowledged by every subtask.
    InProgress,
    /// Manifest durably written.
    Completed,
    /// Not acknowledged within the checkpoint timeout; abandoned.
    Expired,
    /// Abandoned because a task failed or the job stopped.
    Failed,
}

/// One checkpoint of this process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointView {
    /// Checkpoint id.
    pub id: u64,
    /// Status.
    pub status: CheckpointStatus,
    /// Whether it is a savepoint (never deleted by retention).
    pub savepoint: bool,
    /// Whether it is the last checkpoint of a run (sources finished or the job stopped).
    pub last: bool,
    /// When it was triggered (milliseconds since the Unix epoch).
    pub triggered_at_ms: u64,
    /// Trigger to completion, milliseconds.
    pub duration_ms: Option<u64>,
    /// Bytes of all its files.
    pub size_bytes: Option<u64>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// A restart of the job after a task failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartView {
    /// When (milliseconds since the Unix epoch).
    pub at_ms: u64,
    /// The error that caused it.
    pub cause: String,
}

/// The position and lag of one shard (or partition) of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardView {
    /// The source operator's uid.
    pub operator: String,
    /// The subtask reading it.
    pub subtask: usize,
    /// Stream name.
    pub stream: String,
    /// Shard id.
    pub shard: String,
    /// Last emitted position (sequence number), if any.
    pub position: Option<String>,
    /// How far behind the tip of the shard the reader is, as Kinesis reports it.
    pub millis_behind_latest: Option<i64>,
    /// Whether the shard has been read to its end.
    pub finished: bool,
    /// When this was last reported (milliseconds since the Unix epoch).
    pub updated_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_label_is_spelled_as_the_api_spells_it() {
        for state in [
            JobState::Starting,
            JobState::Running,
            JobState::Restarting,
            JobState::Stopping,
            JobState::Finished,
            JobState::Failed,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.label());
        }
    }
}
