//! Resharding while the job reads: splits, merges and UpdateShardCount lose and repeat nothing,
//! and every key's records arrive in write order through parents and children. A subtask that
//! starts without a shard picks up a child after a split.

mod common;

use std::time::Duration;

use common::*;
use rill_kinesis_common::test_utils::{list_shard_ids, read_all, Emulator};
use rill_kinesis_source::{ShardAssigner, ShardInfo, UniformShardAssigner};

/// Readers take `max_records` per GetRecords call, so that parents still have a backlog when
/// their children get records: reading a child early would reorder keys.
fn resharding_during_a_run(
    emulator: Emulator,
    shards: i32,
    steps: Vec<Step>,
    parallelism: usize,
    max_records: i32,
) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-reshard", shards))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(12, 100)))?;
    let dir = tempfile::tempdir()?;
    let source =
        source_builder(emulator.connection()?, &stream, Duration::from_secs(3)).get_records_max(max_records).build()?;
    let background = spawn_writer(emulator, stream.clone(), writer, steps);
    let spec = JobSpec { parallelism, checkpoint_interval: Duration::from_millis(300), ..JobSpec::default() };
    let stats = source.stats_handle();
    let result = run_counting_job(source, dir.path(), &spec);
    let writer = background.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    let result = result?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;
    let all_shards = rt.block_on(list_shard_ids(&client, &stream))?;
    assert!(all_shards.len() > shards as usize, "resharding happened: {all_shards:?}");
    assert!(stats().shards_finished >= 1, "{:?}", stats());
    assert_eq!(result.restarts, 0);
    Ok(())
}

fn split_and_merge_steps(per_step: usize) -> Vec<Step> {
    vec![
        Step::Sleep(300),
        Step::Put(per_step),
        Step::Put(per_step),
        Step::Split,
        Step::Put(per_step),
        Step::Sleep(200),
        Step::Put(per_step),
        Step::Merge,
        Step::Put(per_step),
        Step::Split,
        Step::Put(per_step),
        Step::Sleep(200),
        Step::Put(per_step),
    ]
}

#[test]
fn kinesalite_split_and_merge_during_a_run_keep_every_key_exactly_once_and_in_order() -> anyhow::Result<()> {
    resharding_during_a_run(Emulator::Kinesalite, 2, split_and_merge_steps(1000), 2, 40)
}

#[test]
fn kinesis_local_split_and_merge_during_a_run_keep_every_key_exactly_once_and_in_order() -> anyhow::Result<()> {
    resharding_during_a_run(Emulator::KinesisLocal, 2, split_and_merge_steps(60), 3, 5)
}

#[test]
fn kinesis_local_update_shard_count_during_a_run_keeps_every_key_exactly_once_and_in_order() -> anyhow::Result<()> {
    let steps = vec![
        Step::Sleep(300),
        Step::Put(40),
        Step::UpdateShardCount(4),
        Step::Put(40),
        Step::Sleep(200),
        Step::Put(40),
        Step::UpdateShardCount(3),
        Step::Put(40),
    ];
    resharding_during_a_run(Emulator::KinesisLocal, 2, steps, 2, 5)
}

