//! The operator that applies a [`WatermarkStrategy`] to a stream (Flink's
//! `TimestampsAndWatermarksOperator`).
//!
//! Records pass through unchanged (the batch is moved, not copied). The generator sees each
//! record's timestamp; its watermark is emitted every emit interval of processing time, and only
//! when it advanced. Watermarks from upstream are swallowed — this operator is where event time
//! starts — except the final [`Watermark::MAX`] of a finished source. Idleness, from upstream (a
//! source with nothing to read) or from the strategy's timeout, is passed on; the next record
//! makes the stream active again.

use rill_runtime::{
    Collector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult, RuntimeError, Watermark,
};

use crate::watermark_strategy::{duration_ms, WatermarkGenerator, WatermarkOutput, WatermarkStrategy};

/// Assigns event time and generates watermarks after a source: the factory of
/// [`TimestampsAndWatermarksOperator`].
pub struct TimestampsAndWatermarks<T> {
    strategy: WatermarkStrategy<T>,
}

impl<T> TimestampsAndWatermarks<T> {
    /// The operator for `strategy`.
    pub fn new(strategy: WatermarkStrategy<T>) -> Self {
        TimestampsAndWatermarks { strategy }
    }
}

/// The running operator of [`TimestampsAndWatermarks`] in one subtask.
pub struct TimestampsAndWatermarksOperator<T> {
    strategy: WatermarkStrategy<T>,
    generator: Box<dyn WatermarkGenerator<T>>,
    output: WatermarkOutput,
    emitted: Option<i64>,
    next_emit_ms: i64,
    last_active_ms: i64,
    records_since_tick: bool,
    idle: bool,
}

impl<T: Send + 'static> OperatorFactory<T, T> for TimestampsAndWatermarks<T> {
    type Operator = TimestampsAndWatermarksOperator<T>;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<TimestampsAndWatermarksOperator<T>> {
        if self.strategy.emit_interval.is_zero() {
            return Err(RuntimeError::Config("watermark emit interval must be positive".into()).into());
        }
        let now = ctx.clock().now_ms();
        Ok(TimestampsAndWatermarksOperator {
            strategy: self.strategy.clone(),
            generator: (self.strategy.generator)(),
            output: WatermarkOutput::default(),
            emitted: None,
            next_emit_ms: now.saturating_add(duration_ms(self.strategy.emit_interval)),
            last_active_ms: now,
            records_since_tick: false,
            idle: false,
        })
    }
}

impl<T> TimestampsAndWatermarksOperator<T> {
    /// Passes on what the generator emitted: an advanced watermark, then idleness.
    fn flush(&mut self, out: &mut Collector<T>) {
        let (watermark, idle) = self.output.take();
        if let Some(w) = watermark.filter(|w| self.emitted.is_none_or(|e| *w > e)) {
            self.emitted = Some(w);
            self.idle = false;
            out.emit_watermark(Watermark::at(w));
        }
        if idle && !self.idle {
            self.idle = true;
            out.mark_idle();
        }
    }
}

