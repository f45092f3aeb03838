//! Checkpoints in an object store (here `object_store`'s in-memory one): SST files uploaded once
//! and shared, manifests written only if absent, retention that deletes only what no manifest
//! names, and restore onto an empty local directory, falling back past a corrupt object.

use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use rill_state::decisions::{find_restore, RestoreDecision};
use rill_state::{
    key_group_of, CheckpointStore, FsCheckpointStore, KeyGroupRange, KeyedBackend, KeyedRestoreSource, KeyedScope,
    KeyedStateConfig, Manifest, RemoteCheckpointStore, SnapshotUploader, StateError, SubtaskSnapshotWriter,
    UploadStats, VertexSnapshot,
};
use rill_storage::RemoteLocation;

const MAX_P: u16 = 128;

fn all() -> KeyGroupRange {
    KeyGroupRange { start: 0, end: MAX_P - 1 }
}

struct Job {
    backend: KeyedBackend,
    local: FsCheckpointStore,
    store: RemoteCheckpointStore,
    uploader: SnapshotUploader,
}

fn objects(store: &InMemory) -> Vec<String> {
    let listed: Vec<_> = futures::executor::block_on(store.list(None).try_collect()).unwrap();
    let mut names: Vec<String> = listed.into_iter().map(|m: object_store::ObjectMeta| m.location.to_string()).collect();
    names.sort();
    names
}

impl Job {
    fn start(dir: &Path, location: Arc<RemoteLocation>) -> Job {
        let backend = KeyedBackend::open(dir.join("work"), all(), KeyedStateConfig::default(), &[]).unwrap();
        let local = FsCheckpointStore::new(dir.join("checkpoints")).unwrap();
        let store = RemoteCheckpointStore::new(local.clone(), location.clone());
        Job { backend, local, store, uploader: SnapshotUploader::new(location, "run1-v0-0") }
    }

    fn count(&mut self, keys: std::ops::Range<u64>, add: u64) {
        let count = self.backend.value_state::<u64, u64>("count").unwrap();
        for k in keys {
            let mut scope = KeyedScope::new(&mut self.backend, &k, key_group_of(&k, MAX_P));
            let old = count.get(&mut scope).unwrap().unwrap_or(0);
            count.set(&mut scope, old + add).unwrap();
        }
    }

    /// Snapshot, upload, manifest: what a subtask and the coordinator do for checkpoint `id`.
    fn checkpoint(&mut self, id: u64) -> UploadStats {
        let dir = self.local.checkpoint_dir(id);
        let writer = SubtaskSnapshotWriter::create(&dir, "v0-0".into(), 0, all()).unwrap();
        let files = self.backend.snapshot(&writer.keyed_state_dir()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        self.uploader.upload_async(
            id,
            dir,
            writer.finish_with_keyed_state(files, self.backend.state_owners().clone()),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        let (snapshot, stats) = rx.recv().unwrap().unwrap();
        let manifest = Manifest {
            checkpoint: id,
            job: "count".into(),
            max_parallelism: MAX_P,
            completed_at_ms: 0,
            final_checkpoint: false,
            savepoint: false,
            vertices: vec![VertexSnapshot { vertex: "v0".into(), parallelism: 1, subtasks: vec![snapshot] }],
        };
        self.store.write_manifest(id, &manifest.encode().unwrap()).unwrap();
        stats
    }
}

fn location(store: &Arc<InMemory>) -> Arc<RemoteLocation> {
    Arc::new(RemoteLocation::from_store("memory://bucket/job", store.clone(), "job").unwrap())
}

/// Restores on "another machine": an empty local directory, the same object-store location.
fn restore_elsewhere(location: Arc<RemoteLocation>) -> (tempfile::TempDir, u64, Vec<(u64, String)>, KeyedBackend) {
    let dir = tempfile::tempdir().unwrap();
    let local = FsCheckpointStore::new(dir.path().join("checkpoints")).unwrap();
    let store = RemoteCheckpointStore::new(local.clone(), location);
    let RestoreDecision::Restore { manifest, skipped } = find_restore(&store).unwrap() else {
        panic!("a checkpoint to restore")
    };
    let keyed = local.checkpoint_dir(manifest.checkpoint).join("v0-0/keyed");
    let source = KeyedRestoreSource::new(keyed, all());
    let backend = KeyedBackend::open(dir.path().join("work"), all(), KeyedStateConfig::default(), &[source]).unwrap();
    (dir, manifest.checkpoint, skipped, backend)
}

fn count_of(backend: &mut KeyedBackend, k: u64) -> Option<u64> {
    let count = backend.value_state::<u64, u64>("count").unwrap();
    count.get(&mut KeyedScope::new(backend, &k, key_group_of(&k, MAX_P))).unwrap()
}

#[test]
fn a_second_checkpoint_uploads_only_its_new_sst_files_and_names_the_old_ones() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    job.count(0..50_000, 1);
    let first = job.checkpoint(1);
    job.count(0..100, 1);
    let second = job.checkpoint(2);
    assert_eq!(first.reused, 0, "{first:?}");
    assert!(second.reused >= 1, "the first checkpoint's SST file is named again, not uploaded: {second:?}");
    assert!(second.bytes * 4 < first.bytes, "the second upload follows the change: {first:?} then {second:?}");
    let stored = objects(&memory);
    let manifest = Manifest::decode(2, &job.store.read_manifest(2).unwrap().unwrap()).unwrap();
    for file in manifest.files() {
        let object = format!("job/{}", file.object.as_deref().unwrap());
        assert!(stored.contains(&object), "{object} is in the store: {stored:?}");
    }
    assert!(stored.iter().any(|o| o.starts_with("job/shared/run1-v0-0/") && o.ends_with(".sst")), "{stored:?}");
}

#[test]
fn a_fresh_machine_restores_the_latest_checkpoint_from_the_object_store() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    job.count(0..1_000, 1);
    job.checkpoint(1);
    job.count(0..10, 5);
    job.checkpoint(2);
    drop(job);
    drop(dir);
    let (_dir, restored, skipped, mut backend) = restore_elsewhere(location(&memory));
    assert_eq!((restored, skipped), (2, vec![]));
    assert_eq!(count_of(&mut backend, 3), Some(6));
    assert_eq!(count_of(&mut backend, 999), Some(1));
    assert_eq!(count_of(&mut backend, 1_000), None);
}

