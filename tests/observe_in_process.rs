//! The job monitor of an in-process job: back-pressure shows when the sink side is slowed, a stop
//! request ends the job with its last checkpoint, a stop that cannot finish in time fails
//! without committing, and keyed state shows its memory per subtask.

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
    monitor.command_sender().send(JobCommand::Stop { savepoint: false, drain: false, reply: None }).unwrap();
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

#[test]
fn keyed_subtasks_show_the_memory_of_their_state_and_sources_show_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (monitor, job) = run_in_thread(move || {
        let env = StreamEnv::builder()
            .checkpoint_dir(path)
            .checkpoint_interval(Duration::from_millis(100))
            .parallelism(2)
            .stop_on_signals(false)
            .build()
            .unwrap();
        env.source("numbers", GeneratorSource::new(0..u64::MAX).rate_per_second(200_000))
            .key_by(|n: &u64| n % 10_000)
            .process(rill::RunningCount::open)
            .sink_to(DiscardSink);
        env
    });
    // After a few checkpoints, RocksDB holds files: their index and filter blocks count too.
    let view = wait_until(&monitor, |v| {
        v.checkpoints_completed >= 3
            && v.vertices.iter().any(|vertex| vertex.subtasks.iter().any(|s| s.state_table_readers_bytes > 0))
    });
    let (sources, keyed): (Vec<_>, Vec<_>) = view.vertices.iter().partition(|v| v.is_source);
    for s in sources.iter().flat_map(|v| &v.subtasks) {
        assert_eq!((s.state_cache_bytes, s.state_memtable_bytes, s.state_table_readers_bytes), (0, 0, 0), "{s:?}");
    }
    let keyed: Vec<_> = keyed.iter().flat_map(|v| &v.subtasks).collect();
    assert_eq!(keyed.len(), 2, "{view:?}");
    for s in keyed {
        // 10,000 keys over two subtasks, each entry estimated at well over 16 bytes.
        assert!(s.state_cache_bytes > 16 * 2_000, "{s:?}");
    }

    let server = rill::observe::serve("127.0.0.1:0".parse().unwrap(), monitor.clone()).unwrap();
    let text = reqwest::blocking::get(format!("http://{}/metrics", server.addr())).unwrap().text().unwrap();
    let lines: Vec<_> = text.lines().filter(|l| l.starts_with("rill_task_state_cache_bytes{")).collect();
    assert_eq!(lines.len(), 2, "one line per keyed subtask, none for the sources:\n{text}");
    assert!(lines.iter().all(|l| !l.contains(r#"vertex="numbers""#)), "{lines:?}");
    stop(&monitor);
    assert!(job.join().unwrap().unwrap().stopped);
}
