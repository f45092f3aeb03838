//! The object-store sink against `object_store`'s in-memory store: a job's lines reach it exactly
//! once, in `part-*` objects completed at checkpoints, and an object rolls at its size or age
//! limit; no marker of an upload in progress is left once the job is done.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use rill_operators::{GeneratorSource, ObjectStoreSink, StreamExt};
use rill_runtime::{OperatorHarness, StreamEnv};
use rill_storage::RemoteLocation;

/// Runs `records` numbers through a job at `parallelism` into `sink`.
fn run(records: u64, parallelism: usize, interval_ms: u64, sink: ObjectStoreSink<String>) {
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder()
        .parallelism(parallelism)
        .checkpoint_interval(Duration::from_millis(interval_ms))
        .checkpoint_dir(dir.path())
        .build()
        .unwrap();
    env.source("numbers", GeneratorSource::new(0..records).rate_per_second(2_000_000))
        .map(|n: u64| format!("{n:011}"))
        .sink_to(sink);
    env.execute("to-objects").unwrap();
}

/// The output objects' names (not the sink's `_committed/` records), and every line they hold,
/// sorted.
fn contents(location: &RemoteLocation) -> (Vec<String>, Vec<u64>) {
    assert_eq!(location.list("_in-progress/").unwrap(), Vec::<String>::new(), "markers left behind");
    let mut objects: Vec<String> = location.list("").unwrap().into_iter().filter(|o| o.starts_with("part-")).collect();
    objects.sort();
    let mut lines = Vec::new();
    for object in &objects {
        let bytes = location.read(object).unwrap().unwrap();
        lines.extend(String::from_utf8(bytes).unwrap().lines().map(|l| l.parse::<u64>().unwrap()));
    }
    lines.sort_unstable();
    (objects, lines)
}

fn location() -> Arc<RemoteLocation> {
    Arc::new(RemoteLocation::from_multipart_store("memory://out", Arc::new(InMemory::new()), "out").unwrap())
}

#[test]
fn every_line_of_a_job_lands_once_in_part_objects_completed_at_checkpoints() {
    let location = location();
    run(300_000, 2, 20, ObjectStoreSink::exactly_once(location.clone()));
    let (objects, lines) = contents(&location);
    assert!(objects.len() > 2, "one object per subtask and checkpoint: {objects:?}");
    assert!(objects.iter().all(|o| o.starts_with("part-")), "{objects:?}");
    assert_eq!(lines, (0..300_000).collect::<Vec<u64>>());
}

#[test]
fn an_object_rolls_when_it_reaches_its_size_limit() {
    let location = location();
    // 1.2 M lines of 12 bytes: about 14 MB, with only the final checkpoint.
    run(1_200_000, 1, 0, ObjectStoreSink::exactly_once(location.clone()).with_roll_bytes(5 << 20));
    let (objects, lines) = contents(&location);
    assert_eq!(objects.len(), 3, "two objects of 5 MiB and the rest: {objects:?}");
    assert_eq!(lines.len(), 1_200_000);
    assert_eq!(lines, (0..1_200_000).collect::<Vec<u64>>());
}

#[test]
fn an_object_rolls_when_it_has_been_open_longer_than_the_roll_interval() {
    let location = location();
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::builder()
        .parallelism(1)
        .checkpoint_interval(Duration::ZERO)
        .checkpoint_dir(dir.path())
        .build()
        .unwrap();
    // About 1.5 s of input at 20,000 records/s, with only the final checkpoint.
    env.source("numbers", GeneratorSource::new(0..30_000).rate_per_second(20_000))
        .map(|n: u64| format!("{n:011}"))
        .sink_to(ObjectStoreSink::exactly_once(location.clone()).with_roll_interval(Duration::from_millis(300)));
    env.execute("rolling").unwrap();
    let (objects, lines) = contents(&location);
    assert!(objects.len() >= 3, "an object about every 300 ms: {objects:?}");
    assert_eq!(lines, (0..30_000).collect::<Vec<u64>>());
}

#[test]
fn a_new_attempt_aborts_the_upload_a_crashed_one_started_between_barriers() {
    let location = location();
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = OperatorHarness::new(ObjectStoreSink::exactly_once(location.clone()), dir.path()).unwrap();
    // 6.6 MB of lines: the buffer fills, so an upload starts (between barriers) with one part.
    for n in 0..600_000u64 {
        crashed.process(format!("{n:011}")).unwrap();
    }
    let markers = location.list("_in-progress/").unwrap();
    assert_eq!(markers.len(), 1, "the upload started between barriers is marked: {markers:?}");
    let marker = String::from_utf8(location.read(&markers[0]).unwrap().unwrap()).unwrap();
    let id = marker.lines().next().unwrap().to_string();
    assert_eq!(marker.lines().nth(1), Some("harness"), "the marker names the job that started the upload");
    let object = markers[0].trim_start_matches("_in-progress/").to_string();
    drop(crashed); // no barrier, no commit: as a kill -9
    let _next = OperatorHarness::new(ObjectStoreSink::<String>::exactly_once(location.clone()), dir.path()).unwrap();
    assert!(location.list("_in-progress/").unwrap().is_empty(), "the marker is gone");
    assert!(location.complete_upload(&object, &id, &[]).is_err(), "the upload was aborted, so it cannot be completed");
    assert_eq!(location.list("").unwrap(), vec!["_owner".to_string()], "nothing became visible");
}

#[test]
fn a_sink_refuses_to_open_on_a_location_that_another_job_writes_and_touches_nothing_there() {
    let location = location();
    location.write("_owner", b"0123456789abcdef@s3://bucket/other-job\n".to_vec()).unwrap();
    location
        .write("_in-progress/part-x-000-000001", b"upload-1\n0123456789abcdef@s3://bucket/other-job\n".to_vec())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = match OperatorHarness::new(ObjectStoreSink::<String>::exactly_once(location.clone()), dir.path()) {
        Ok(_) => panic!("the sink opened on another job's output"),
        Err(err) => err,
    };
    assert_eq!(err.class(), rill_runtime::ErrorClass::Fatal, "a restart would be refused the same way");
    let err = err.to_string();
    assert!(
        err.contains("memory://out is the output of another job (0123456789abcdef@s3://bucket/other-job)"),
        "{err}"
    );
    assert!(err.contains("delete memory://out/_owner"), "{err}");
    assert_eq!(location.list("_in-progress/").unwrap().len(), 1, "the other job's marker is left alone");
}
