//! Event time: per-shard watermarks from arrival timestamps, the minimum over active shards (no
//! record is late even when one shard is read far ahead), idle shards stop holding the watermark
//! back, and a subtask without shards is marked idle.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use md5::{Digest, Md5};
use rill_kinesis_common::test_utils::Emulator;
use rill_kinesis_source::{DeserializeError, InitialPosition, KinesisRecord, KinesisSource};
use rill_operators::{KeyedStreamExt, StreamExt};
use rill_runtime::{Collector, Operator, OperatorContext, StreamEnv, Watermark};

/// A record's key and arrival time.
type Arrival = (String, i64);

fn arrival(r: &KinesisRecord<'_>) -> Result<Arrival, DeserializeError> {
    let ts = r.approximate_arrival_timestamp_ms.ok_or_else(|| DeserializeError::new("no arrival timestamp"))?;
    Ok((r.partition_key.to_string(), ts))
}

#[derive(Debug, Default)]
struct Seen {
    watermarks: Vec<i64>,
    records: usize,
    late: Vec<(i64, i64)>,
    /// Records seen when the first watermark (other than the final MAX) arrived.
    records_at_first_watermark: Option<usize>,
}

/// Records the watermarks it gets and every record older than the watermark before it.
#[derive(Clone)]
struct WatermarkProbe(Arc<Mutex<Seen>>);

impl Operator<Arrival, ()> for WatermarkProbe {
    fn process(
        &mut self,
        r: Arrival,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<()>,
    ) -> rill_runtime::OperatorResult {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.records += 1;
        if let Some(w) = seen.watermarks.last().copied() {
            if r.1 < w {
                seen.late.push((r.1, w));
            }
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        w: Watermark,
        _ctx: &mut OperatorContext<'_>,
        _out: &mut Collector<()>,
    ) -> rill_runtime::OperatorResult {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if w.timestamp_ms < i64::MAX && seen.records_at_first_watermark.is_none() {
            seen.records_at_first_watermark = Some(seen.records);
        }
        seen.watermarks.push(w.timestamp_ms);
        Ok(())
    }
}

/// Keys whose MD5 puts them into the lower (`false`) or upper (`true`) half of the hash range.
fn keys_in_half(upper: bool, n: usize) -> Vec<String> {
    (0..).map(|i| format!("key-{i}")).filter(|k| (Md5::digest(k.as_bytes())[0] >= 0x80) == upper).take(n).collect()
}

fn records_for(keys: &[String], n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n).map(|i| (keys[i % keys.len()].clone(), format!("{i}").into_bytes())).collect()
}

#[test]
fn without_a_timestamp_setting_the_source_emits_no_watermark_but_the_final_one() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-wm-none", 2))?;
    rt.block_on(put(&client, &stream, &records_for(&keys_in_half(false, 4), 100)))?;
    let source = KinesisSource::builder(arrival)
        .connection(emulator.connection()?)
        .stream(&stream)
        .initial_position(InitialPosition::TrimHorizon)
        .get_records_interval(Duration::from_millis(20))
        .stop_when_idle(Duration::from_secs(1))
        .build()?;
    let dir = tempfile::tempdir()?;
    let env = StreamEnv::builder().parallelism(1).checkpoint_dir(dir.path()).build()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    env.source("kinesis", source).sink("probe", rill_runtime::ClonePerSubtask(WatermarkProbe(seen.clone())));
    env.execute("no-watermarks")?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(seen.records, 100);
    assert_eq!(seen.watermarks, vec![i64::MAX], "only the end of input's watermark");
    Ok(())
}

