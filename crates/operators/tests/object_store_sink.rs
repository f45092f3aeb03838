//! The object-store sink against `object_store`'s in-memory store: a job's lines reach it exactly
//! once, in `part-*` objects completed at checkpoints, and an object rolls at its size limit.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use rill_operators::{GeneratorSource, ObjectStoreSink, StreamExt};
use rill_runtime::StreamEnv;
use rill_state::RemoteLocation;

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

/// The objects' names, and every line they hold, sorted.
fn contents(location: &RemoteLocation) -> (Vec<String>, Vec<u64>) {
    let mut objects = location.list("").unwrap();
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
