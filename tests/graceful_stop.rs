//! Seeing and steering a running `keyed_count` process: `/metrics` moves while it runs, SIGTERM
//! stops it gracefully (final checkpoint, committed output, exit 0) and the next run continues
//! from there, a savepoint taken over the REST API outlives retention and restores at another
//! parallelism, and a stop with drain fires every window before the last checkpoint.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    assert_exactly_once, committed_lines, counts_by_key, free_addr, get_text, sigterm, summary_field, take_savepoint,
    wait_for_json, KeyedCount, WindowCount,
};

const PATIENCE: Duration = Duration::from_secs(60);

/// A rate-limited `keyed_count` serving its metrics and API on `addr`.
fn observed_job(addr: &str, records: u64, parallelism: usize, interval_ms: u64) -> KeyedCount {
    KeyedCount {
        records,
        keys: 101,
        parallelism,
        interval_ms,
        rate: Some(200_000),
        extra: vec!["--metrics-addr".into(), addr.into()],
    }
}

/// The sum of a metric's samples over all its label sets in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn checkpoints_completed(job: &serde_json::Value) -> u64 {
    job["checkpoints_completed"].as_u64().unwrap_or(0)
}

/// Scrapes `/metrics` until `done` holds (the text), or gives up after [`PATIENCE`] (the last text).
fn wait_for_metrics(addr: &str, done: impl Fn(&str) -> bool) -> Result<String, String> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let text = get_text(addr, "/metrics");
        if done(&text) {
            return Ok(text);
        }
        if std::time::Instant::now() > deadline {
            return Err(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `keyed_count` in `dir` that took a savepoint after its first checkpoint: its API's
/// address, the job, its process and the savepoint's id.
fn running_job_with_a_savepoint(dir: &Path) -> (String, KeyedCount, std::process::Child, u64) {
    let addr = free_addr();
    let job = observed_job(&addr, 4_000_000, 2, 200);
    let child = job.spawn(dir);
    wait_for_json(&addr, "/api/job", PATIENCE, |j| checkpoints_completed(j) >= 1);
    let savepoint = take_savepoint(&addr);
    (addr, job, child, savepoint)
}

fn manifest_text(dir: &Path, id: u64) -> Option<String> {
    std::fs::read_to_string(dir.join("checkpoints").join(format!("chk-{id:010}")).join("_manifest")).ok()
}

#[test]
fn metrics_move_while_the_job_runs_and_the_page_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = observed_job(&addr, 50_000_000, 2, 300).spawn(dir.path());
    wait_for_json(&addr, "/api/job", PATIENCE, |j| checkpoints_completed(j) >= 1);
    let first = get_text(&addr, "/metrics");
    let records_before = metric_sum(&first, "rill_task_records_in_total");
    let checkpoints_before = metric_sum(&first, "rill_checkpoints_completed_total");
    wait_for_json(&addr, "/api/job", PATIENCE, |j| checkpoints_completed(j) as f64 >= checkpoints_before + 2.0);
    // Task counters are published once a second, checkpoint counters as checkpoints complete:
    // wait for the next publication rather than assume one came with the checkpoints.
    let second = wait_for_metrics(&addr, |text| metric_sum(text, "rill_task_records_in_total") > records_before)
        .unwrap_or_else(|last| panic!("records in did not grow within {PATIENCE:?}:\n{last}"));
    assert!(metric_sum(&second, "rill_checkpoints_completed_total") >= checkpoints_before + 2.0, "{second}");
    assert!(
        second.contains(r#"rill_task_records_out_total{job="keyed-count",vertex="generator",subtask="1"}"#),
        "{second}"
    );
    assert!(metric_sum(&second, "rill_checkpoint_last_size_bytes") > 0.0, "{second}");
    assert!(get_text(&addr, "/").contains("<title>rill job</title>"));
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

#[test]
fn sigterm_takes_a_final_checkpoint_exits_zero_and_the_next_run_continues_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let job = observed_job(&addr, 3_000_000, 2, 500);
    let child = job.spawn(dir.path());
    wait_for_json(&addr, "/api/job", PATIENCE, |j| checkpoints_completed(j) >= 1);
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary_field(&out, "stopped"), "true", "{stdout}");
    let read: u64 = summary_field(&out, "records").parse().unwrap();
    assert!(read < job.records, "the job finished before the signal: {stdout}");

    // Every record read before the stop is in the output, exactly once.
    let lines = committed_lines(dir.path());
    assert_eq!(lines.len() as u64, read, "committed lines against records read");
    for (key, counts) in counts_by_key(&lines) {
        assert!(counts.iter().copied().eq(1..=counts.len() as u64), "key {key}: counts are not 1..=n once each");
    }

    // The final checkpoint is the newest; the next run restores it and finishes exactly-once.
    let last = (1..100).rev().find(|id| manifest_text(dir.path(), *id).is_some()).expect("a final checkpoint");
    assert!(manifest_text(dir.path(), last).unwrap().contains(r#""final_checkpoint": true"#));
    let rest = KeyedCount { rate: None, extra: vec![], ..job }.run(dir.path());
    assert_eq!(summary_field(&rest, "restored_from"), last.to_string());
    assert_exactly_once(dir.path(), job.records, job.keys);
}

#[test]
fn a_savepoint_outlives_retention_and_restores_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, job, child, savepoint) = running_job_with_a_savepoint(dir.path());
    assert!(manifest_text(dir.path(), savepoint).unwrap().contains(r#""savepoint": true"#));

    // Five more checkpoints: retention (3 kept) passes the savepoint by.
    wait_for_json(&addr, "/api/job", PATIENCE, |j| j["last_checkpoint"]["id"].as_u64() >= Some(savepoint + 5));
    let listed = wait_for_json(&addr, "/api/checkpoints", PATIENCE, |_| true);
    assert!(listed.as_array().unwrap().iter().any(|c| c["id"] == savepoint && c["savepoint"] == true), "{listed}");
    sigterm(&child);
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(manifest_text(dir.path(), savepoint).is_some(), "retention deleted the savepoint");
    assert!(manifest_text(dir.path(), savepoint + 1).is_none(), "retention kept an old regular checkpoint");

    // Restored at parallelism 3, the job finishes with every record counted exactly once.
    let restored =
        KeyedCount { parallelism: 3, rate: None, extra: vec!["--restore-from".into(), savepoint.to_string()], ..job }
            .run(dir.path());
    assert_eq!(summary_field(&restored, "restored_from"), savepoint.to_string());
    assert_exactly_once(dir.path(), job.records, job.keys);
}

/// A rate-limited `window_count` (1 s tumbling windows, 100 ms out of order) serving its API on
/// `addr`: far from the end of its input when it is stopped.
fn observed_windows(addr: &str) -> WindowCount {
    WindowCount {
        records: 50_000_000,
        keys: 13,
        parallelism: 2,
        interval_ms: 300,
        window_ms: 1000,
        out_of_orderness_ms: 100,
        rate: Some(100_000),
        running_counts: false,
        extra: vec!["--metrics-addr".into(), addr.into()],
    }
}

/// Records counted in the committed windows (`key<TAB>window_start<TAB>count` lines).
fn windowed_records(dir: &Path) -> u64 {
    committed_lines(dir).iter().map(|line| line.rsplit('\t').next().unwrap().parse::<u64>().unwrap()).sum()
}

#[test]
fn a_stop_with_drain_fires_every_window_before_the_last_checkpoint_and_a_plain_stop_leaves_them_open() {
    for drain in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let child = observed_windows(&addr).spawn(dir.path());
        wait_for_json(&addr, "/api/job", PATIENCE, |j| checkpoints_completed(j) >= 2);
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("http://{addr}/api/stop?drain={drain}"))
            .header("Content-Type", "application/json")
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(answer["checkpoint"].as_u64().is_some(), "drain={drain}: no checkpoint id: {answer}");
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "drain={drain}: exit {:?}\n{stdout}", out.status);
        assert_eq!(summary_field(&out, "stopped"), "true", "{stdout}");
        let read: u64 = summary_field(&out, "records").parse().unwrap();
        let windowed = windowed_records(dir.path());
        if drain {
            assert_eq!(windowed, read, "with drain every record read is in a fired window: {stdout}");
        } else {
            assert!(windowed < read, "without drain the open windows stay unfired ({windowed} of {read})");
        }
    }
}

