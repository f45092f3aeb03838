//! Failures injected through the SDK's HTTP client (the emulators never fail by themselves):
//! partial failures and throttling are retried with nothing lost and the send rate adapts;
//! transient errors are retried; fatal error classes fail the task at once; records failing
//! past the retry limit follow the error policy.

mod support;

use std::time::{Duration, Instant};

use rill_kinesis_common::test_utils::{Emulator, Fault, FaultInjector};
use rill_kinesis_sink::ErrorPolicy;
use support::{assert_exactly_once, counts, faulty_connection, new_stream, run_sequence, sequence_sink, stored};

fn partially_failed_entries_are_retried_until_every_record_is_stored_once(
    emulator: Emulator,
    records: u64,
) -> anyhow::Result<()> {
    let stream = new_stream(emulator, "sink-partial", 2)?;
    let faults = FaultInjector::new();
    faults.inject("PutRecords", Fault::throttle_entries(3), 5);
    faults.inject("PutRecords", Fault::fail_entries("InternalFailure", 4), 3);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream).max_batch_records(50).build()?;
    let stats = sink.stats();
    run_sequence(records, 2, sink)?;
    assert_exactly_once(emulator, &stream, records)?;
    assert_eq!(faults.injected("PutRecords"), 8);
    let s = stats.snapshot();
    assert!(s.retried_records > 0 && s.throttles > 0, "{s:?}");
    assert_eq!(s.records_sent, records);
    Ok(())
}

#[test]
fn partially_failed_entries_are_retried_until_every_record_is_stored_once_on_kinesalite() -> anyhow::Result<()> {
    partially_failed_entries_are_retried_until_every_record_is_stored_once(Emulator::Kinesalite, 2_000)
}

#[test]
fn partially_failed_entries_are_retried_until_every_record_is_stored_once_on_kinesis_local() -> anyhow::Result<()> {
    partially_failed_entries_are_retried_until_every_record_is_stored_once(Emulator::KinesisLocal, 300)
}

fn throttling_lowers_the_send_rate_and_successes_raise_it_again(
    emulator: Emulator,
    records: u64,
) -> anyhow::Result<()> {
    let stream = new_stream(emulator, "sink-throttle", 2)?;
    let faults = FaultInjector::new();
    faults.inject_nth("PutRecords", 2, Fault::throttled());
    faults.inject("PutRecords", Fault::throttled(), 3);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream)
        .max_batch_records(50)
        .max_in_flight_requests(4)
        .rate_control(10, 0.5)
        .build()?;
    let stats = sink.stats();
    run_sequence(records, 1, sink)?;
    assert_exactly_once(emulator, &stream, records)?;
    let s = stats.snapshot();
    assert_eq!(s.rate_limit_initial, 200);
    assert!(s.throttles >= 4, "{s:?}");
    assert!(s.rate_decreases >= 1 && s.rate_limit_lowest < s.rate_limit_initial, "the rate was never lowered: {s:?}");
    assert!(s.rate_increases >= 1 && s.rate_limit_last > s.rate_limit_lowest, "the rate was never raised again: {s:?}");
    Ok(())
}

#[test]
fn throttling_lowers_the_send_rate_and_successes_raise_it_again_on_kinesalite() -> anyhow::Result<()> {
    throttling_lowers_the_send_rate_and_successes_raise_it_again(Emulator::Kinesalite, 3_000)
}

#[test]
fn throttling_lowers_the_send_rate_and_successes_raise_it_again_on_kinesis_local() -> anyhow::Result<()> {
    throttling_lowers_the_send_rate_and_successes_raise_it_again(Emulator::KinesisLocal, 400)
}

