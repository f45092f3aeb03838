//! How fast one shard is polled: how many records to ask for, and how long to wait before the
//! next GetRecords call. Pure decisions, so the reader stays under the per-shard limits
//! (5 calls/s, 2 MiB/s shared by every polling consumer) instead of running into them.
//!
//! - The interval counts from the **end** of the previous call, so one reader makes at most
//!   `1 / interval` calls a second however long the calls take.
//! - After an answer with nothing in it, the reader waits the longer empty interval.
//! - With adaptive reads (Flink's `flink.shard.adaptivereads`), each call asks for as many
//!   records as the read rate allows over one loop, from the average size of the last answer's
//!   records, and after a large answer the reader waits until the bytes it got are paid for at
//!   the read rate (a 10 MiB answer at 2 MiB/s: 5 s, which is how long Kinesis would throttle
//!   the shard otherwise).

use std::time::Duration;

use crate::config::ConsumerSettings;

/// The pacing state of one shard reader.
#[derive(Debug, Clone)]
pub(crate) struct Pacing {
    interval: Duration,
    empty_interval: Duration,
    adaptive: bool,
    bytes_per_second: f64,
    max_records: i32,
    /// Average payload size of the records of the last answer that had any.
    average_record_bytes: Option<f64>,
    /// Duration of the last loop (call and wait), the basis of the adaptive size.
    last_loop: Duration,
}

impl Pacing {
    /// Pacing from the consumer settings.
    pub(crate) fn new(settings: &ConsumerSettings) -> Self {
        Pacing {
            interval: settings.get_records_interval,
            empty_interval: settings.get_records_empty_interval.max(settings.get_records_interval),
            adaptive: settings.adaptive_reads,
            bytes_per_second: settings.read_bytes_per_second.max(1) as f64,
            max_records: settings.get_records_max.max(1),
            average_record_bytes: None,
            last_loop: settings.get_records_interval,
        }
    }

    /// How many records the next GetRecords call asks for.
    pub(crate) fn limit(&self) -> i32 {
        match (self.adaptive, self.average_record_bytes) {
            (true, Some(average)) => {
                let loop_seconds = self.last_loop.as_secs_f64().max(0.001);
                let records = self.bytes_per_second * loop_seconds / average.max(1.0);
                (records.floor() as i64).clamp(1, i64::from(self.max_records)) as i32
            }
            _ => self.max_records,
        }
    }

    /// A call that took `call` returned `records` records of `bytes` payload bytes in all
    /// (before de-aggregation): how long to wait before the next call.
    pub(crate) fn after_call(&mut self, records: usize, bytes: u64, call: Duration) -> Duration {
        let wait = if records == 0 {
            self.empty_interval
        } else {
            self.average_record_bytes = Some(bytes as f64 / records as f64);
            if self.adaptive {
                let paid_at = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
                self.interval.max(paid_at.saturating_sub(call))
            } else {
                self.interval
            }
        };
        self.last_loop = call + wait;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(adaptive: bool) -> ConsumerSettings {
        ConsumerSettings {
            adaptive_reads: adaptive,
            get_records_interval: Duration::from_millis(200),
            get_records_empty_interval: Duration::from_secs(1),
            read_bytes_per_second: 2 * 1024 * 1024,
            ..ConsumerSettings::default()
        }
    }

    #[test]
    fn the_interval_counts_from_the_end_of_a_slow_call() {
        let mut p = Pacing::new(&settings(false));
        assert_eq!(p.after_call(10, 1000, Duration::from_millis(150)), Duration::from_millis(200));
    }

    #[test]
    fn an_empty_answer_waits_the_longer_empty_interval() {
        let mut p = Pacing::new(&settings(true));
        assert_eq!(p.after_call(0, 0, Duration::from_millis(5)), Duration::from_secs(1));
        assert_eq!(p.limit(), 10_000, "nothing is known about record sizes yet");
    }

    #[test]
    fn adaptive_reads_ask_for_what_the_read_rate_allows_over_one_loop() {
        let mut p = Pacing::new(&settings(true));
        assert_eq!(p.limit(), 10_000);
        p.after_call(100, 100 * 1000, Duration::ZERO);
        // 2 MiB/s over a 200 ms loop is 419,430 bytes: 419 records of 1,000 bytes.
        assert_eq!(p.limit(), 419);
    }

    #[test]
    fn a_ten_mebibyte_answer_is_paid_for_before_the_next_call() {
        let mut p = Pacing::new(&settings(true));
        let wait = p.after_call(10_000, 10 * 1024 * 1024, Duration::from_millis(400));
        assert_eq!(wait, Duration::from_millis(4600));
        let mut plain = Pacing::new(&settings(false));
        assert_eq!(plain.after_call(10_000, 10 * 1024 * 1024, Duration::from_millis(400)), Duration::from_millis(200));
    }

    #[test]
    fn the_limit_stays_within_one_and_the_maximum() {
        let mut p = Pacing::new(&ConsumerSettings { read_bytes_per_second: 1, ..settings(true) });
        p.after_call(1, 1_000_000, Duration::ZERO);
        assert_eq!(p.limit(), 1);
        let mut p = Pacing::new(&settings(true));
        p.after_call(1, 1, Duration::ZERO);
        assert_eq!(p.limit(), 10_000);
    }
}
