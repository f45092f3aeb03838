//! Operator uids (issues 9 and 26): state belongs to operator uids, so a job can change around
//! operators with uids and still restore into them; a generated uid follows the operator's place
//! in the topology, so a change around operators without uids fails the restore naming their
//! state, never restoring one operator's state into another; state that no operator claims fails
//! the restore, naming it, unless non-restored state is allowed; two file sinks on one directory
//! are refused.

use std::time::Duration;

use rill::prelude::*;
use rill::{InjectFailures, RestartStrategy};

mod support;

const RECORDS: u64 = 400_000;
const KEYS: u64 = 11;

/// The counting job; `extra_map` inserts operators before the sink and after the source,
/// `uids` names the source, the count and the sink (`None`: generated), `fail_every` makes the run
/// fail (no restarts) after a while.
fn job(
    dir: &std::path::Path,
    extra_map: bool,
    uids: Option<[&str; 3]>,
    fail_every: Option<u64>,
    allow: bool,
) -> rill::Result<rill::JobResult> {
    let env = test_env(dir, allow)?;
    let mut numbers = env.source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000));
    if let Some([source, _, _]) = uids {
        numbers = numbers.uid(source);
    }
    numbers = numbers
        .transform("inject-failures", InjectFailures::every(Duration::from_millis(fail_every.unwrap_or(3_600_000))));
    if extra_map {
        numbers = numbers.filter(|_| true);
    }
    let mut counts = numbers.key_by(|n: &u64| n % KEYS).process(RunningCount::open);
    if let Some([_, count, _]) = uids {
        counts = counts.uid(count);
    }
    let mut lines = counts.map(|(k, n)| format!("{k}\t{n}"));
    if extra_map {
        lines = lines.map(|line| line);
    }
    let sink = lines.sink_to(FileSink::exactly_once(dir.join("output")));
    if let Some([_, _, uid]) = uids {
        sink.uid(uid);
    }
    env.execute("uids")
}

const UIDS: Option<[&str; 3]> = Some(["numbers", "counts", "sink"]);

/// Two subtasks, no restarts, checkpoints in `dir/checkpoints` every 50 ms.
fn test_env(dir: &std::path::Path, allow_non_restored_state: bool) -> rill::Result<StreamEnv> {
    StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(50))
        .checkpoint_dir(dir.join("checkpoints"))
        .restart_strategy(RestartStrategy::none())
        .allow_non_restored_state(allow_non_restored_state)
        .build()
}

/// A first run that the injected failure ended, leaving checkpoints to restore.
fn ended_by_the_injected_failure(result: rill::Result<rill::JobResult>) {
    let err = result.expect_err("the injected failure ends the first run");
    assert!(err.to_string().contains("injected failure"), "{err}");
}

/// A changed job's run that restored the checkpoint and committed every record exactly once.
fn restored_exactly_once(dir: &std::path::Path, result: rill::Result<rill::JobResult>) {
    let result = result.unwrap();
    assert!(result.restored_from.is_some(), "the changed job restored the checkpoint");
    support::assert_exactly_once(dir, RECORDS, KEYS);
}

/// A first run that fails after some checkpoints, leaving them to restore.
fn failed_first_run(dir: &std::path::Path, uids: Option<[&str; 3]>) {
    ended_by_the_injected_failure(job(dir, false, uids, Some(400), false));
}

#[test]
fn operators_added_around_operators_with_uids_leave_their_state_to_them() {
    let dir = tempfile::tempdir().unwrap();
    failed_first_run(dir.path(), UIDS);
    restored_exactly_once(dir.path(), job(dir.path(), true, UIDS, None, false));
}

#[test]
fn operators_added_around_operators_without_uids_fail_the_restore_naming_their_state() {
    let dir = tempfile::tempdir().unwrap();
    failed_first_run(dir.path(), None);
    let err = job(dir.path(), true, None, None, false).expect_err("generated uids moved with the change");
    let text = err.to_string();
    assert!(text.contains("keyed state of operator 'process-"), "names the count's state: {text}");
    assert_eq!(err.class(), rill::ErrorClass::Fatal);
}

#[test]
fn state_no_operator_claims_fails_the_restore_naming_it_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    failed_first_run(dir.path(), UIDS);
    let renamed = Some(["numbers", "counts", "renamed-sink"]);
    let err = job(dir.path(), false, renamed, None, false).expect_err("the sink's state is unclaimed");
    let text = err.to_string();
    assert!(text.contains("state of operator 'sink'"), "names the state: {text}");
    assert_eq!(err.class(), rill::ErrorClass::Fatal);
    let result = job(dir.path(), false, renamed, None, true).unwrap();
    assert!(result.restored_from.is_some(), "allowed: the rest of the state is restored");
}

#[test]
fn two_file_sinks_on_one_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder().checkpoint_dir(dir.path().join("checkpoints")).build().unwrap();
    let numbers = env.source("numbers", GeneratorSource::new(0..100));
    numbers.clone().sink_to(FileSink::exactly_once(dir.path().join("out"))).uid("first");
    numbers.map(|n| n + 1).sink_to(FileSink::exactly_once(dir.path().join("out"))).uid("second");
    let text = env.execute("two-sinks").unwrap_err().to_string();
    assert!(text.contains("both write to") && text.contains("first") && text.contains("second"), "{text}");
}