#[test]
fn a_second_process_cannot_complete_a_checkpoint_that_has_a_manifest() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    job.count(0..10, 1);
    job.checkpoint(1);
    let other_dir = tempfile::tempdir().unwrap();
    let other = RemoteCheckpointStore::new(FsCheckpointStore::new(other_dir.path()).unwrap(), location(&memory));
    let before = job.store.read_manifest(1).unwrap();
    let err = other.write_manifest(1, b"rill-manifest v1 crc32=00000000\n{}").unwrap_err();
    assert!(matches!(err, StateError::ManifestExists { checkpoint: 1, .. }), "{err}");
    assert!(err.to_string().contains("memory://bucket/job/chk-0000000001/_manifest"), "{err}");
    assert_eq!(job.store.read_manifest(1).unwrap(), before, "the first manifest is untouched");
}

#[test]
fn a_retried_manifest_put_that_finds_its_own_manifest_there_succeeds() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    job.count(0..10, 1);
    job.checkpoint(1);
    let written = job.store.read_manifest(1).unwrap().unwrap();
    // The first put landed but its answer was lost: the retry finds the same bytes.
    job.store.write_manifest(1, &written).expect("the same manifest is not another writer's");
}

#[test]
fn deleting_a_checkpoint_removes_only_objects_no_remaining_manifest_names() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    job.count(0..20_000, 1);
    job.checkpoint(1);
    job.count(0..20_000, 1);
    job.checkpoint(2);
    let named = |id: u64| -> Vec<String> {
        let m = Manifest::decode(id, &job.store.read_manifest(id).unwrap().unwrap()).unwrap();
        m.files().map(|f| format!("job/{}", f.object.clone().unwrap())).collect()
    };
    let (first, second) = (named(1), named(2));
    job.store.delete(1).unwrap();
    let stored = objects(&memory);
    for object in &second {
        assert!(stored.contains(object), "{object}, named by checkpoint 2, stays");
    }
    for object in first.iter().filter(|o| !second.contains(o)) {
        assert!(!stored.contains(object), "{object}, named only by checkpoint 1, is gone");
    }
    assert!(!stored.iter().any(|o| o.starts_with("job/chk-0000000001/")), "{stored:?}");
    assert_eq!(job.store.list().unwrap(), vec![2]);
}

#[test]
fn a_corrupt_object_makes_a_fresh_machine_restore_the_previous_checkpoint() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    job.count(0..100, 1);
    job.checkpoint(1);
    job.count(0..100, 1);
    job.checkpoint(2);
    let manifest = Manifest::decode(2, &job.store.read_manifest(2).unwrap().unwrap()).unwrap();
    let own = manifest.files().find(|f| f.object.as_deref().is_some_and(|o| o.starts_with("chk-"))).unwrap();
    let path = ObjectPath::from(format!("job/{}", own.object.as_deref().unwrap()));
    futures::executor::block_on(memory.put(&path, b"garbage".to_vec().into())).unwrap();
    let (_dir, restored, skipped, mut backend) = restore_elsewhere(location(&memory));
    assert_eq!(restored, 1);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].1.contains(&own.path), "the reason names the file: {skipped:?}");
    assert_eq!(count_of(&mut backend, 7), Some(1));
}

#[test]
fn an_undecodable_retired_manifest_does_not_stop_retention_and_keeps_the_shared_objects() {
    let memory = Arc::new(InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), location(&memory));
    for id in 1..=3 {
        job.count(0..20_000, 1);
        job.checkpoint(id);
    }
    // Checkpoint 1 is retired, and its manifest becomes unreadable.
    job.store.retire(1).unwrap();
    let retired = object_store::path::Path::from("job/retired/chk-0000000001/_manifest");
    futures::executor::block_on(memory.put(&retired, b"not a manifest".to_vec().into())).unwrap();
    let shared_before: Vec<String> = objects(&memory).into_iter().filter(|o| o.starts_with("job/shared/")).collect();

    job.store.delete(2).expect("retention goes on despite the unreadable manifest");
    let stored = objects(&memory);
    assert!(!stored.iter().any(|o| o.starts_with("job/chk-0000000002/")), "checkpoint 2's own objects are gone");
    for object in &shared_before {
        assert!(stored.contains(object), "{object} stays: the unreadable manifest might name it");
    }
    assert_eq!(job.store.list().unwrap(), vec![3]);
}
