//! Event time of a subtask: per-shard watermarks, the minimum over active shards, idleness.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ShardKey;

/// The subtask's event-time state after looking at its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubtaskTime {
    /// The minimum over active shards.
    At(i64),
    /// An active shard has no timestamp yet: hold the watermark where it is.
    HeldBack,
    /// No active shard (none at all, or all idle): do not hold anyone back.
    Idle,
}

#[derive(Debug, Clone)]
struct ShardClock {
    max_timestamp: Option<i64>,
    last_record: Instant,
}

/// Per-shard largest timestamp and last record time, for the shards being read.
#[derive(Debug, Clone)]
pub(crate) struct ShardWatermarks {
    shards: BTreeMap<ShardKey, ShardClock>,
    idle_after: Option<Duration>,
    lag_ms: i64,
}

impl ShardWatermarks {
    /// Shards idle for `idle_after` stop holding the watermark back; watermarks trail the
    /// largest timestamp by `lag`.
    pub(crate) fn new(idle_after: Option<Duration>, lag: Duration) -> Self {
        ShardWatermarks { shards: BTreeMap::new(), idle_after, lag_ms: lag.as_millis() as i64 }
    }

    /// A shard starts being read at `now` (its idle time counts from here).
    pub(crate) fn add(&mut self, key: &ShardKey, now: Instant) {
        self.shards.entry(key.clone()).or_insert(ShardClock { max_timestamp: None, last_record: now });
    }

    /// A shard was read to its end: it no longer holds the watermark.
    pub(crate) fn remove(&mut self, key: &ShardKey) {
        self.shards.remove(key);
    }

    /// Records with the largest timestamp `timestamp` (if any had one) were emitted at `now`.
    pub(crate) fn on_records(&mut self, key: &ShardKey, timestamp: Option<i64>, now: Instant) {
        if let Some(clock) = self.shards.get_mut(key) {
            clock.last_record = now;
            if let Some(ts) = timestamp {
                clock.max_timestamp = Some(clock.max_timestamp.map_or(ts, |m| m.max(ts)));
            }
        }
    }

    /// The subtask's event time at `now`.
    pub(crate) fn current(&self, now: Instant) -> SubtaskTime {
        let mut min: Option<i64> = None;
        let mut any_active = false;
        for clock in self.shards.values() {
            let idle = self.idle_after.is_some_and(|d| now.saturating_duration_since(clock.last_record) >= d);
            if idle {
                continue;
            }
            any_active = true;
            match clock.max_timestamp {
                None => return SubtaskTime::HeldBack,
                Some(ts) => min = Some(min.map_or(ts, |m| m.min(ts))),
            }
        }
        match (any_active, min) {
            (false, _) => SubtaskTime::Idle,
            // As the runtime's bounded-out-of-orderness strategy (and Flink's): `max - lag - 1`,
            // so a record in the largest timestamp's millisecond is not late.
            (true, Some(m)) => SubtaskTime::At(m.saturating_sub(self.lag_ms).saturating_sub(1)),
            (true, None) => SubtaskTime::HeldBack,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ShardKey {
        ShardKey::new("s", id)
    }

    #[test]
    fn the_subtask_watermark_is_the_minimum_over_active_shards() {
        let t0 = Instant::now();
        let mut w = ShardWatermarks::new(None, Duration::from_millis(5));
        w.add(&key("a"), t0);
        w.add(&key("b"), t0);
        w.on_records(&key("a"), Some(100), t0);
        assert_eq!(w.current(t0), SubtaskTime::HeldBack);
        w.on_records(&key("b"), Some(50), t0);
        assert_eq!(w.current(t0), SubtaskTime::At(44));
        w.remove(&key("b"));
        assert_eq!(w.current(t0), SubtaskTime::At(94));
    }

    #[test]
    fn an_idle_shard_stops_holding_the_watermark_back() {
        let t0 = Instant::now();
        let mut w = ShardWatermarks::new(Some(Duration::from_secs(1)), Duration::ZERO);
        w.add(&key("quiet"), t0);
        w.add(&key("busy"), t0);
        w.on_records(&key("busy"), Some(10), t0);
        assert_eq!(w.current(t0), SubtaskTime::HeldBack);
        let later = t0 + Duration::from_secs(2);
        w.on_records(&key("busy"), Some(20), later);
        assert_eq!(w.current(later), SubtaskTime::At(19));
        assert_eq!(w.current(later + Duration::from_secs(5)), SubtaskTime::Idle);
    }

    #[test]
    fn a_record_in_the_millisecond_of_the_largest_timestamp_is_not_late() {
        let t0 = Instant::now();
        let mut w = ShardWatermarks::new(None, Duration::ZERO);
        w.add(&key("a"), t0);
        w.on_records(&key("a"), Some(1_000), t0);
        let SubtaskTime::At(watermark) = w.current(t0) else { panic!("expected a watermark") };
        assert!(1_000 > watermark, "a second record at 1000 ms would be late behind watermark {watermark}");
    }

    #[test]
    fn by_default_a_started_shard_that_stays_silent_stops_holding_event_time_back() {
        let settings = crate::ConsumerSettings::default();
        let t0 = Instant::now();
        let mut w = ShardWatermarks::new(settings.shard_idle_interval, settings.max_out_of_orderness);
        w.add(&key("silent"), t0);
        w.add(&key("busy"), t0);
        w.on_records(&key("busy"), Some(500), t0);
        let later = t0 + Duration::from_secs(31);
        w.on_records(&key("busy"), Some(900), later);
        assert_eq!(w.current(later), SubtaskTime::At(899));
    }

    #[test]
    fn a_subtask_without_shards_is_idle() {
        assert_eq!(ShardWatermarks::new(None, Duration::ZERO).current(Instant::now()), SubtaskTime::Idle);
    }
}
