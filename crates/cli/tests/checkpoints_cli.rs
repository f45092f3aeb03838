//! `rill checkpoints list|show|verify` on the checkpoints of a real job (a keyed running count
//! with RocksDB state), intact and with a flipped byte.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rill_operators::{DiscardSink, GeneratorSource, KeyedStreamExt, RunningCount, StreamExt};
use rill_runtime::StreamEnv;
use rill_state::{CheckpointStore, FsCheckpointStore, Manifest};

fn rill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rill")).args(args).output().expect("run rill")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs a keyed count over 200,000 numbers with checkpoints every 50 ms into `dir`.
fn run_job(dir: &Path) {
    let env = StreamEnv::builder()
        .parallelism(2)
        .checkpoint_interval(Duration::from_millis(50))
        .checkpoint_dir(dir)
        .build()
        .expect("job configuration");
    env.source("numbers", GeneratorSource::new(0..200_000u64).splits(4))
        .key_by(|n: &u64| (n % 1000).to_string())
        .process(RunningCount::open)
        .sink_to(DiscardSink);
    env.execute("cli-test").expect("the job runs");
}

/// A finished job's checkpoint directory, its store, and the newest checkpoint's id and manifest.
fn finished_job() -> (tempfile::TempDir, FsCheckpointStore, u64, Manifest) {
    let dir = tempfile::tempdir().expect("temporary directory");
    run_job(dir.path());
    let store = FsCheckpointStore::new(dir.path()).expect("store");
    let id = store.list().expect("list").into_iter().max().expect("a checkpoint");
    let bytes = store.read_manifest(id).expect("read").expect("a manifest");
    let manifest = Manifest::decode(id, &bytes).expect("decodes");
    (dir, store, id, manifest)
}

#[test]
fn list_show_and_verify_describe_the_checkpoints_of_a_finished_job() {
    let (dir, _, id, manifest) = finished_job();
    let path = dir.path().to_str().unwrap();

    let list = rill(&["checkpoints", "list", path]);
    assert!(list.status.success(), "{}", text(&list));
    let listed = text(&list);
    assert!(listed.contains(&format!("{id:>8}")) && listed.contains("complete (final)"), "{listed}");

    let show = rill(&["checkpoints", "show", path]);
    let shown = text(&show);
    assert!(show.status.success(), "{shown}");
    assert!(shown.contains(&format!("checkpoint {id} of job 'cli-test'")), "{shown}");
    let keyed = manifest.vertices.iter().find(|v| v.subtasks.iter().any(|s| s.keyed_state_dir.is_some())).unwrap();
    assert!(shown.contains(&format!("vertex {} (parallelism 2)", keyed.vertex)), "{shown}");
    assert!(shown.contains("key groups     0..="), "{shown}");

    let verify = rill(&["checkpoints", "verify", path]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains(&format!("checkpoint {id}: ok")));
}

#[test]
fn a_savepoint_is_listed_and_shown_as_one() {
    let (dir, store, id, mut manifest) = finished_job();
    manifest.savepoint = true;
    store.write_manifest(id, &manifest.encode().expect("encode")).expect("write");
    let path = dir.path().to_str().unwrap();
    let listed = text(&rill(&["checkpoints", "list", path]));
    assert!(listed.contains("savepoint (final)"), "{listed}");
    let shown = text(&rill(&["checkpoints", "show", path]));
    assert!(shown.contains("(savepoint) (final)"), "{shown}");
}

#[test]
fn verify_fails_naming_the_file_when_a_byte_is_flipped_or_the_checkpoint_is_absent() {
    let (dir, store, id, manifest) = finished_job();
    let path = dir.path().to_str().unwrap();
    let file = manifest.files().find(|f| f.size > 0).expect("a non-empty file").path.clone();
    let on_disk = store.checkpoint_dir(id).join(&file);
    let mut bytes = std::fs::read(&on_disk).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&on_disk, bytes).unwrap();

    let verify = rill(&["checkpoints", "verify", path, &id.to_string()]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(text(&verify).contains("CORRUPT") && text(&verify).contains(&file), "{}", text(&verify));
    let all = rill(&["checkpoints", "verify", path]);
    assert_eq!(all.status.code(), Some(1), "{}", text(&all));

    let absent = rill(&["checkpoints", "verify", path, "999999"]);
    assert_eq!(absent.status.code(), Some(2), "{}", text(&absent));
    assert!(text(&absent).contains("no checkpoint 999999"), "{}", text(&absent));
    let nowhere = rill(&["checkpoints", "list", "/nonexistent/rill"]);
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(text(&nowhere).contains("is not a directory"), "{}", text(&nowhere));
}

#[test]
fn show_gives_each_kinesis_shards_position() -> anyhow::Result<()> {
    use rill_kinesis_common::test_utils::{create_stream, list_shard_ids, put_records, unique_stream_name, Emulator};
    use rill_kinesis_source::{DeserializeError, InitialPosition, KinesisRecord, KinesisSource};
    let emulator = Emulator::Kinesalite;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let stream = unique_stream_name("cli-show");
    let records: Vec<(String, Vec<u8>)> = (0..200).map(|i| (format!("k{i}"), b"x".to_vec())).collect();
    let shards = rt.block_on(async {
        let client = emulator.client().await?;
        create_stream(&client, &stream, 2).await?;
        put_records(&client, &stream, &records).await?;
        list_shard_ids(&client, &stream).await
    })?;
    let key = |r: &KinesisRecord<'_>| -> Result<String, DeserializeError> { Ok(r.partition_key.to_string()) };
    let source = KinesisSource::builder(key)
        .connection(emulator.connection()?)
        .stream(&stream)
        .initial_position(InitialPosition::TrimHorizon)
        .stop_when_idle(Duration::from_millis(1500))
        .build()?;
    let dir = tempfile::tempdir()?;
    let env = StreamEnv::builder().parallelism(2).checkpoint_dir(dir.path()).build()?;
    env.source("kinesis", source).sink_to(DiscardSink);
    env.execute("cli-kinesis")?;

    let show = rill(&["checkpoints", "show", dir.path().to_str().unwrap_or_default()]);
    let shown = text(&show);
    assert!(show.status.success(), "{shown}");
    assert_eq!(shards.len(), 2);
    for shard in shards {
        assert!(shown.contains(&format!("kinesis shard {stream}/{shard}: after ")), "{shard} missing:\n{shown}");
    }
    Ok(())
}
