//! Acceptance: kill -9 at random points, restart with the same command, and every input is
//! counted exactly once in the committed output; restoring at another parallelism gives the
//! same result as a straight run.

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::{assert_exactly_once, assert_no_hidden_files, committed_lines, kill_after, summary_field, KeyedCount};

#[test]
fn killed_and_restarted_job_counts_every_record_exactly_once() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    // A cache of 20 entries per state for 97 keys: state is read from and spilled to RocksDB all the time.
    let job = KeyedCount {
        records: 600_000,
        keys: 97,
        parallelism: 2,
        interval_ms: 100,
        rate: Some(200_000),
        extra: vec!["--cache-entries".into(), "20".into()],
    };
    let mut kills = 0;
    while kills < 6 {
        if !kill_after(job.spawn(dir.path()), Duration::from_millis(rng.random_range(150..700))) {
            kills += 1;
        }
    }
    let out = job.run(dir.path());
    assert_ne!(summary_field(&out, "restored_from"), "none", "the last run must resume from a checkpoint");
    assert_exactly_once(dir.path(), job.records, job.keys);
    assert_no_hidden_files(dir.path());
}

fn straight_run(records: u64, keys: u64, parallelism: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    KeyedCount { records, keys, parallelism, interval_ms: 0, rate: None, extra: vec![] }.run(dir.path());
    committed_lines(dir.path())
}

fn rescaled_run(records: u64, keys: u64, from: usize, to: usize) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let first = KeyedCount { records, keys, parallelism: from, interval_ms: 50, rate: Some(150_000), extra: vec![] };
    assert!(!kill_after(first.spawn(dir.path()), Duration::from_millis(900)), "first run finished before the kill");
    let second = KeyedCount { records, keys, parallelism: to, interval_ms: 50, rate: None, extra: vec![] };
    let out = second.run(dir.path());
    let restored = summary_field(&out, "restored_from");
    assert_exactly_once(dir.path(), records, keys);
    (committed_lines(dir.path()), restored)
}

#[test]
fn restore_from_parallelism_two_to_three_gives_identical_results() {
    let expected = straight_run(300_000, 50, 2);
    let (lines, restored) = rescaled_run(300_000, 50, 2, 3);
    assert_ne!(restored, "none");
    assert_eq!(lines, expected);
}

#[test]
fn restore_from_parallelism_three_to_one_gives_identical_results() {
    let expected = straight_run(300_000, 50, 3);
    let (lines, restored) = rescaled_run(300_000, 50, 3, 1);
    assert_ne!(restored, "none");
    assert_eq!(lines, expected);
}

#[test]
fn second_job_on_the_same_directory_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let job = KeyedCount {
        records: 1_000_000,
        keys: 10,
        parallelism: 1,
        interval_ms: 100,
        rate: Some(100_000),
        extra: vec![],
    };
    let mut first = job.spawn(dir.path());
    std::thread::sleep(Duration::from_millis(300));
    let second = job.command(dir.path()).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another running job"), "stderr: {stderr}");
}
