//! Operator uids (issue 9): state belongs to operator uids that do not depend on an operator's
//! position, so a job can change around its operators and still restore into them; state that no
//! operator claims fails the restore, naming it, unless non-restored state is allowed; two file
//! sinks on one directory are refused.

use std::time::Duration;

use rill::prelude::*;
use rill::{InjectFailures, RestartStrategy};

mod support;

const RECORDS: u64 = 400_000;
const KEYS: u64 = 11;

/// The counting job; `extra_map` inserts operators before the sink and after the source,
/// `sink_uid` names the sink, `fail_every` makes the run fail (no restarts) after a while.
fn job(
    dir: &std::path::Path,
    extra_map: bool,
    sink_uid: Option<&str>,
    fail_every: Option<u64>,
    allow: bool,
) -> rill::Result<rill::JobResult> {
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(50))
        .checkpoint_dir(dir.join("checkpoints"))
        .restart_strategy(RestartStrategy::none())
        .allow_non_restored_state(allow)
        .build()?;
    let mut numbers = env.source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000));
    numbers = numbers
        .transform("inject-failures", InjectFailures::every(Duration::from_millis(fail_every.unwrap_or(3_600_000))));
    if extra_map {
        numbers = numbers.filter(|_| true);
    }
    let mut lines = numbers.key_by(|n: &u64| n % KEYS).process(RunningCount::open).map(|(k, n)| format!("{k}\t{n}"));
    if extra_map {
        lines = lines.map(|line| line);
    }
    let sink = lines.sink_to(FileSink::exactly_once(dir.join("output")));
    if let Some(uid) = sink_uid {
        sink.uid(uid);
    }
    env.execute("uids")
}

/// A first run that fails after some checkpoints, leaving them to restore.
fn failed_first_run(dir: &std::path::Path) {
    let err = job(dir, false, None, Some(400), false).expect_err("the injected failure ends the first run");
    assert!(err.to_string().contains("injected failure"), "{err}");
}

#[test]
fn operators_added_around_the_sink_keep_its_uid_and_the_restore_claims_every_state() {
    let dir = tempfile::tempdir().unwrap();
    failed_first_run(dir.path());
    let result = job(dir.path(), true, None, None, false).unwrap();
    assert!(result.restored_from.is_some(), "the changed job restored the checkpoint");
    support::assert_exactly_once(dir.path(), RECORDS, KEYS);
}

#[test]
fn state_no_operator_claims_fails_the_restore_naming_it_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    failed_first_run(dir.path());
    let err = job(dir.path(), false, Some("renamed-sink"), None, false).expect_err("the sink's state is unclaimed");
    let text = err.to_string();
    assert!(text.contains("state of operator 'sink'"), "names the state: {text}");
    assert_eq!(err.class(), rill::ErrorClass::Fatal);
    let result = job(dir.path(), false, Some("renamed-sink"), None, true).unwrap();
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
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(50))
        .checkpoint_dir(dir.join("checkpoints"))
        .restart_strategy(RestartStrategy::none())
        .build()?;
    let mut numbers = env
        .source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000))
        .assign_timestamps_and_watermarks(WatermarkStrategy::ascending(|n: &u64| *n as i64))
        .transform("inject-failures", InjectFailures::every(Duration::from_millis(fail_every.unwrap_or(3_600_000))));
    if with_map {
        numbers = numbers.map(|n| n).uid("stateless");
    }
    let lines = numbers.key_by(|n: &u64| n % KEYS).process(RunningCount::open).map(|(k, n)| format!("{k}\t{n}"));
    lines.sink_to(FileSink::exactly_once(dir.join("output")));
    env.execute("stateless")
}

#[test]
fn a_stateless_operator_can_be_removed_without_allowing_non_restored_state() {
    let dir = tempfile::tempdir().unwrap();
    let err = event_time_job(dir.path(), true, Some(400)).expect_err("the injected failure ends the first run");
    assert!(err.to_string().contains("injected failure"), "{err}");
    // The map saved nothing but its watermark: removing it loses nothing, so the restore goes on.
    let result = event_time_job(dir.path(), false, None).unwrap();
    assert!(result.restored_from.is_some(), "the changed job restored the checkpoint");
    support::assert_exactly_once(dir.path(), RECORDS, KEYS);
}

/// The counting job (running counts under uid `counts`); with `second_consumer`, the keyed
/// stream also feeds another running count, added first, so it heads the chain after the
/// exchange and the chain's id changes.
fn two_consumer_job(
    dir: &std::path::Path,
    second_consumer: bool,
    fail_every: Option<u64>,
) -> rill::Result<rill::JobResult> {
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(50))
        .checkpoint_dir(dir.join("checkpoints"))
        .restart_strategy(RestartStrategy::none())
        .build()?;
    let numbers = env
        .source("numbers", GeneratorSource::new(0..RECORDS).rate_per_second(400_000))
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
    let err = two_consumer_job(dir.path(), false, Some(400)).expect_err("the injected failure ends the first run");
    assert!(err.to_string().contains("injected failure"), "{err}");
    // The keyed stream gets a second consumer: the chain after the exchange is now headed by it.
    let result = two_consumer_job(dir.path(), true, None).unwrap();
    assert!(result.restored_from.is_some(), "the changed job restored the checkpoint");
    support::assert_exactly_once(dir.path(), RECORDS, KEYS);
}
