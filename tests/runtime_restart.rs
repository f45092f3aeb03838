//! In-process failure handling: a failing task restarts the job from the latest checkpoint
//! under the restart strategy, or fails the job with the cause once the strategy gives up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill::prelude::*;
use rill::{ErrorClass, RestartStrategy};

mod support;

/// Panics once when it sees record `at`, the first `failures` times.
#[derive(Clone)]
struct FailOnce {
    at: u64,
    failures: Arc<AtomicU64>,
}

impl Operator<u64, u64> for FailOnce {
    fn process(
        &mut self,
        record: u64,
        _ctx: &mut rill::OperatorContext<'_>,
        out: &mut Collector<u64>,
    ) -> OperatorResult {
        if record == self.at && self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            panic!("injected failure at record {record}");
        }
        out.emit(record);
        Ok(())
    }
}

struct KeyCount(ValueState<u64, u64>);

impl KeyedProcessFunction<u64, u64, String> for KeyCount {
    fn process(&mut self, _r: u64, ctx: &mut KeyedContext<'_, u64>, out: &mut Collector<String>) -> OperatorResult {
        let n = self.0.get(ctx.state())?.unwrap_or(0) + 1;
        self.0.set(ctx.state(), n)?;
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
        .transform("fail-once", ClonePerSubtask(FailOnce { at: 150_000, failures: Arc::new(AtomicU64::new(failures)) }))
        .key_by(|n: &u64| n % 13)
        .process(|state| Ok(KeyCount(state.value("n")?)))
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
struct FailingSource {
    emitted: u64,
}

/// Each subtask opens a fresh one (it has no position to restore).
impl rill::SourceFactory<u64> for FailingSource {
    type Source = FailingSource;

    fn open(&self, _ctx: &mut OpenContext<'_>, _restored: Vec<()>) -> OperatorResult<FailingSource> {
        Ok(FailingSource { emitted: self.emitted })
    }
}

impl rill::Source<u64> for FailingSource {
    type Position = ();

    fn poll(
        &mut self,
        _ctx: &mut rill::OperatorContext<'_>,
        out: &mut Collector<u64>,
    ) -> OperatorResult<rill::SourcePoll> {
        if self.emitted >= 3_000 {
            return Err("the upstream system went away".into());
        }
        for n in self.emitted..self.emitted + 1000 {
            out.emit(n);
        }
        self.emitted += 1000;
        Ok(rill::SourcePoll::Ready)
    }
    fn on_barrier(&mut self, _barrier: rill::Barrier, _ctx: &mut rill::OperatorContext<'_>) -> OperatorResult<Vec<()>> {
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
        assert!(text.contains("operator failing in failing["), "names the operator and subtask: {text}");
    }
}

/// A job whose window has a bad configuration, with a generous restart strategy.
fn job_with_a_zero_size_window(dir: &std::path::Path) -> rill::Result<rill::JobResult> {
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_dir(dir)
        .restart_strategy(RestartStrategy::fixed_delay(5, Duration::from_millis(200)))
        .build()?;
    let (sink, _out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..1_000))
        .key_by(|n: &u64| n % 3)
        .window(WindowAssigner::tumbling(Duration::ZERO), |n: &u64| *n as i64)
        .aggregate(Count)
        .sink_to(sink);
    env.execute("bad-window")
}

#[test]
fn a_bad_configuration_fails_the_job_at_once_without_restarts_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let err = job_with_a_zero_size_window(dir.path()).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.class(), ErrorClass::Fatal, "{text}");
    assert!(text.contains("after 1 attempt(s)"), "no restart: {text}");
    assert!(text.contains("window-aggregate"), "names the operator: {text}");
    assert!(text.contains("window size must be positive"), "names the cause: {text}");
    assert!(started.elapsed() < Duration::from_secs(1), "did not wait for 5 restart delays");
}

/// Fails with an error the user marked fatal at record `at`.
#[derive(Clone)]
struct RejectRecord {
    at: u64,
}

impl Operator<u64, u64> for RejectRecord {
    fn process(
        &mut self,
        record: u64,
        _ctx: &mut rill::OperatorContext<'_>,
        out: &mut Collector<u64>,
    ) -> OperatorResult {
        if record == self.at {
            return Err(fatal(format!("record {record} is malformed")));
        }
        out.emit(record);
        Ok(())
    }
}

#[test]
fn an_error_marked_fatal_skips_restarts_while_a_transient_one_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder()
        .checkpoint_dir(dir.path())
        .restart_strategy(RestartStrategy::fixed_delay(5, Duration::from_millis(1)))
        .build()
        .unwrap();
    let (sink, _out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..1_000))
        .transform("reject", ClonePerSubtask(RejectRecord { at: 500 }))
        .sink_to(sink);
    let text = env.execute("fatal").unwrap_err().to_string();
    assert!(text.contains("after 1 attempt(s)") && text.contains("record 500 is malformed"), "{text}");

    // The same failure, not marked fatal (a panic), is retried until the strategy gives up.
    let dir = tempfile::tempdir().unwrap();
    let err = job(dir.path(), 10, RestartStrategy::fixed_delay(2, Duration::from_millis(1))).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert!(err.to_string().contains("after 3 attempt(s)"), "{err}");
}

#[test]
fn restoring_a_checkpoint_that_does_not_exist_fails_at_once_naming_it_whatever_the_restart_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder()
        .checkpoint_dir(dir.path())
        .restart_strategy(RestartStrategy::default())
        .restore_from(999)
        .build()
        .unwrap();
    let (sink, _out) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..10)).sink_to(sink);
    let err = env.execute("missing").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("checkpoint 999") && text.contains("no manifest"), "{text}");
    assert_eq!(err.class(), ErrorClass::Fatal, "{text}");
}

#[test]
fn a_checkpoint_id_is_never_used_twice_even_after_its_leftover_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let env = StreamEnv::builder()
            .checkpoint_dir(dir.path())
            .checkpoint_interval(Duration::from_millis(10))
            .build()
            .unwrap();
        let (sink, _out) = CollectSink::new();
        env.source("numbers", GeneratorSource::new(0..1_000)).sink_to(sink);
        env.execute("ids").unwrap()
    };
    let first = run();
    let complete = |dir: &std::path::Path| -> Vec<u64> {
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("_manifest").exists())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    };
    let last = *complete(dir.path()).last().expect("the first run left a checkpoint");
    assert!(first.checkpoints > 0);
    // An attempt that died before completing checkpoint last + 5 left its directory behind.
    let leftover = last + 5;
    std::fs::create_dir_all(dir.path().join(format!("chk-{leftover:010}")).join("numbers-0")).unwrap();
    let second = run();
    assert_eq!(second.restored_from, Some(last));
    let newest = *complete(dir.path()).last().unwrap();
    assert!(newest > leftover, "the second run's checkpoint {newest} reused an id up to the leftover's {leftover}");
}
