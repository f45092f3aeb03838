//! A failure is reported once: a job whose task panics and is not restarted prints the panic's
//! message once on stderr (in the job's error, with where it happened), not also through the
//! default panic hook or again as the cause of each error that wraps it.

mod support;

use support::KeyedCount;

#[test]
fn a_task_panic_that_ends_the_job_is_reported_once_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let job = KeyedCount {
        records: 50_000_000,
        keys: 100,
        parallelism: 2,
        interval_ms: 100,
        rate: Some(500_000),
        extra: ["--inject-failure-every-ms", "300", "--restart-strategy", "none"].map(String::from).to_vec(),
    };
    let output = job.command(dir.path()).output().expect("run keyed_count");
    assert!(!output.status.success(), "the injected failure ends the job");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("injected failure #1").count(), 1, "reported once:\n{stderr}");
    assert!(stderr.contains("inject_failures.rs:"), "with where it panicked:\n{stderr}");
    assert!(!stderr.contains("panicked at"), "not by the default panic hook:\n{stderr}");
}
