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
    };
    let out = job.run(dir.path());
    assert_eq!(summary_field(&out, "records"), "200000");
    assert_each_window_once(dir.path(), &job);
}
