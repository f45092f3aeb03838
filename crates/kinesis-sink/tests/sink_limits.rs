//! Limits: oversize records, a missing stream at start, and a bounded buffer when the stream
//! is slow (back-pressure instead of growing memory).

mod support;

use std::time::Duration;

use rill_kinesis_common::test_utils::{unique_stream_name, Emulator, Fault, FaultInjector};
use rill_kinesis_sink::{ErrorPolicy, KinesisSink, Partitioner, MAX_RECORD_BYTES};
use support::{counts, faulty_connection, key_of, new_stream, payload, run_sequence, stored};

/// Record 7 is one byte over the limit once its partition key is counted.
fn sink_with_an_oversize_record(
    emulator: Emulator,
    stream: &str,
    policy: ErrorPolicy,
) -> anyhow::Result<KinesisSink<u64>> {
    Ok(KinesisSink::<u64>::builder()
        .connection(emulator.connection()?)
        .stream(stream)
        .serializer(|n| if n == 7 { vec![b'x'; MAX_RECORD_BYTES - key_of(7).len() + 1] } else { payload(n) })
        .partitioner(Partitioner::from_record(|n: &u64| key_of(*n)))
        .error_policy(policy)
        .build()?)
}

#[test]
fn an_oversize_record_fails_the_task_with_an_error_naming_it() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-oversize", 1)?;
    let err = run_sequence(20, 1, sink_with_an_oversize_record(emulator, &stream, ErrorPolicy::Fail)?)
        .expect_err("an oversize record must fail the job");
    let text = err.to_string();
    assert!(text.contains("record #") && text.contains("partition key 'key-7'"), "{text}");
    assert!(text.contains(&format!("{} bytes", MAX_RECORD_BYTES + 1)), "{text}");
    assert!(text.contains("key-7") && text.contains(&stream), "{text}");
    assert!(stored(emulator, &stream)?.iter().all(|r| r.data.len() < MAX_RECORD_BYTES), "the oversize record was sent");
    Ok(())
}

#[test]
fn an_oversize_record_is_dropped_and_counted_with_the_drop_policy() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-oversize-drop", 1)?;
    let sink = sink_with_an_oversize_record(emulator, &stream, ErrorPolicy::DropAndCount)?;
    let stats = sink.stats();
    run_sequence(20, 1, sink)?;
    let counts = counts(&stored(emulator, &stream)?)?;
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), (0..20).filter(|n| *n != 7).collect::<Vec<_>>());
    assert_eq!(stats.snapshot().dropped, 1);
    Ok(())
}

#[test]
fn a_record_of_exactly_the_limit_is_sent() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-at-limit", 1)?;
    let sink = KinesisSink::<u64>::builder()
        .connection(emulator.connection()?)
        .stream(&stream)
        .serializer(|_| vec![b'x'; MAX_RECORD_BYTES - 1])
        .partitioner(Partitioner::from_record(|_: &u64| "k".to_string()))
        .build()?;
    run_sequence(6, 1, sink)?;
    assert_eq!(stored(emulator, &stream)?.len(), 6, "six 1 MiB records need two requests under the 5 MiB limit");
    Ok(())
}

fn a_missing_stream_fails_at_open_with_a_clear_error(emulator: Emulator) -> anyhow::Result<()> {
    let stream = unique_stream_name("sink-missing");
    let sink = support::sequence_sink(emulator.connection()?, &stream).build()?;
    let stats = sink.stats();
    let err = run_sequence(10, 1, sink).expect_err("a missing stream must fail the job");
    let text = err.to_string();
    assert!(text.contains(&format!("Kinesis stream '{stream}' does not exist")), "{text}");
    assert!(text.contains(&emulator.endpoint()?), "the error should say where it looked: {text}");
    assert_eq!(stats.snapshot().requests, 0);
    Ok(())
}

#[test]
fn a_missing_stream_fails_at_open_with_a_clear_error_on_kinesalite() -> anyhow::Result<()> {
    a_missing_stream_fails_at_open_with_a_clear_error(Emulator::Kinesalite)
}

#[test]
fn a_missing_stream_fails_at_open_with_a_clear_error_on_kinesis_local() -> anyhow::Result<()> {
    a_missing_stream_fails_at_open_with_a_clear_error(Emulator::KinesisLocal)
}

#[test]
fn back_pressure_keeps_the_buffer_bounded_when_the_stream_is_slow() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let stream = new_stream(emulator, "sink-slow", 2)?;
    let faults = FaultInjector::new();
    faults.inject_always("PutRecords", Fault::delay(Duration::from_millis(100)));
    let sink = support::sequence_sink(faulty_connection(emulator, &faults)?, &stream)
        .max_batch_records(100)
        .max_in_flight_requests(2)
        .max_buffered_records(300)
        .build()?;
    let stats = sink.stats();
    let records = 3_000;
    let result = run_sequence(records, 1, sink)?;
    support::assert_exactly_once(emulator, &stream, records)?;
    let s = stats.snapshot();
    assert!(s.peak_buffered_records <= 300, "the buffer grew past its bound: {s:?}");
    assert!(s.peak_buffered_records >= 200, "the buffer never filled, so nothing was tested: {s:?}");
    assert!(s.backpressure_waits > 0, "process never had to wait: {s:?}");
    // 3,000 records at 2 x 100 per 100 ms cannot take less than about 1.5 s.
    assert!(result.elapsed >= Duration::from_millis(1_400), "{:?}", result.elapsed);
    Ok(())
}

#[test]
fn an_unreachable_endpoint_is_named_in_the_error() -> anyhow::Result<()> {
    let sink = support::sequence_sink(Emulator::unreachable_connection()?, "orders").build()?;
    let err = run_sequence(10, 1, sink).expect_err("nothing answers at the endpoint");
    let text = err.to_string();
    assert!(text.contains("http://127.0.0.1:9") && text.contains("us-east-1"), "names where it called: {text}");
    assert!(text.contains("'orders'"), "{text}");
    Ok(())
}
