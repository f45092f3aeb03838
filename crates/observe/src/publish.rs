//! Writes a job's figures through the `metrics` facade, named and labelled for Prometheus.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `rill_task_records_in_total`, `rill_task_records_out_total` | counter | job, vertex, subtask |
//! | `rill_task_busy_time_ms_per_second`, `rill_task_idle_time_ms_per_second`, `rill_task_backpressured_time_ms_per_second` | gauge | job, vertex, subtask |
//! | `rill_task_input_queue_fill` (0 to 1), `rill_task_watermark_ms` | gauge | job, vertex, subtask |
//! | `rill_task_checkpoint_sync_seconds`, `rill_task_checkpoint_async_seconds`, `rill_task_checkpoint_alignment_seconds` | gauge | job, vertex, subtask |
//! | `rill_task_state_cache_bytes`, `rill_task_state_memtable_bytes`, `rill_task_state_table_readers_bytes` (keyed subtasks, as of the last checkpoint) | gauge | job, vertex, subtask |
//! | `rill_checkpoints_completed_total`, `rill_checkpoints_expired_total`, `rill_checkpoints_failed_total` | counter | job |
//! | `rill_checkpoint_last_completed_id`, `rill_checkpoint_last_completed_age_seconds`, `rill_checkpoint_last_duration_seconds`, `rill_checkpoint_last_size_bytes` | gauge | job |
//! | `rill_job_restarts_total` | counter | job |
//! | `rill_job_restored_checkpoint` (-1: none), `rill_job_uptime_seconds`, `rill_job_records_per_second` | gauge | job |
//! | `rill_source_shard_millis_behind_latest` | gauge | job, operator, stream, shard |

use crate::monitor::now_ms;
use crate::JobMonitor;

impl JobMonitor {
    /// Writes the job's current figures through the `metrics` facade (to whatever recorder is
    /// installed; nothing happens without one). Rates are those of the last sample.
    pub fn publish(&self) {
        let view = self.view();
        let job = view.job.clone();
        for vertex in &view.vertices {
            for s in &vertex.subtasks {
                let labels = [("job", job.clone()), ("vertex", vertex.id.clone()), ("subtask", s.subtask.to_string())];
                metrics::counter!("rill_task_records_in_total", &labels).absolute(s.records_in);
                metrics::counter!("rill_task_records_out_total", &labels).absolute(s.records_out);
                metrics::gauge!("rill_task_busy_time_ms_per_second", &labels).set(s.busy_ms_per_second);
                metrics::gauge!("rill_task_idle_time_ms_per_second", &labels).set(s.idle_ms_per_second);
                metrics::gauge!("rill_task_backpressured_time_ms_per_second", &labels)
                    .set(s.backpressured_ms_per_second);
                metrics::gauge!("rill_task_input_queue_fill", &labels).set(s.input_queue_fill);
                if let Some(w) = s.watermark {
                    metrics::gauge!("rill_task_watermark_ms", &labels).set(w as f64);
                }
                metrics::gauge!("rill_task_checkpoint_sync_seconds", &labels).set(s.checkpoint_sync_ms / 1e3);
                metrics::gauge!("rill_task_checkpoint_async_seconds", &labels).set(s.checkpoint_async_ms / 1e3);
                metrics::gauge!("rill_task_checkpoint_alignment_seconds", &labels).set(s.checkpoint_alignment_ms / 1e3);
                if s.state_cache_bytes + s.state_memtable_bytes + s.state_table_readers_bytes > 0 {
                    metrics::gauge!("rill_task_state_cache_bytes", &labels).set(s.state_cache_bytes as f64);
                    metrics::gauge!("rill_task_state_memtable_bytes", &labels).set(s.state_memtable_bytes as f64);
                    metrics::gauge!("rill_task_state_table_readers_bytes", &labels)
                        .set(s.state_table_readers_bytes as f64);
                }
            }
        }
        let labels = [("job", job.clone())];
        let (completed, expired, failed) = self.checkpoint_counts();
        metrics::counter!("rill_checkpoints_completed_total", &labels).absolute(completed);
        metrics::counter!("rill_checkpoints_expired_total", &labels).absolute(expired);
        metrics::counter!("rill_checkpoints_failed_total", &labels).absolute(failed);
        if let Some(c) = &view.last_checkpoint {
            metrics::gauge!("rill_checkpoint_last_completed_id", &labels).set(c.id as f64);
            let completed_at = c.triggered_at_ms + c.duration_ms.unwrap_or(0);
            metrics::gauge!("rill_checkpoint_last_completed_age_seconds", &labels)
                .set(now_ms().saturating_sub(completed_at) as f64 / 1e3);
            metrics::gauge!("rill_checkpoint_last_duration_seconds", &labels)
                .set(c.duration_ms.unwrap_or(0) as f64 / 1e3);
            metrics::gauge!("rill_checkpoint_last_size_bytes", &labels).set(c.size_bytes.unwrap_or(0) as f64);
        }
        metrics::counter!("rill_job_restarts_total", &labels).absolute(self.restarts());
        metrics::gauge!("rill_job_restored_checkpoint", &labels).set(view.restored_from.map_or(-1.0, |c| c as f64));
        metrics::gauge!("rill_job_uptime_seconds", &labels).set(view.uptime_ms as f64 / 1e3);
        metrics::gauge!("rill_job_records_per_second", &labels).set(view.records_per_second);
        for shard in self.shards() {
            if let Some(lag) = shard.millis_behind_latest {
                let labels = [
                    ("job", job.clone()),
                    ("operator", shard.operator.clone()),
                    ("stream", shard.stream.clone()),
                    ("shard", shard.shard.clone()),
                ];
                metrics::gauge!("rill_source_shard_millis_behind_latest", &labels).set(lag as f64);
            }
        }
    }
}
