//! [`InjectFailures`]: a pass-through operator that makes a task panic at a random record about
//! every given interval of processing, to exercise restart strategies and recovery (soak tests,
//! `--inject-failure-every-ms` of the examples).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rill_runtime::{Collector, OpenContext, Operator, OperatorContext, OperatorFactory, OperatorResult};

/// When the next failure is due, shared by every subtask of the operator in this process.
#[derive(Debug)]
struct Schedule {
    mean_ms: i64,
    /// Milliseconds since the Unix epoch.
    next_ms: AtomicI64,
    injected: AtomicU64,
    seed: AtomicU64,
}

impl Schedule {
    /// A pseudo-random number in [0.5, 1.5) (xorshift; quality is not the point).
    fn spread(&self) -> f64 {
        let mut x = self.seed.load(Ordering::Relaxed) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        0.5 + (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn schedule_from(&self, now_ms: i64) {
        let delay = (self.mean_ms as f64 * self.spread()) as i64;
        self.next_ms.store(now_ms.saturating_add(delay.max(1)), Ordering::SeqCst);
    }
}

/// Passes records through and, about every `interval` of processing time (randomly 0.5x to 1.5x
/// of it), panics at one record in one subtask: an in-process task failure that the restart
/// strategy handles. Processing time starts again at each restart.
#[derive(Debug, Clone)]
pub struct InjectFailures {
    schedule: Arc<Schedule>,
}

impl InjectFailures {
    /// A failure about every `interval`.
    pub fn every(interval: Duration) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        let schedule = Schedule {
            mean_ms: interval.as_millis().clamp(1, i64::MAX as u128) as i64,
            next_ms: AtomicI64::new(i64::MAX),
            injected: AtomicU64::new(0),
            seed: AtomicU64::new(seed),
        };
        InjectFailures { schedule: Arc::new(schedule) }
    }

    /// Failures injected so far in this process.
    pub fn injected(&self) -> u64 {
        self.schedule.injected.load(Ordering::Relaxed)
    }
}

impl<T: Send + 'static> OperatorFactory<T, T> for InjectFailures {
    type Operator = InjectFailures;

    fn open(&self, ctx: &mut OpenContext<'_>) -> OperatorResult<InjectFailures> {
        // Every (re)start counts processing time afresh.
        self.schedule.schedule_from(ctx.processing_time_ms());
        Ok(self.clone())
    }
}

impl<T: Send + 'static> Operator<T, T> for InjectFailures {
    fn process(&mut self, record: T, ctx: &mut OperatorContext<'_>, out: &mut Collector<T>) -> OperatorResult {
        self.process_batch(vec![record], ctx, out)
    }

    fn process_batch(
        &mut self,
        batch: Vec<T>,
        ctx: &mut OperatorContext<'_>,
        out: &mut Collector<T>,
    ) -> OperatorResult {
        let s = &self.schedule;
        let now = ctx.processing_time_ms();
        let due = s.next_ms.load(Ordering::SeqCst);
        if now < due || batch.is_empty() {
            out.emit_all(batch);
            return Ok(());
        }
        // One subtask takes this failure; the others carry on.
        if s.next_ms.compare_exchange(due, i64::MAX, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            out.emit_all(batch);
            return Ok(());
        }
        let at = ((s.spread() - 0.5) * batch.len() as f64) as usize;
        let n = s.injected.fetch_add(1, Ordering::SeqCst) + 1;
        let mut records = batch;
        records.truncate(at.min(records.len()));
        out.emit_all(records);
        panic!("injected failure #{n} (every ~{} ms of processing)", s.mean_ms);
    }
}