impl<T: Send + 'static> Operator<T, T> for TimestampsAndWatermarksOperator<T> {
    fn process(&mut self, record: T, ctx: &mut OperatorContext<'_>, out: &mut Collector<T>) -> OperatorResult {
        self.process_batch(vec![record], ctx, out)
    }

    #[inline]
    fn process_batch(
        &mut self,
        batch: Vec<T>,
        _ctx: &mut OperatorContext<'_>,
        out: &mut Collector<T>,
    ) -> OperatorResult {
        let timestamps = &self.strategy.timestamps;
        for record in &batch {
            self.generator.on_event(record, timestamps(record), &mut self.output);
        }
        if !batch.is_empty() {
            self.records_since_tick = true;
            self.idle = false;
        }
        out.emit_all(batch);
        self.flush(out);
        Ok(())
    }

    fn on_processing_time(
        &mut self,
        now_ms: i64,
        _ctx: &mut OperatorContext<'_>,
        out: &mut Collector<T>,
    ) -> OperatorResult {
        let interval = duration_ms(self.strategy.emit_interval);
        let idleness = self.strategy.idleness.map(duration_ms);
        if now_ms >= self.next_emit_ms {
            self.generator.on_periodic_emit(&mut self.output);
            self.next_emit_ms = now_ms.saturating_add(interval);
        }
        if std::mem::take(&mut self.records_since_tick) {
            self.last_active_ms = now_ms;
        } else if idleness.is_some_and(|timeout| now_ms.saturating_sub(self.last_active_ms) >= timeout) {
            self.output.mark_idle();
        }
        self.flush(out);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Watermark,
        _ctx: &mut OperatorContext<'_>,
        out: &mut Collector<T>,
    ) -> OperatorResult {
        if watermark == Watermark::MAX && self.emitted != Some(i64::MAX) {
            self.emitted = Some(i64::MAX);
            out.emit_watermark(Watermark::MAX);
        }
        Ok(())
    }

    fn on_idle(&mut self, _ctx: &mut OperatorContext<'_>, out: &mut Collector<T>) -> OperatorResult {
        self.output.mark_idle();
        self.flush(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rill_runtime::OperatorHarness;

    use super::*;

    fn harness(
        strategy: WatermarkStrategy<i64>,
    ) -> (tempfile::TempDir, OperatorHarness<i64, i64, TimestampsAndWatermarksOperator<i64>>) {
        let dir = tempfile::tempdir().unwrap();
        let h = OperatorHarness::new(TimestampsAndWatermarks::new(strategy), dir.path()).unwrap();
        (dir, h)
    }

    fn bounded(ms: u64) -> WatermarkStrategy<i64> {
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(ms), |t: &i64| *t)
    }

    #[test]
    fn records_pass_through_and_watermarks_come_periodically_and_only_when_advanced() {
        let (_dir, mut h) = harness(bounded(10).with_emit_interval(Duration::from_millis(100)));
        h.process_all(vec![50, 40, 70]).unwrap();
        assert_eq!(h.take_output(), vec![50, 40, 70]);
        assert!(h.take_watermarks().is_empty(), "nothing before the first emit interval");
        h.set_processing_time(99).unwrap();
        assert!(h.take_watermarks().is_empty());
        h.set_processing_time(100).unwrap();
        assert_eq!(h.take_watermarks(), vec![59]);
        h.set_processing_time(200).unwrap();
        assert!(h.take_watermarks().is_empty(), "unchanged: not emitted again");
        h.process(65).unwrap();
        h.set_processing_time(300).unwrap();
        assert!(h.take_watermarks().is_empty(), "an older record does not move it");
        h.process(200).unwrap();
        h.set_processing_time(400).unwrap();
        assert_eq!(h.take_watermarks(), vec![189]);
    }

    #[test]
    fn upstream_watermarks_are_swallowed_except_the_final_one() {
        let (_dir, mut h) = harness(WatermarkStrategy::ascending(|t: &i64| *t));
        h.watermark(1_000).unwrap();
        assert!(h.take_watermarks().is_empty());
        h.watermark(i64::MAX).unwrap();
        h.watermark(i64::MAX).unwrap();
        assert_eq!(h.take_watermarks(), vec![i64::MAX]);
    }

    #[test]
    fn a_stream_without_records_for_the_idle_timeout_is_marked_idle_until_its_next_record() {
        let strategy =
            bounded(0).with_emit_interval(Duration::from_millis(20)).with_idleness(Duration::from_millis(100));
        let (_dir, mut h) = harness(strategy);
        h.process(10).unwrap();
        h.set_processing_time(20).unwrap();
        assert_eq!(h.take_watermarks(), vec![9]);
        h.set_processing_time(100).unwrap();
        assert!(!h.is_idle(), "last record seen at the tick of 20 ms");
        h.set_processing_time(120).unwrap();
        assert!(h.is_idle());
        h.process(30).unwrap();
        assert!(!h.is_idle(), "a record makes it active again");
        h.set_processing_time(140).unwrap();
        assert_eq!(h.take_watermarks(), vec![29]);
        assert!(!h.is_idle());
    }

    #[test]
    fn idleness_from_the_source_is_passed_on() {
        let (_dir, mut h) = harness(bounded(0));
        h.idle().unwrap();
        assert!(h.is_idle());
        h.process(5).unwrap();
        assert!(!h.is_idle());
    }

    #[test]
    fn a_user_written_generator_can_emit_punctuated_watermarks() {
        struct EveryTenth;
        impl WatermarkGenerator<i64> for EveryTenth {
            fn on_event(&mut self, _r: &i64, ts: i64, out: &mut WatermarkOutput) {
                if ts % 10 == 0 {
                    out.emit_watermark(ts);
                }
            }
            fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}
        }
        let (_dir, mut h) = harness(WatermarkStrategy::from_generator(|t: &i64| *t, || EveryTenth));
        h.process_all(vec![3, 10, 12, 20, 21]).unwrap();
        assert_eq!(h.take_watermarks(), vec![20]);
    }
}