#[test]
fn no_record_is_late_when_one_shard_is_read_ahead_of_another() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-wm-min", 2))?;
    // The lower shard's records all arrive before the upper shard's.
    rt.block_on(put(&client, &stream, &records_for(&keys_in_half(false, 4), 300)))?;
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(put(&client, &stream, &records_for(&keys_in_half(true, 4), 300)))?;
    let source = KinesisSource::builder(arrival)
        .arrival_time_watermarks()
        .connection(emulator.connection()?)
        .stream(&stream)
        .initial_position(InitialPosition::TrimHorizon)
        .get_records_max(10)
        .get_records_interval(Duration::from_millis(20))
        .stop_when_idle(Duration::from_secs(2))
        .build()?;
    let dir = tempfile::tempdir()?;
    let env = StreamEnv::builder().parallelism(1).checkpoint_dir(dir.path()).build()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    env.source("kinesis", source).sink("probe", rill_runtime::ClonePerSubtask(WatermarkProbe(seen.clone())));
    env.execute("watermark-min")?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(seen.records, 600);
    assert!(seen.watermarks.len() > 2, "watermarks advance while reading: {:?}", seen.watermarks);
    assert!(seen.late.is_empty(), "late records (timestamp, watermark): {:?}", &seen.late[..seen.late.len().min(5)]);
    Ok(())
}

#[test]
fn an_idle_shard_stops_holding_the_watermark_back() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-wm-idle", 2))?;
    rt.block_on(put(&client, &stream, &records_for(&keys_in_half(false, 3), 50)))?;
    let last_arrival = rt.block_on(rill_kinesis_common::test_utils::read_all(&client, &stream))?.len();
    assert_eq!(last_arrival, 50);
    let source = KinesisSource::builder(arrival)
        .arrival_time_watermarks()
        .connection(emulator.connection()?)
        .stream(&stream)
        .initial_position(InitialPosition::TrimHorizon)
        .shard_idle_interval(Duration::from_millis(300))
        .stop_when_idle(Duration::from_secs(2))
        .build()?;
    let dir = tempfile::tempdir()?;
    let env = StreamEnv::builder().parallelism(1).checkpoint_dir(dir.path()).build()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    env.source("kinesis", source).sink("probe", rill_runtime::ClonePerSubtask(WatermarkProbe(seen.clone())));
    env.execute("watermark-idle-shard")?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(seen.records, 50);
    let first_real = seen.watermarks.iter().find(|w| **w > 0 && **w < i64::MAX);
    assert!(first_real.is_some(), "the empty shard went idle and let the watermark through: {:?}", seen.watermarks);
    Ok(())
}

#[test]
fn a_subtask_without_shards_does_not_hold_back_downstream_event_time() -> anyhow::Result<()> {
    let emulator = Emulator::Kinesalite;
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-wm-no-shard", 1))?;
    rt.block_on(put(&client, &stream, &records_for(&keys_in_half(false, 3), 60)))?;
    let source = KinesisSource::builder(arrival)
        .arrival_time_watermarks()
        .connection(emulator.connection()?)
        .stream(&stream)
        .initial_position(InitialPosition::TrimHorizon)
        .shard_idle_interval(Duration::from_secs(30))
        .get_records_max(5)
        .get_records_interval(Duration::from_millis(50))
        .stop_when_idle(Duration::from_secs(2))
        .build()?;
    let dir = tempfile::tempdir()?;
    // Two source subtasks, one shard: one subtask never has a shard. The keyed operator after
    // the exchange merges both inputs' event time.
    let env = StreamEnv::builder().parallelism(2).checkpoint_dir(dir.path()).build()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    env.source("kinesis", source)
        .key_by(|r: &Arrival| r.0.clone())
        .reduce(|a, _b| a)
        .map(|r: Arrival| r)
        .set_parallelism(1)
        .sink("probe", rill_runtime::ClonePerSubtask(WatermarkProbe(seen.clone())));
    env.execute("watermark-idle-subtask")?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    // Without idleness the shard-less subtask would hold every watermark back until it ends,
    // after the last record.
    let at = seen.records_at_first_watermark;
    assert!(
        at.is_some_and(|n| n < 60),
        "a watermark passed the exchange while records flowed: first after {at:?} of 60"
    );
    Ok(())
}