#[test]
fn two_operators_with_one_uid_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder().checkpoint_dir(dir.path()).build().unwrap();
    let (sink, _) = CollectSink::new();
    env.source("numbers", GeneratorSource::new(0..10)).map(|n| n).uid("same").map(|n| n).uid("same").sink_to(sink);
    let text = env.execute("dup").unwrap_err().to_string();
    assert!(text.contains("two operators have the uid 'same'"), "{text}");
}

/// A job whose records get event time (so watermarks flow through every operator), with a
/// stateless `map` (uid `stateless`) when `with_map`; fails after a while when `fail_every`.
fn event_time_job(dir: &std::path::Path, with_map: bool, fail_every: Option<u64>) -> rill::Result<rill::JobResult> {
    let env = test_env(dir, false)?;
    let mut numbers = env
        .source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000))
        .uid("numbers")
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(|n: &u64| *n as i64))
        .transform("inject-failures", InjectFailures::every(Duration::from_millis(fail_every.unwrap_or(3_600_000))));
    if with_map {
        numbers = numbers.map(|n| n).uid("stateless");
    }
    let counts = numbers.key_by(|n: &u64| n % KEYS).process(RunningCount::open).uid("counts");
    counts.map(|(k, n)| format!("{k}\t{n}")).sink_to(FileSink::exactly_once(dir.join("output"))).uid("sink");
    env.execute("stateless")
}

#[test]
fn a_stateless_operator_can_be_removed_without_allowing_non_restored_state() {
    let dir = tempfile::tempdir().unwrap();
    ended_by_the_injected_failure(event_time_job(dir.path(), true, Some(400)));
    // The map saved nothing but its watermark: removing it loses nothing, so the restore goes on.
    restored_exactly_once(dir.path(), event_time_job(dir.path(), false, None));
}

/// The counting job (running counts under uid `counts`); with `second_consumer`, the keyed
/// stream also feeds another running count, added first, so it heads the chain after the
/// exchange and the chain's id changes.
fn two_consumer_job(
    dir: &std::path::Path,
    second_consumer: bool,
    fail_every: Option<u64>,
) -> rill::Result<rill::JobResult> {
    let env = test_env(dir, false)?;
    let numbers = env
        .source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000))
        .uid("numbers")
        .transform("inject-failures", InjectFailures::every(Duration::from_millis(fail_every.unwrap_or(3_600_000))));
    let keyed = numbers.key_by(|n: &u64| n % KEYS);
    if second_consumer {
        let more = keyed.clone().process(RunningCount::open).uid("more-counts").map(|(k, n)| format!("{k}\t{n}"));
        more.sink_to(FileSink::exactly_once(dir.join("more"))).uid("more-sink");
    }
    let lines = keyed.process(RunningCount::open).uid("counts").map(|(k, n)| format!("{k}\t{n}"));
    lines.sink_to(FileSink::exactly_once(dir.join("output"))).uid("sink");
    env.execute("two-consumers")
}

#[test]
fn keyed_state_follows_its_operator_when_a_new_consumer_changes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    ended_by_the_injected_failure(two_consumer_job(dir.path(), false, Some(400)));
    // The keyed stream gets a second consumer: the chain after the exchange is now headed by it.
    restored_exactly_once(dir.path(), two_consumer_job(dir.path(), true, None));
}

/// The newcomer's job: running counts by a `process` without uid; `inserted` adds a second
/// unnamed `process` (running counts of the first one's output) before it; `uids` names both.
fn newcomer_job(
    dir: &std::path::Path,
    inserted: bool,
    uids: bool,
    fail_every: Option<u64>,
) -> rill::Result<rill::JobResult> {
    let env = test_env(dir, false)?;
    let numbers = env
        .source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000))
        .uid("numbers")
        .transform("inject-failures", InjectFailures::every(Duration::from_millis(fail_every.unwrap_or(3_600_000))));
    let mut keyed = numbers.key_by(|n: &u64| n % KEYS);
    if inserted {
        let mut first = keyed.process(RunningCount::open);
        if uids {
            first = first.uid("first-counts");
        }
        keyed = first.map(|(k, _)| k).key_by(|k: &u64| *k);
    }
    let mut counts = keyed.process(RunningCount::open);
    if uids {
        counts = counts.uid("counts");
    }
    counts.map(|(k, n)| format!("{k}\t{n}")).sink_to(FileSink::exactly_once(dir.join("output"))).uid("sink");
    env.execute("newcomer")
}

#[test]
fn a_process_inserted_before_one_without_uid_fails_the_restore_instead_of_taking_its_state() {
    let dir = tempfile::tempdir().unwrap();
    ended_by_the_injected_failure(newcomer_job(dir.path(), false, false, Some(400)));
    let err = newcomer_job(dir.path(), true, false, None).expect_err("the original's state is unclaimed");
    let text = err.to_string();
    assert!(text.contains("keyed state of operator 'process-"), "names the original's state: {text}");
}

#[test]
fn a_process_inserted_before_one_with_uid_leaves_its_state_to_it() {
    let dir = tempfile::tempdir().unwrap();
    ended_by_the_injected_failure(newcomer_job(dir.path(), false, true, Some(400)));
    restored_exactly_once(dir.path(), newcomer_job(dir.path(), true, true, None));
}
