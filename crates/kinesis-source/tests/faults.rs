//! Faults injected through the SDK's HTTP client (throttling, internal failures, connection
//! errors, expired iterators) are retried or renewed without losing or repeating a record;
//! exhausted retries fail the task, and the job restarts from its last checkpoint.

mod common;

use std::time::Duration;

use common::*;
use rill_kinesis_common::test_utils::{Emulator, Fault, FaultInjector};
use rill_kinesis_source::RetrySettings;

const FAST: RetrySettings = RetrySettings::new(10, 5, 40, 1.5);

fn throttling_and_transient_faults_are_retried_and_nothing_is_lost(emulator: Emulator, n: usize) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-faults", 3))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(9, n)))?;
    let faults = FaultInjector::new();
    faults.inject("ListShards", Fault::throttled(), 2);
    faults.inject("DescribeStreamSummary", Fault::internal_failure(), 1);
    faults.inject("GetShardIterator", Fault::error("LimitExceededException", 400), 2);
    faults.inject_nth("GetRecords", 3, Fault::throttled());
    faults.inject_nth("GetRecords", 4, Fault::throttled());
    faults.inject_nth("GetRecords", 5, Fault::internal_failure());
    faults.inject_nth("GetRecords", 7, Fault::ConnectionError);
    faults.inject_nth("GetRecords", 9, Fault::error("KMSThrottlingException", 400));
    let connection = faults.install(emulator.connection_builder()?).build()?;
    let source = source_builder(connection, &stream, Duration::from_secs(2))
        .get_records_max(25)
        .get_records_retry(FAST)
        .get_iterator_retry(FAST)
        .list_shards_retry(FAST)
        .build()?;
    let dir = tempfile::tempdir()?;
    let stats = source.stats_handle();
    let result = run_counting_job(source, dir.path(), &JobSpec::default())?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    assert_eq!(result.restarts, 0, "retried faults do not fail the task");
    let stats = stats();
    let injected: usize = ["ListShards", "DescribeStreamSummary", "GetShardIterator", "GetRecords"]
        .iter()
        .map(|op| faults.injected(op))
        .sum();
    assert_eq!(injected, 10, "every fault was injected");
    assert_eq!(stats.retries, 10, "{stats:?}");
    assert_eq!(stats.throttles, 7, "{stats:?}");
    Ok(())
}

#[test]
fn kinesalite_throttling_and_transient_faults_are_retried_and_nothing_is_lost() -> anyhow::Result<()> {
    throttling_and_transient_faults_are_retried_and_nothing_is_lost(Emulator::Kinesalite, 600)
}

#[test]
fn kinesis_local_throttling_and_transient_faults_are_retried_and_nothing_is_lost() -> anyhow::Result<()> {
    throttling_and_transient_faults_are_retried_and_nothing_is_lost(Emulator::KinesisLocal, 150)
}

fn expired_iterators_are_renewed_after_the_last_record_handed_over(emulator: Emulator, n: usize) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-expired", 2))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(6, n)))?;
    let faults = FaultInjector::new();
    for nth in [4, 8, 9, 15] {
        faults.inject_nth("GetRecords", nth, Fault::expired_iterator());
    }
    let connection = faults.install(emulator.connection_builder()?).build()?;
    let source = source_builder(connection, &stream, Duration::from_secs(2)).get_records_max(20).build()?;
    let dir = tempfile::tempdir()?;
    let stats = source.stats_handle();
    let result = run_counting_job(source, dir.path(), &JobSpec::default())?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    assert_eq!(result.restarts, 0);
    assert_eq!(stats().expired_iterators, 4, "{:?}", stats());
    Ok(())
}

#[test]
fn kinesalite_expired_iterators_are_renewed_after_the_last_record_handed_over() -> anyhow::Result<()> {
    expired_iterators_are_renewed_after_the_last_record_handed_over(Emulator::Kinesalite, 400)
}

#[test]
fn kinesis_local_expired_iterators_are_renewed_after_the_last_record_handed_over() -> anyhow::Result<()> {
    expired_iterators_are_renewed_after_the_last_record_handed_over(Emulator::KinesisLocal, 150)
}

fn exhausted_retries_fail_the_task_and_the_job_resumes_from_its_checkpoint(
    emulator: Emulator,
    n: usize,
) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-exhausted", 1))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(5, n)))?;
    let faults = FaultInjector::new();
    // Calls 12, 13 and 14 fail: with 2 retries the third failure exhausts them, mid-stream.
    for nth in [12, 13, 14] {
        faults.inject_nth("GetRecords", nth, Fault::internal_failure());
    }
    let connection = faults.install(emulator.connection_builder()?).build()?;
    let source = source_builder(connection, &stream, Duration::from_secs(2))
        .get_records_max(10)
        .get_records_retry(RetrySettings::new(2, 5, 10, 1.5))
        .build()?;
    let dir = tempfile::tempdir()?;
    let spec = JobSpec { checkpoint_interval: Duration::from_millis(100), ..JobSpec::default() };
    let stats = source.stats_handle();
    let result = run_counting_job(source, dir.path(), &spec)?;
    assert_eq!(result.restarts, 1, "the task failed once and the job restarted");
    assert!(stats().records >= n as u64, "{:?}", stats());
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    Ok(())
}

#[test]
fn kinesalite_exhausted_retries_fail_the_task_and_the_job_resumes_from_its_checkpoint() -> anyhow::Result<()> {
    exhausted_retries_fail_the_task_and_the_job_resumes_from_its_checkpoint(Emulator::Kinesalite, 400)
}

#[test]
fn kinesis_local_exhausted_retries_fail_the_task_and_the_job_resumes_from_its_checkpoint() -> anyhow::Result<()> {
    exhausted_retries_fail_the_task_and_the_job_resumes_from_its_checkpoint(Emulator::KinesisLocal, 200)
}
