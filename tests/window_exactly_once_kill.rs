//! Acceptance (issue 5): the `window_count` example killed with SIGKILL several times, restarted
//! each time at another parallelism, commits exactly the true per-key, per-window counts, each
//! once — windows open at a crash are restored and fire once, and at the end of input the final
//! watermark fires every window before the final checkpoint. The killed job also feeds its keyed
//! stream to a running count (one stream, two operators): those counts are exactly-once too.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::{
    assert_counts_exactly_once, assert_no_hidden_files, committed_lines, kill_after, summary_field, WindowCount,
};

fn assert_each_window_once(dir: &std::path::Path, job: &WindowCount) {
    let lines = committed_lines(dir);
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "{} window results committed twice", lines.len() - unique.len());
    let expected = job.expected_lines();
    if lines != expected {
        let got: HashSet<&String> = unique;
        let want: HashSet<&String> = expected.iter().collect();
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        panic!(
            "committed {} lines, expected {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
            lines.len(),
            expected.len()
        );
    }
}

#[test]
fn killed_and_rescaled_window_job_commits_every_window_count_exactly_once() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    // Five runs of at most 0.9 s at 150 000 records/s consume at most ~675 000 records: the job
    // is always killed before it ends, and the last run finishes the rest.
    let mut job = WindowCount {
        records: 1_000_000,
        keys: 97,
        parallelism: 2,
        interval_ms: 100,
        window_ms: 500,
        out_of_orderness_ms: 50,
        rate: Some(150_000),
        running_counts: true,
        extra: vec![],
    };
    let parallelisms = [2, 3, 1, 3, 2];
    let mut kills = 0;
    while kills < parallelisms.len() {
        job.parallelism = parallelisms[kills];
        assert!(
            !kill_after(job.spawn(dir.path()), Duration::from_millis(rng.random_range(300..900))),
            "the job finished before being killed; lower the rate"
        );
        kills += 1;
    }
    job.parallelism = 3;
    job.rate = None;
    let out = job.run(dir.path());
    assert_ne!(summary_field(&out, "restored_from"), "none", "the last run must resume from a checkpoint");
    assert_eq!(summary_field(&out, "late"), "0", "ordered input within the bound is never late");
    assert_each_window_once(dir.path(), &job);
    assert_no_hidden_files(dir.path());
    assert_counts_exactly_once(&dir.path().join("running"), job.records, job.keys);
}

#[test]
fn a_straight_run_commits_the_true_window_counts() {
    let dir = tempfile::tempdir().unwrap();
    let job = WindowCount {
        records: 200_000,
        keys: 13,
        parallelism: 2,
        interval_ms: 0,
        window_ms: 1000,
        out_of_orderness_ms: 100,
        rate: None,
        running_counts: false,
        extra: vec![],
    };
    let out = job.run(dir.path());
    assert_eq!(summary_field(&out, "records"), "200000");
    assert_each_window_once(dir.path(), &job);
}

/// The window job with watermarks trailing by 100 ms while records are out of order by up to
/// 500 ms: many records are late, around every barrier.
fn late_records_job() -> WindowCount {
    WindowCount {
        records: 150_000_000,
        keys: 20,
        parallelism: 1,
        interval_ms: 200,
        window_ms: 1000,
        out_of_orderness_ms: 500,
        rate: None,
        running_counts: false,
        extra: vec!["--watermark-lag-ms".into(), "100".into()],
    }
}

#[test]
fn a_killed_and_restored_run_with_late_records_gives_the_output_of_a_straight_run() {
    // Each operator's watermark is in the checkpoint, so the replay after a restore drops exactly
    // the records the straight run dropped, and a window that fired and was purged is not reopened.
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = late_records_job().run(straight_dir.path());
    assert_ne!(summary_field(&straight, "late"), "0", "the input must have late records");

    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(rng.random_range(800..2000));
    assert!(!kill_after(late_records_job().spawn(dir.path()), delay), "the job finished before being killed");
    let restored = late_records_job().run(dir.path());
    assert_ne!(summary_field(&restored, "restored_from"), "none", "the second run resumes from a checkpoint");
    let (a, b) = (committed_lines(straight_dir.path()), committed_lines(dir.path()));
    assert_eq!(a.len(), b.len(), "as many window results as the straight run");
    assert!(a == b, "the committed windows differ from the straight run's");
}
