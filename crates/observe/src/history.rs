//! Rates from two readings of a subtask's counters: the pure part of sampling.

use std::time::Duration;

use crate::subtask::SubtaskReading;
use crate::SubtaskView;

/// The per-second view of a subtask between two readings `elapsed` apart.
pub(crate) fn subtask_view(
    subtask: usize,
    before: &SubtaskReading,
    now: &SubtaskReading,
    elapsed: Duration,
) -> SubtaskView {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let per_second = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let ms_per_second = |a: u64, b: u64| (b.saturating_sub(a) as f64 / 1e6 / secs).min(1000.0);
    let idle = ms_per_second(before.idle_ns, now.idle_ns);
    let backpressured = ms_per_second(before.backpressured_ns, now.backpressured_ns);
    SubtaskView {
        subtask,
        records_in: now.records_in,
        records_out: now.records_out,
        records_in_per_second: per_second(before.records_in, now.records_in),
        records_out_per_second: per_second(before.records_out, now.records_out),
        busy_ms_per_second: (1000.0 - idle - backpressured).max(0.0),
        idle_ms_per_second: idle,
        backpressured_ms_per_second: backpressured,
        input_queue_fill: if now.input_capacity == 0 {
            0.0
        } else {
            (now.input_queued as f64 / now.input_capacity as f64).min(1.0)
        },
        watermark: now.watermark,
        checkpoint_sync_ms: now.checkpoint_sync_us as f64 / 1e3,
        checkpoint_async_ms: now.checkpoint_async_us as f64 / 1e3,
        checkpoint_alignment_ms: now.checkpoint_alignment_us as f64 / 1e3,
        state_cache_bytes: now.state_cache_bytes,
        state_memtable_bytes: now.state_memtable_bytes,
        state_table_readers_bytes: now.state_table_readers_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_the_change_per_second_between_two_readings() {
        let before = SubtaskReading { records_in: 100, idle_ns: 0, ..Default::default() };
        let now = SubtaskReading {
            records_in: 2_100,
            records_out: 500,
            idle_ns: 500_000_000,
            backpressured_ns: 1_000_000_000,
            input_queued: 4,
            input_capacity: 16,
            ..Default::default()
        };
        let v = subtask_view(1, &before, &now, Duration::from_secs(2));
        assert_eq!(v.records_in_per_second, 1000.0);
        assert_eq!(v.records_out_per_second, 250.0);
        assert_eq!(v.idle_ms_per_second, 250.0);
        assert_eq!(v.backpressured_ms_per_second, 500.0);
        assert_eq!(v.busy_ms_per_second, 250.0);
        assert_eq!(v.input_queue_fill, 0.25);
    }

    #[test]
    fn a_subtask_that_only_waited_is_not_busy() {
        let now = SubtaskReading { idle_ns: 1_200_000_000, ..Default::default() };
        let v = subtask_view(0, &SubtaskReading::default(), &now, Duration::from_secs(1));
        assert_eq!(v.idle_ms_per_second, 1000.0);
        assert_eq!(v.busy_ms_per_second, 0.0);
    }
}
