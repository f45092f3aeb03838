//! Checkpoints that do not complete (issue 9): a checkpoint stalled past the checkpoint timeout
//! is abandoned; beyond the tolerable number of failures in a row the job fails over and
//! restarts from the latest complete checkpoint. Either way the output stays exactly-once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill::prelude::*;
use rill::{Barrier, RestartStrategy};

mod support;

/// Passes records on; at the barrier of checkpoint `epoch` (once per test) it stalls.
#[derive(Clone)]
struct StallAtBarrier {
    epoch: u64,
    stall: Duration,
    stalled: Arc<AtomicBool>,
}

impl Operator<u64, u64> for StallAtBarrier {
    fn process(
        &mut self,
        record: u64,
        _ctx: &mut rill::OperatorContext<'_>,
        out: &mut Collector<u64>,
    ) -> OperatorResult {
        out.emit(record);
        Ok(())
    }

    fn on_barrier(
        &mut self,
        barrier: Barrier,
        _ctx: &mut rill::OperatorContext<'_>,
        _out: &mut Collector<u64>,
    ) -> OperatorResult {
        if barrier.epoch == self.epoch && !self.stalled.swap(true, Ordering::SeqCst) {
            std::thread::sleep(self.stall);
        }
        Ok(())
    }
}

const RECORDS: u64 = 200_000;
const KEYS: u64 = 17;

fn job(dir: &std::path::Path, tolerable: usize) -> rill::Result<rill::JobResult> {
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(100))
        .checkpoint_timeout(Duration::from_millis(1000))
        .tolerable_checkpoint_failures(tolerable)
        .restart_strategy(RestartStrategy::fixed_delay(3, Duration::from_millis(10)))
        .checkpoint_dir(dir.join("checkpoints"))
        .build()?;
    let stall =
        StallAtBarrier { epoch: 3, stall: Duration::from_millis(1700), stalled: Arc::new(AtomicBool::new(false)) };
    env.source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(100_000))
        .transform("stall", ClonePerSubtask(stall))
        .key_by(|n: &u64| n % KEYS)
        .process(RunningCount::open)
        .map(|(key, n)| format!("{key}\t{n}"))
        .sink_to(FileSink::exactly_once(dir.join("output")));
    env.execute("stalled-checkpoint")
}

#[test]
fn a_checkpoint_past_its_timeout_fails_the_job_over_and_the_restart_finishes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let result = job(dir.path(), 0).unwrap();
    assert_eq!(result.restarts, 1, "the expired checkpoint failed the job over once");
    support::assert_exactly_once(dir.path(), RECORDS, KEYS);
}

#[test]
fn a_tolerated_checkpoint_failure_is_abandoned_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let result = job(dir.path(), 1).unwrap();
    assert_eq!(result.restarts, 0, "one expired checkpoint is tolerated");
    assert!(result.checkpoints >= 3, "later checkpoints complete: {}", result.checkpoints);
    support::assert_exactly_once(dir.path(), RECORDS, KEYS);
}