fn a_split_gives_the_idle_subtask_work(emulator: Emulator, per_step: usize) -> anyhow::Result<()> {
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-idle-subtask", 1))?;
    let writer = Writer::default();
    let dir = tempfile::tempdir()?;
    let source = source_builder(emulator.connection()?, &stream, Duration::from_secs(3)).build()?;
    let steps = vec![
        Step::Put(per_step),
        Step::Sleep(800),
        Step::Split,
        Step::Put(per_step),
        Step::Sleep(300),
        Step::Put(per_step),
    ];
    let background = spawn_writer(emulator, stream.clone(), writer, steps);
    let result = run_counting_job(source, dir.path(), &JobSpec { parallelism: 2, ..JobSpec::default() });
    let writer = background.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    result?;
    assert_exactly_once_in_order(dir.path(), &writer.counts)?;

    // The parent went to one subtask; the child read by the other one (idle until the split)
    // holds records, and the output above has them all exactly once.
    let shards = rt.block_on(async {
        let out = client.list_shards().stream_name(&stream).send().await?;
        anyhow::Ok(out.shards().to_vec())
    })?;
    let info = |s: &aws_sdk_kinesis::types::Shard| -> anyhow::Result<ShardInfo> {
        let r = s.hash_key_range().ok_or_else(|| anyhow::anyhow!("no hash range"))?;
        Ok(ShardInfo::new(&stream, s.shard_id(), r.starting_hash_key().parse()?, r.ending_hash_key().parse()?)
            .with_parents(s.parent_shard_id(), s.adjacent_parent_shard_id()))
    };
    let parent = shards.iter().find(|s| s.parent_shard_id().is_none()).ok_or_else(|| anyhow::anyhow!("no parent"))?;
    let busy = UniformShardAssigner.assign(&info(parent)?, 2);
    let idle_child = shards
        .iter()
        .filter(|s| s.parent_shard_id().is_some())
        .find(|s| info(s).is_ok_and(|i| UniformShardAssigner.assign(&i, 2) != busy))
        .ok_or_else(|| anyhow::anyhow!("no child assigned to the idle subtask"))?;
    let stored = rt.block_on(read_all(&client, &stream))?;
    let in_child = stored.iter().filter(|r| r.shard_id == idle_child.shard_id()).count();
    assert!(in_child > 0, "the child {} of the idle subtask holds records", idle_child.shard_id());
    Ok(())
}

#[test]
fn kinesalite_more_subtasks_than_shards_then_a_split_gives_the_idle_subtask_work() -> anyhow::Result<()> {
    a_split_gives_the_idle_subtask_work(Emulator::Kinesalite, 200)
}

#[test]
fn kinesis_local_more_subtasks_than_shards_then_a_split_gives_the_idle_subtask_work() -> anyhow::Result<()> {
    a_split_gives_the_idle_subtask_work(Emulator::KinesisLocal, 30)
}

#[test]
fn a_restored_parent_that_expired_past_retention_does_not_hold_its_children_back() -> anyhow::Result<()> {
    use rill_kinesis_common::test_utils::{Fault, FaultInjector};
    let emulator = Emulator::Kinesalite;
    let rt = runtime();
    let (client, stream) = rt.block_on(new_stream(emulator, "src-expired-parent", 1))?;
    let mut writer = Writer::default();
    rt.block_on(put(&client, &stream, &writer.batch(6, 60)))?;
    let dir = tempfile::tempdir()?;
    // First run: shard 0 is read (not to its end: it is open) and checkpointed.
    let source = source_builder(emulator.connection()?, &stream, Duration::from_millis(1500)).build()?;
    run_counting_job(source, dir.path(), &JobSpec::default())?;
    // Shard 0 is split; its children get new records.
    rt.block_on(split_widest(&client, &stream))?;
    rt.block_on(put(&client, &stream, &writer.batch(6, 60)))?;
    // Second run: Kinesis no longer lists shard 0 (as after its retention period), while the
    // restored checkpoint still holds it half read. Its children must be read.
    let faults = FaultInjector::new();
    faults.inject_always("ListShards", Fault::HideShards(vec!["shardId-000000000000".into()]));
    let connection = faults.install(emulator.connection_builder()?).build()?;
    let source = source_builder(connection, &stream, Duration::from_millis(1500)).build()?;
    let stats = source.stats_handle();
    let done = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let _ = done.0.send(run_counting_job(source, &path, &JobSpec::default()).map(|r| r.restarts));
    });
    let restarts = done
        .1
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow::anyhow!("the job did not finish: the children wait for their expired parent"))??;
    assert_eq!(restarts, 0);
    assert!(faults.injected("ListShards") > 0);
    assert_eq!(stats().records, 60, "the second run reads the children's records: {:?}", stats());
    assert_exactly_once_in_order(dir.path(), &writer.counts)
}