#[test]
fn a_savepoint_whose_committed_output_was_deleted_restores_and_counts_one_missing_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, child, savepoint) = running_job_with_a_savepoint(dir.path());
    sigterm(&child);
    assert!(child.wait_with_output().unwrap().status.success());

    // A consumer moves away one file the savepoint's transactions committed.
    let output = dir.path().join("output");
    let committed_by_savepoint = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("part-{savepoint:010}-")))
        .expect("the savepoint committed a file");
    std::fs::remove_file(&committed_by_savepoint).unwrap();

    let addr = free_addr();
    let restored = KeyedCount {
        extra: vec!["--metrics-addr".into(), addr.clone(), "--restore-from".into(), savepoint.to_string()],
        ..observed_job(&addr, 4_000_000, 2, 200)
    };
    let mut child = restored.spawn(dir.path());
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut text = String::new();
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        let scraped = reqwest::blocking::get(format!("http://{addr}/metrics")).and_then(|r| r.text());
        text = scraped.unwrap_or_default();
        if metric_sum(&text, "rill_sink_commits_missing_total") >= 1.0 {
            sigterm(&child);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if std::time::Instant::now() >= deadline {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the restored job runs and stops normally: {stderr}");
    assert_eq!(metric_sum(&text, "rill_sink_commits_missing_total"), 1.0, "one missing commit counted: {text}");
    let name = committed_by_savepoint.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr.contains("cannot be committed again") && stderr.contains(&name), "the warning names it: {stderr}");
}

