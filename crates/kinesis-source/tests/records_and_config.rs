//! Malformed records under both policies, KPL-aggregated input (built here with prost and md-5,
//! independently of the source's own definitions), bad configuration and a missing stream.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use common::*;
use md5::{Digest, Md5};
use prost::Message;
use rill_kinesis_common::test_utils::Emulator;
use rill_kinesis_source::{KinesisSource, KinesisSourceError, MalformedRecordPolicy, Utf8Deserializer};
use rill_operators::{CollectSink, StreamExt};
use rill_runtime::{RestartStrategy, StreamEnv};

/// Runs the source into a collecting sink in one chained vertex, without restarts: the source's
/// own error is the job's (with a channel after it, the runtime may report the downstream task's
/// "channel closed" first).
fn run_single_chain(
    source: KinesisSource<Rec>,
    dir: &std::path::Path,
) -> rill_runtime::Result<rill_runtime::JobResult> {
    let env =
        StreamEnv::builder().parallelism(1).checkpoint_dir(dir).restart_strategy(RestartStrategy::none()).build()?;
    let (sink, _records) = CollectSink::new();
    env.source("kinesis", source).sink_to(sink);
    env.execute("single-chain")
}

fn a_malformed_record_fails_the_job_by_default(emulator: Emulator) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-malformed-fail", 1))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(3, 20)))?;
    rt.block_on(put(&client, &stream, &[("k0".to_string(), b"no separator here".to_vec())]))?;
    let dir = tempfile::tempdir()?;
    let source = source_builder(emulator.connection()?, &stream, Duration::from_secs(2)).build()?;
    let err = run_single_chain(source, dir.path()).expect_err("the job must fail");
    let text = format!("{err}");
    assert!(text.contains(&stream) && text.contains("shardId-") && text.contains("sequence number"), "{text}");
    assert!(text.contains("no ':'"), "{text}");
    Ok(())
}

#[test]
fn kinesalite_a_malformed_record_fails_the_job_by_default() -> anyhow::Result<()> {
    a_malformed_record_fails_the_job_by_default(Emulator::Kinesalite)
}

#[test]
fn kinesis_local_a_malformed_record_fails_the_job_by_default() -> anyhow::Result<()> {
    a_malformed_record_fails_the_job_by_default(Emulator::KinesisLocal)
}

fn skipped_malformed_records_are_counted_and_the_rest_is_read(emulator: Emulator) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-malformed-skip", 2))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(4, 30)))?;
    let bad: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("bad{i}"), vec![0xff, 0xfe])).collect();
    rt.block_on(put(&client, &stream, &bad))?;
    rt.block_on(put(&client, &stream, &writer.batch(4, 30)))?;
    let dir = tempfile::tempdir()?;
    let source = source_builder(emulator.connection()?, &stream, Duration::from_secs(2))
        .malformed_records(MalformedRecordPolicy::SkipAndCount)
        .build()?;
    let stats = source.stats_handle();
    run_counting_job(source, dir.path(), &JobSpec::default())?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    assert_eq!(stats().skipped_records, 3);
    Ok(())
}

#[test]
fn kinesalite_skipped_malformed_records_are_counted_and_the_rest_is_read() -> anyhow::Result<()> {
    skipped_malformed_records_are_counted_and_the_rest_is_read(Emulator::Kinesalite)
}

#[test]
fn kinesis_local_skipped_malformed_records_are_counted_and_the_rest_is_read() -> anyhow::Result<()> {
    skipped_malformed_records_are_counted_and_the_rest_is_read(Emulator::KinesisLocal)
}

/// The KPL's protobuf messages, declared here independently of the crate's.
#[derive(Clone, PartialEq, Message)]
struct KplAggregate {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<KplRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct KplRecord {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
}

fn kpl_encode(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut keys: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    for (key, data) in records {
        let index = keys.iter().position(|k| k == key).unwrap_or_else(|| {
            keys.push(key.clone());
            keys.len() - 1
        });
        entries.push(KplRecord {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data: data.clone(),
        });
    }
    let body =
        KplAggregate { partition_key_table: keys, explicit_hash_key_table: vec![], records: entries }.encode_to_vec();
    let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

/// Aggregates of `per_aggregate` sub-records, interleaved with plain records; one job is failed
/// by a deserializer that panics on its first attempt in the middle of the aggregates, so it restarts from a
/// checkpoint that may sit inside an aggregate (sub-sequence numbers resume it).
fn kpl_aggregates_are_deaggregated_exactly_once(
    emulator: Emulator,
    aggregates: usize,
    per_aggregate: usize,
) -> anyhow::Result<()> {
    let rt = runtime();
    // One shard: sub-records of a key share the aggregate's shard only by chance otherwise.
    let (client, stream) = rt.block_on(new_stream(emulator, "src-kpl", 1))?;
    let mut writer = Writer::default();
    for a in 0..aggregates {
        let subs = writer.batch(5, per_aggregate);
        let outer_key = format!("aggregate-{a}");
        rt.block_on(async {
            client
                .put_record()
                .stream_name(&stream)
                .partition_key(&outer_key)
                .data(Blob::new(kpl_encode(&subs)))
                .send()
                .await
        })?;
        rt.block_on(put(&client, &stream, &writer.batch(5, 3)))?;
    }
    let total: u64 = writer.counts.values().sum();
    let failed_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (flag, counter) = (failed_once.clone(), seen.clone());
    let fail_at = total * 2 / 3;
    let deserializer = move |r: &rill_kinesis_source::KinesisRecord<'_>| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == fail_at && !flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // A crash, not a malformed record: that would be fatal under the fail policy.
            panic!("injected failure on the first attempt");
        }
        if n % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        parse(r)
    };
    let source = KinesisSource::builder(deserializer)
        .connection(emulator.connection()?)
        .stream(&stream)
        .initial_position(rill_kinesis_source::InitialPosition::TrimHorizon)
        .get_records_interval(Duration::from_millis(50))
        .get_records_max(2)
        .stop_when_idle(Duration::from_secs(2))
        .build()?;
    let dir = tempfile::tempdir()?;
    let spec = JobSpec { checkpoint_interval: Duration::from_millis(50), ..JobSpec::default() };
    let result = run_counting_job(source, dir.path(), &spec)?;
    assert_eq!(result.restarts, 1, "the injected failure restarted the job once");
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    Ok(())
}