#[test]
fn transient_errors_and_connection_failures_are_retried_without_loss() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-transient", 2)?;
    let faults = FaultInjector::new();
    faults.inject("PutRecords", Fault::internal_failure(), 2);
    faults.inject("PutRecords", Fault::ConnectionError, 2);
    faults.inject("PutRecords", Fault::error("ServiceUnavailable", 503), 1);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream).max_batch_records(100).build()?;
    let stats = sink.stats();
    run_sequence(1_000, 2, sink)?;
    assert_exactly_once(emulator, &stream, 1_000)?;
    assert_eq!(faults.injected("PutRecords"), 5);
    assert!(stats.snapshot().retried_records > 0);
    Ok(())
}

fn a_fatal_error_fails_the_task_at_once(emulator: Emulator, code: &str, expect_in_message: &str) -> anyhow::Result<()> {
    let stream = new_stream(emulator, "sink-fatal", 1)?;
    let faults = FaultInjector::new();
    faults.inject("PutRecords", Fault::error(code, 400), 1);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream).build()?;
    let stats = sink.stats();
    let started = Instant::now();
    let err = run_sequence(200, 1, sink).expect_err("a fatal error must fail the job");
    let text = err.to_string();
    assert!(text.contains(expect_in_message), "{code}: error does not mention {expect_in_message:?}: {text}");
    assert_eq!(stats.snapshot().retried_records, 0, "{code} must not be retried");
    assert!(started.elapsed() < Duration::from_secs(20), "{code}: failing took {:?}", started.elapsed());
    Ok(())
}

#[test]
fn fatal_error_classes_fail_the_task_at_once_on_kinesalite() -> anyhow::Result<()> {
    for code in [
        "AccessDeniedException",
        "ValidationException",
        "InvalidArgumentException",
        "KMSAccessDeniedException",
        "UnrecognizedClientException",
    ] {
        a_fatal_error_fails_the_task_at_once(Emulator::Kinesalite, code, code)?;
    }
    a_fatal_error_fails_the_task_at_once(Emulator::Kinesalite, "ResourceNotFoundException", "does not exist")
}

#[test]
fn fatal_error_classes_fail_the_task_at_once_on_kinesis_local() -> anyhow::Result<()> {
    a_fatal_error_fails_the_task_at_once(Emulator::KinesisLocal, "AccessDeniedException", "AccessDeniedException")?;
    a_fatal_error_fails_the_task_at_once(Emulator::KinesisLocal, "ResourceNotFoundException", "does not exist")
}

#[test]
fn a_fatal_error_on_one_entry_fails_the_task_at_once() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-fatal-entry", 1)?;
    let faults = FaultInjector::new();
    faults.inject("PutRecords", Fault::fail_entries("KMSDisabledException", 7), 1);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream).build()?;
    let err = run_sequence(100, 1, sink).expect_err("a fatal entry error must fail the job");
    assert!(err.to_string().contains("KMSDisabledException"), "{err}");
    Ok(())
}

#[test]
fn records_failing_past_the_retry_limit_fail_the_task_by_default() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-exhausted", 1)?;
    let faults = FaultInjector::new();
    faults.inject_always("PutRecords", Fault::fail_entries("InternalFailure", 10));
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream).max_retries(2).build()?;
    let err = run_sequence(100, 1, sink).expect_err("exhausted retries must fail the job");
    assert!(err.to_string().contains("still failed after 3 attempts"), "{err}");
    Ok(())
}

#[test]
fn throttled_records_are_retried_past_the_retry_count_until_stored() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-throttled-long", 1)?;
    let faults = FaultInjector::new();
    // Every entry at a multiple of 1 (all of them) is throttled in 15 requests in a row: far
    // more than the 2 retries allowed for transient failures.
    faults.inject("PutRecords", Fault::throttle_entries(1), 15);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream)
        .max_retries(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .build()?;
    run_sequence(200, 1, sink)?;
    assert_eq!(faults.injected("PutRecords"), 15);
    assert_exactly_once(emulator, &stream, 200)
}

