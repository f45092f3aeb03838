//! The job monitor of an in-process job: back-pressure shows when the sink side is slowed, a stop
//! request ends the job with its last checkpoint, and a stop that cannot finish in time fails
//! without committing.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rill::observe::{JobCommand, JobMonitor};
use rill::prelude::*;

/// Builds a job in a thread of its own (a `StreamEnv` stays on its thread), hands back its
/// monitor, and returns the job's result when joined.
fn run_in_thread(
    build: impl FnOnce() -> StreamEnv + Send + 'static,
) -> (JobMonitor, std::thread::JoinHandle<rill::Result<rill::JobResult>>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let env = build();
        tx.send(env.monitor()).unwrap();
        env.execute("observed")
    });
    (rx.recv().unwrap(), handle)
}

/// Polls the monitor's view until `ready` holds (panics after a minute).
fn wait_until(monitor: &JobMonitor, ready: impl Fn(&rill::observe::JobView) -> bool) -> rill::observe::JobView {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = monitor.view();
        if ready(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "never got there: {view:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(monitor: &JobMonitor) {
    monitor.command_sender().send(JobCommand::Stop { savepoint: false, reply: None }).unwrap();
}

fn slow_job(dir: std::path::PathBuf, per_record: Duration, stop_timeout: Duration) -> StreamEnv {
    let env = StreamEnv::builder()
        .checkpoint_dir(dir)
        .checkpoint_interval(Duration::from_millis(200))
        .channel_capacity(2)
        .stop_on_signals(false)
        .stop_timeout(stop_timeout)
        .build()
        .unwrap();
    env.source("numbers", GeneratorSource::new(0..u64::MAX))
        .rebalance()
        .map(move |n: u64| {
            std::thread::sleep(per_record);
            n
        })
        .sink_to(DiscardSink);
    env
}

#[test]
fn back_pressure_shows_on_the_source_when_the_next_operator_is_slow_and_a_stop_ends_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (monitor, job) = run_in_thread(move || slow_job(path, Duration::from_micros(20), Duration::from_secs(30)));
    let view = wait_until(&monitor, |v| v.vertices.first().is_some_and(|s| s.backpressured_ms_per_second > 500.0));
    assert!(view.vertices[1].busy_ms_per_second > 500.0, "the slow operator is busy: {:?}", view.vertices[1]);

    // The same figure in Prometheus text.
    let server = rill::observe::serve("127.0.0.1:0".parse().unwrap(), monitor.clone()).unwrap();
    let text = reqwest::blocking::get(format!("http://{}/metrics", server.addr())).unwrap().text().unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"rill_task_backpressured_time_ms_per_second{job="observed",vertex="numbers""#))
        .unwrap_or_else(|| panic!("no back-pressure line:\n{text}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value > 0.0, "{line}");

    wait_until(&monitor, |v| v.checkpoints_completed >= 1);
    stop(&monitor);
    let result = job.join().unwrap().unwrap();
    assert!(result.stopped);
    let last = monitor.checkpoints().into_iter().next().unwrap();
    assert!(last.last && last.status == rill::observe::CheckpointStatus::Completed, "{last:?}");
}

#[test]
fn a_stop_whose_last_checkpoint_cannot_finish_in_time_fails_without_committing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (monitor, job) = run_in_thread(move || slow_job(path, Duration::from_millis(2), Duration::from_millis(300)));
    wait_until(&monitor, |v| v.vertices.get(1).is_some_and(|m| m.records_in > 0));
    stop(&monitor);
    let error = job.join().unwrap().unwrap_err();
    assert!(error.to_string().contains("did not stop within 300ms"), "{error}");
    assert!(
        monitor.checkpoints().iter().all(|c| !c.last || c.status != rill::observe::CheckpointStatus::Completed),
        "a last checkpoint completed: {:?}",
        monitor.checkpoints()
    );
}