#[test]
fn kinesalite_kpl_aggregates_are_deaggregated_exactly_once_across_a_restart() -> anyhow::Result<()> {
    kpl_aggregates_are_deaggregated_exactly_once(Emulator::Kinesalite, 12, 400)
}

#[test]
fn kinesis_local_kpl_aggregates_are_deaggregated_exactly_once_across_a_restart() -> anyhow::Result<()> {
    kpl_aggregates_are_deaggregated_exactly_once(Emulator::KinesisLocal, 6, 100)
}

fn a_missing_stream_is_a_clear_error(emulator: Emulator) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let stream = "rill-no-such-stream-4711";
    let source = source_builder(emulator.connection()?, stream, Duration::from_secs(1)).build()?;
    let err = run_single_chain(source, dir.path()).expect_err("a missing stream fails the job");
    let text = err.to_string();
    assert!(text.contains(stream) && text.contains("does not exist"), "{text}");
    Ok(())
}

#[test]
fn kinesalite_a_missing_stream_is_a_clear_error() -> anyhow::Result<()> {
    a_missing_stream_is_a_clear_error(Emulator::Kinesalite)
}

#[test]
fn kinesis_local_a_missing_stream_is_a_clear_error() -> anyhow::Result<()> {
    a_missing_stream_is_a_clear_error(Emulator::KinesisLocal)
}

#[test]
fn bad_configuration_is_an_error_naming_key_and_value() {
    let props = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let cases = [
        (props(&[("flink.shard.getrecords.maxrecordcount", "0")]), "flink.shard.getrecords.maxrecordcount", "0"),
        (props(&[("flink.stream.initpos", "SOMETIME")]), "flink.stream.initpos", "SOMETIME"),
        (props(&[("flink.shard.discovery.intervalmilis", "10")]), "flink.shard.discovery.intervalmilis", "10"),
        (props(&[("aws.credentials.provider", "MAGIC")]), "aws.credentials.provider", "MAGIC"),
        (props(&[("aws.endpoint", "localhost:4567")]), "aws.endpoint", "localhost:4567"),
    ];
    for (properties, key, value) in cases {
        let err = KinesisSource::from_properties(["orders"], &properties, Utf8Deserializer).expect_err(key);
        let text = err.to_string();
        assert!(text.contains(key) && text.contains(value), "{key}: {text}");
    }
    let err = KinesisSource::builder(Utf8Deserializer).stream("orders").get_records_max(20_000).build().unwrap_err();
    assert!(matches!(err, KinesisSourceError::InvalidSetting { setting: "get_records_max", .. }), "{err}");
    let err = KinesisSource::builder(Utf8Deserializer).build().unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
    let err = KinesisSource::builder(Utf8Deserializer).stream("bad name!").build().unwrap_err();
    assert!(err.to_string().contains("bad name!"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let props: HashMap<String, String> = [
        ("aws.region", "us-east-1"),
        ("aws.credentials.provider.basic.accesskeyid", "AKIDSECRETEXAMPLE"),
        ("aws.credentials.provider.basic.secretkey", "very-secret-value"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let source = KinesisSource::from_properties(["orders"], &props, Utf8Deserializer).unwrap();
    let shown = format!("{source:?}");
    assert!(!shown.contains("very-secret-value") && !shown.contains("AKIDSECRETEXAMPLE"), "{shown}");
}

#[test]
fn an_unreachable_endpoint_is_named_in_the_error() {
    let source = source_builder(Emulator::unreachable_connection().unwrap(), "orders", Duration::from_secs(1))
        .list_shards_retry(rill_kinesis_source::RetrySettings::new(1, 10, 20, 1.5))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = run_single_chain(source, dir.path()).expect_err("nothing answers at the endpoint");
    let text = err.to_string();
    assert!(text.contains("http://127.0.0.1:9") && text.contains("us-east-1"), "names where it called: {text}");
    assert!(text.contains("DescribeStreamSummary") && text.contains("'orders'"), "{text}");
}
