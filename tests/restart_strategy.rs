//! Restart strategies in a real process (issue 9): the `keyed_count` example with a task failure
//! injected every few seconds survives many more failures than the old lifetime budget of three,
//! with exactly-once output.

mod support;

use support::{assert_exactly_once, summary_field, KeyedCount};

#[test]
fn a_minute_of_injected_task_failures_is_survived_with_exactly_once_output() {
    let dir = tempfile::tempdir().unwrap();
    let job = KeyedCount {
        records: 3_000_000,
        keys: 101,
        parallelism: 2,
        interval_ms: 500,
        rate: Some(50_000),
        extra: ["--inject-failure-every-ms", "3000", "--restart-strategy", "exponential-delay:100:1000:10000"]
            .map(String::from)
            .to_vec(),
    };
    let out = job.run(dir.path());
    let restarts: u64 = summary_field(&out, "restarts").parse().unwrap();
    assert!(restarts >= 10, "only {restarts} injected failures in the run");
    assert_exactly_once(dir.path(), job.records, job.keys);
}
