//! What a subtask shows of its shards on the job's dashboard and `/metrics`: position, lag and
//! whether each is finished, reported at most once a second.

use std::time::{Duration, Instant};

use rill_runtime::{JobMonitor, ShardView};

use crate::subtask::Subtask;
use crate::ShardPosition;

/// How often a subtask reports its shards.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl Subtask {
    /// Reports every owned shard's position and lag to `monitor`, if a second has passed since
    /// the last report.
    pub(crate) fn report_shards(&mut self, monitor: &JobMonitor, now: Instant) {
        if self.last_report.is_some_and(|at| now.duration_since(at) < REPORT_EVERY) {
            return;
        }
        self.last_report = Some(now);
        for (key, owned) in &self.owned {
            let position = match &owned.position {
                ShardPosition::After { sequence_number, sub_sequence: Some(sub) } => {
                    Some(format!("{sequence_number} (sub-record {sub})"))
                }
                ShardPosition::After { sequence_number, sub_sequence: None } => Some(sequence_number.clone()),
                ShardPosition::NotStarted(_) | ShardPosition::Finished => None,
            };
            monitor.report_shard(ShardView {
                operator: self.id.uid.clone(),
                subtask: self.id.index,
                stream: key.stream.clone(),
                shard: key.shard_id.clone(),
                position,
                millis_behind_latest: self.stats().lag(key),
                finished: matches!(owned.position, ShardPosition::Finished),
                updated_at_ms: 0,
            });
        }
    }
}
