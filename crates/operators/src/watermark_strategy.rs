//! Watermark strategies: where a stream's event time comes from and how its watermarks follow it.
//!
//! A [`WatermarkStrategy`] pairs a timestamp extractor (records carry no timestamp field; event
//! time is a function of the record) with a [`WatermarkGenerator`]: bounded out-of-orderness,
//! ascending timestamps, or one written by the user. Applied after a source with
//! `assign_timestamps_and_watermarks`, the generator sees every record and emits watermarks
//! periodically (every 200 ms by default, as Flink's `autoWatermarkInterval`); with
//! [`WatermarkStrategy::with_idleness`], an input without records for that long is marked idle so
//! it stops holding downstream event time back.

use std::sync::Arc;
use std::time::Duration;

/// The event time of a record, in milliseconds since the Unix epoch.
pub type TimestampFn<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;

/// What a [`WatermarkGenerator`] emits: a watermark (the largest one counts) and idleness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatermarkOutput {
    watermark: Option<i64>,
    idle: bool,
}

impl WatermarkOutput {
    /// Declares that no record with a timestamp at or below `timestamp_ms` is expected anymore.
    pub fn emit_watermark(&mut self, timestamp_ms: i64) {
        self.watermark = Some(self.watermark.map_or(timestamp_ms, |w| w.max(timestamp_ms)));
        self.idle = false;
    }

    /// Declares the stream idle until it emits again.
    pub fn mark_idle(&mut self) {
        self.idle = true;
    }

    /// Takes what was emitted: the watermark and whether the stream went idle.
    pub fn take(&mut self) -> (Option<i64>, bool) {
        (self.watermark.take(), std::mem::take(&mut self.idle))
    }
}

/// Generates watermarks from the records it sees (Flink's `WatermarkGenerator`).
pub trait WatermarkGenerator<T>: Send {
    /// Sees each record with its timestamp; may emit a watermark at once (punctuated watermarks).
    fn on_event(&mut self, record: &T, timestamp_ms: i64, out: &mut WatermarkOutput);

    /// Called every emit interval of processing time: emit the current watermark here.
    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput);
}

/// Watermarks for records at most a fixed time out of order: the largest timestamp seen minus the
/// bound, minus 1 ms (as Flink: a record exactly `bound` behind the largest one is still on time).
#[derive(Debug, Clone, Copy)]
pub struct BoundedOutOfOrderness {
    max_timestamp: Option<i64>,
    bound_ms: i64,
}

impl BoundedOutOfOrderness {
    /// A generator for records out of order by at most `bound`.
    pub fn new(bound: Duration) -> Self {
        BoundedOutOfOrderness { max_timestamp: None, bound_ms: duration_ms(bound) }
    }

    /// The watermark the generator stands at (`None` before the first record).
    pub fn current(&self) -> Option<i64> {
        self.max_timestamp.map(|m| m.saturating_sub(self.bound_ms).saturating_sub(1))
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, _record: &T, timestamp_ms: i64, _out: &mut WatermarkOutput) {
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp_ms, |m| m.max(timestamp_ms)));
    }

    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput) {
        if let Some(w) = self.current() {
            out.emit_watermark(w);
        }
    }
}

/// Milliseconds of a duration, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

type GeneratorFactory<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;

/// How a stream gets event time and watermarks (Flink's `WatermarkStrategy`).
///
/// ```
/// use std::time::Duration;
/// use rill_operators::WatermarkStrategy;
/// struct Click { at_ms: i64 }
/// let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500), |c: &Click| c.at_ms)
///     .with_idleness(Duration::from_secs(10));
/// assert_eq!(strategy.timestamp_of(&Click { at_ms: 42 }), 42);
/// ```
pub struct WatermarkStrategy<T> {
    pub(crate) timestamps: TimestampFn<T>,
    pub(crate) generator: GeneratorFactory<T>,
    pub(crate) idleness: Option<Duration>,
    pub(crate) emit_interval: Duration,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            timestamps: self.timestamps.clone(),
            generator: self.generator.clone(),
            idleness: self.idleness,
            emit_interval: self.emit_interval,
        }
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Records at most `bound` out of order; event time from `timestamps` (Flink's
    /// `forBoundedOutOfOrderness(bound).withTimestampAssigner(timestamps)`).
    pub fn bounded_out_of_orderness(bound: Duration, timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::from_generator(timestamps, move || BoundedOutOfOrderness::new(bound))
    }

    /// Timestamps that never decrease (Flink's `forMonotonousTimestamps`).
    pub fn ascending(timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO, timestamps)
    }

    /// A user-written generator, created once per subtask by `generator` (Flink's
    /// `forGenerator`).
    pub fn from_generator<G>(
        timestamps: impl Fn(&T) -> i64 + Send + Sync + 'static,
        generator: impl Fn() -> G + Send + Sync + 'static,
    ) -> Self
    where
        G: WatermarkGenerator<T> + 'static,
    {
        WatermarkStrategy {
            timestamps: Arc::new(timestamps),
            generator: Arc::new(move || Box::new(generator()) as Box<dyn WatermarkGenerator<T>>),
            idleness: None,
            emit_interval: Duration::from_millis(200),
        }
    }

    /// Marks the stream idle after `timeout` of processing time without records; it becomes
    /// active again with its next record.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// How often periodic watermarks are emitted (default 200 ms; the job's tick interval is the
    /// finest resolution).
    pub fn with_emit_interval(mut self, interval: Duration) -> Self {
        self.emit_interval = interval;
        self
    }

    /// The timestamp extractor, to give to windows over the same records.
    pub fn timestamps(&self) -> TimestampFn<T> {
        self.timestamps.clone()
    }

    /// The event time of `record`.
    pub fn timestamp_of(&self, record: &T) -> i64 {
        (self.timestamps)(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_largest_timestamp_by_the_bound_plus_one() {
        let mut g = BoundedOutOfOrderness::new(Duration::from_millis(100));
        let mut out = WatermarkOutput::default();
        WatermarkGenerator::<()>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(out.take(), (None, false), "no watermark before the first record");
        for ts in [1_000, 1_500, 1_200] {
            g.on_event(&(), ts, &mut out);
        }
        WatermarkGenerator::<()>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(out.take(), (Some(1_399), false));
    }

    #[test]
    fn output_keeps_the_largest_watermark_and_emitting_ends_idleness() {
        let mut out = WatermarkOutput::default();
        out.mark_idle();
        out.emit_watermark(5);
        out.emit_watermark(3);
        assert_eq!(out.take(), (Some(5), false));
    }
}
