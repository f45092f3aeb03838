//! In-process failure handling: a failing task restarts the job from the latest checkpoint
//! under the restart strategy, or fails the job with the cause once the strategy gives up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill::prelude::*;
use rill::{RestartStrategy, RuntimeError};

mod support;

/// Panics once when it sees record `at`, the first `failures` times.
#[derive(Clone)]
struct FailOnce {
    at: u64,
    failures: Arc<AtomicU64>,
}

impl Operator<u64, u64> for FailOnce {
    fn process(&mut self, record: u64, _ctx: &mut rill::Context<'_>, out: &mut Collector<u64>) -> rill::Result<()> {
        if record == self.at && self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            panic!("injected failure at record {record}");
        }
        out.emit(record);
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Count(Option<ValueState<u64>>);

impl KeyedProcessFunction<u64, u64, String> for Count {
    fn open(&mut self, state: &mut StateRegistry<'_, u64>) -> rill::Result<()> {
        self.0 = Some(state.value("n")?);
        Ok(())
    }
    fn process(&mut self, _r: u64, ctx: &mut KeyedContext<'_, u64>, out: &mut Collector<String>) -> rill::Result<()> {
        let state = self.0.ok_or_else(|| RuntimeError::user("count", "not opened"))?;
        let n = state.get(ctx.state())?.unwrap_or(0) + 1;
        state.set(ctx.state(), n)?;
        out.emit(format!("{}\t{n}", ctx.key()));
        Ok(())
    }
}

fn job(dir: &std::path::Path, failures: u64, strategy: RestartStrategy) -> rill::Result<rill::JobResult> {
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(20))
        .checkpoint_dir(dir.join("checkpoints"))
        .restart_strategy(strategy)
        .build()?;
    env.source("generator", GeneratorSource::new(0..200_000).rate_per_second(400_000))
        .transform("fail-once", FailOnce { at: 150_000, failures: Arc::new(AtomicU64::new(failures)) })
        .key_by(|n: &u64| n % 13)
        .process(Count::default())
        .sink_to(FileSink::exactly_once(dir.join("output")));
    env.execute("restart-test")
}

#[test]
fn panicking_task_restarts_from_checkpoint_and_output_stays_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let result = job(dir.path(), 1, RestartStrategy::fixed_delay(3, Duration::from_millis(10))).unwrap();
    assert_eq!(result.restarts, 1);
    assert!(result.records > 200_000, "the records after the restored checkpoint were replayed");
    support::assert_exactly_once(dir.path(), 200_000, 13);
}

#[test]
fn job_fails_with_the_cause_once_restarts_are_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let err = job(dir.path(), 10, RestartStrategy::fixed_delay(2, Duration::from_millis(1))).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("after 3 attempt(s)"), "{text}");
    assert!(text.contains("injected failure at record 150000"), "{text}");
}

/// A source that fails with an error of its own after some records.
#[derive(Clone)]
struct FailingSource {
    emitted: u64,
}

impl rill::Source<u64> for FailingSource {
    fn open(&mut self, _ctx: &mut rill::Context<'_>) -> rill::Result<()> {
        Ok(())
    }
    fn poll(&mut self, _ctx: &mut rill::Context<'_>, out: &mut Collector<u64>) -> rill::Result<rill::SourcePoll> {
        if self.emitted >= 3_000 {
            return Err(RuntimeError::user("failing source", "the upstream system went away"));
        }
        for n in self.emitted..self.emitted + 1000 {
            out.emit(n);
        }
        self.emitted += 1000;
        Ok(rill::SourcePoll::Ready)
    }
    fn snapshot(&mut self, _epoch: u64, _ctx: &mut rill::Context<'_>) -> rill::Result<Vec<Vec<u8>>> {
        Ok(vec![])
    }
}

#[test]
fn job_failure_names_the_task_that_failed_not_its_neighbours_closed_channel() {
    // The race between the failing task and its neighbours is timing-dependent: try many times.
    for _ in 0..100 {
        let dir = tempfile::tempdir().unwrap();
        let env = StreamEnv::builder()
            .parallelism(2)
            .checkpoint_dir(dir.path())
            .restart_strategy(RestartStrategy::none())
            .build()
            .unwrap();
        let (sink, _out) = CollectSink::new();
        env.source("failing", FailingSource { emitted: 0 }).key_by(|n: &u64| n % 7).into_stream().sink_to(sink);
        let text = env.execute("failing").unwrap_err().to_string();
        assert!(text.contains("the upstream system went away"), "{text}");
    }
}