#[test]
fn a_window_job_stopped_and_restarted_with_a_second_consumer_restores_its_windows() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let job = WindowCount { records: 600_000, ..observed_windows(&addr) };
    let child = job.spawn(dir.path());
    wait_for_json(&addr, "/api/job", PATIENCE, |j| checkpoints_completed(j) >= 2);
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary_field(&out, "stopped"), "true");

    // The keyed stream gets a second consumer (running counts): the window's chain changes.
    let again = WindowCount { rate: None, running_counts: true, extra: vec![], ..job };
    let out = again.run(dir.path());
    assert_ne!(summary_field(&out, "restored_from"), "none", "the windows were restored");
    let verify = WindowCount { running_counts: false, extra: vec!["--verify".into()], ..again };
    let out = verify.run(dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified=ok"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_public_metrics_address_serves_no_control_and_the_control_address_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr().replace("127.0.0.1", "0.0.0.0");
    let control = free_addr();
    let job = KeyedCount {
        extra: ["--metrics-addr", &metrics, "--control-addr", &control, "--control-token", "s3cret"]
            .map(String::from)
            .to_vec(),
        ..observed_job(&metrics, 4_000_000, 2, 200)
    };
    let child = job.spawn(dir.path());
    let local_metrics = metrics.replace("0.0.0.0", "127.0.0.1");
    wait_for_json(&local_metrics, "/api/job", PATIENCE, |j| checkpoints_completed(j) >= 1);
    let stop = |addr: &str, token: Option<&str>| {
        let mut request = reqwest::blocking::Client::new()
            .post(format!("http://{addr}/api/stop"))
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send().unwrap().status()
    };
    assert_eq!(stop(&local_metrics, Some("s3cret")), 403, "no control on the public metrics address");
    assert_eq!(stop(&control, None), 401, "the control address needs the token");
    assert!(stop(&control, Some("s3cret")).is_success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary_field(&out, "stopped"), "true");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"), "the token is never printed");
}