#[test]
fn a_throttle_timeout_bounds_how_long_throttled_records_are_retried() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-throttle-timeout", 1)?;
    let faults = FaultInjector::new();
    faults.inject_always("PutRecords", Fault::throttle_entries(10));
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream)
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .throttle_retry_timeout(Some(Duration::from_millis(500)))
        .build()?;
    let err = run_sequence(100, 1, sink).expect_err("records throttled past the timeout must fail the job");
    assert!(err.to_string().contains("ProvisionedThroughputExceededException"), "{err}");
    Ok(())
}

#[test]
fn with_retry_forever_failing_records_are_retried_without_giving_up() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-retry-forever", 1)?;
    let faults = FaultInjector::new();
    faults.inject("PutRecords", Fault::fail_entries("InternalFailure", 1), 8);
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream)
        .max_retries(1)
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .error_policy(ErrorPolicy::RetryForever)
        .build()?;
    run_sequence(150, 1, sink)?;
    assert_eq!(faults.injected("PutRecords"), 8);
    assert_exactly_once(emulator, &stream, 150)
}

#[test]
fn records_failing_past_the_retry_limit_are_dropped_and_counted_with_the_drop_policy() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-dropped", 1)?;
    let faults = FaultInjector::new();
    faults.inject_always("PutRecords", Fault::fail_entries("InternalFailure", 10));
    let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream)
        .max_retries(2)
        .error_policy(ErrorPolicy::DropAndCount)
        .build()?;
    let stats = sink.stats();
    run_sequence(300, 1, sink)?;
    let counts = counts(&stored(emulator, &stream)?)?;
    let s = stats.snapshot();
    assert!(s.dropped > 0, "{s:?}");
    assert!(counts.values().all(|c| *c == 1), "a record was written twice");
    assert_eq!(counts.len() as u64 + s.dropped, 300, "stored plus dropped must account for every record: {s:?}");
    Ok(())
}

/// Runs `0..records` in order (one generator split, parallelism 1) into `sink`.
fn run_in_order(records: u64, sink: rill_kinesis_sink::KinesisSink<u64>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = rill_runtime::StreamEnv::builder()
        .parallelism(1)
        .checkpoint_interval(Duration::from_millis(200))
        .checkpoint_dir(dir.path())
        .restart_strategy(rill_runtime::RestartStrategy::none())
        .build()?;
    rill_operators::StreamExt::sink_to(
        env.source("numbers", rill_operators::GeneratorSource::new(0..records).splits(1)),
        sink,
    );
    env.execute("kinesis-sink-order-test")?;
    Ok(())
}

/// Records of a partition key stored after a later record of the same key.
fn out_of_order(emulator: Emulator, stream: &str) -> anyhow::Result<usize> {
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut late = 0;
    for r in stored(emulator, stream)? {
        let n: u64 = String::from_utf8(r.data.clone())?.trim_start_matches("record-").parse()?;
        if last.get(&r.partition_key).is_some_and(|prev| *prev > n) {
            late += 1;
        }
        let entry = last.entry(r.partition_key.clone()).or_insert(n);
        *entry = (*entry).max(n);
    }
    Ok(late)
}

#[test]
fn partial_failures_reorder_a_keys_records_by_default_and_never_in_ordering_mode() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    for ordering in [false, true] {
        let stream = new_stream(emulator, "sink-order", 2)?;
        let faults = FaultInjector::new();
        faults.inject("PutRecords", Fault::throttle_entries(3), 40);
        faults.inject("PutRecords", Fault::fail_entries("InternalFailure", 5), 10);
        let sink = sequence_sink(faulty_connection(emulator, &faults)?, &stream)
            .max_retries(100)
            .backoff(Duration::from_millis(1), Duration::from_millis(20))
            .ordering(ordering)
            .build()?;
        run_in_order(1_500, sink)?;
        assert_exactly_once(emulator, &stream, 1_500)?;
        let late = out_of_order(emulator, &stream)?;
        if ordering {
            assert_eq!(late, 0, "ordering mode stored {late} records after a later one of their key");
        } else {
            assert!(late > 0, "the injected partial failures should reorder records without ordering mode");
        }
    }
    Ok(())
}
