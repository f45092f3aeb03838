//! Pure checkpoint decisions: which checkpoint to restore, which to delete, which id comes next.
//!
//! Every function here takes observed facts and returns a decision; the I/O that gathers the facts
//! and carries the decision out goes through a [`CheckpointStore`].

use crate::{CheckpointStore, Manifest, Result, StateError};

/// What was found when a stored checkpoint was examined.
#[derive(Debug, Clone)]
pub enum CheckpointCheck {
    /// Manifest present, intact, and every file it references matches its checksum.
    Complete(Box<Manifest>),
    /// No manifest: the checkpoint never completed (or is still being written).
    Incomplete,
    /// A manifest exists but it, or a file it references, is damaged.
    Corrupt(String),
}

/// The outcome of choosing what to restore.
#[derive(Debug, Clone)]
pub enum RestoreDecision {
    /// No checkpoint ever completed: start from scratch.
    Fresh,
    /// Restore this checkpoint; newer ones listed in `skipped` were corrupt.
    Restore {
        /// The checkpoint to restore.
        manifest: Box<Manifest>,
        /// Newer checkpoints passed over, with the reason.
        skipped: Vec<(u64, String)>,
    },
    /// Checkpoints completed once but none is usable now.
    NoneUsable {
        /// Every rejected checkpoint with the reason.
        skipped: Vec<(u64, String)>,
    },
}

/// Chooses the newest complete checkpoint. `checks` may be in any order.
pub fn decide_restore(mut checks: Vec<(u64, CheckpointCheck)>) -> RestoreDecision {
    checks.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut skipped = Vec::new();
    for (id, check) in checks {
        match check {
            CheckpointCheck::Complete(manifest) => return RestoreDecision::Restore { manifest, skipped },
            CheckpointCheck::Incomplete => {}
            CheckpointCheck::Corrupt(reason) => skipped.push((id, reason)),
        }
    }
    if skipped.is_empty() {
        RestoreDecision::Fresh
    } else {
        RestoreDecision::NoneUsable { skipped }
    }
}

/// Which checkpoints to delete: all but the newest `retain` complete ones, except `in_flight`
/// (a checkpoint still being taken) and anything newer than the newest complete one that may
/// still become complete.
pub fn decide_retention(all: &[u64], complete: &[u64], retain: usize, in_flight: Option<u64>) -> Vec<u64> {
    let mut kept: Vec<u64> = complete.to_vec();
    kept.sort_unstable_by(|a, b| b.cmp(a));
    kept.truncate(retain.max(1));
    let mut doomed: Vec<u64> = all.iter().copied().filter(|id| !kept.contains(id) && Some(*id) != in_flight).collect();
    doomed.sort_unstable();
    doomed.dedup();
    doomed
}

/// Which checkpoints retention deletes after a checkpoint completed: all but the newest `retain`
/// complete ones, incomplete leftovers included. Savepoints are neither deleted nor counted
/// among the `retain`; unreadable manifests are never deleted (they are not in the scan's lists).
pub fn decide_scan_retention(scan: &ManifestScan, retain: usize) -> Vec<u64> {
    let regular = |id: &&u64| !scan.savepoints.contains(id);
    let all: Vec<u64> = scan.complete.iter().chain(&scan.absent).filter(regular).copied().collect();
    let complete: Vec<u64> = scan.complete.iter().filter(regular).copied().collect();
    decide_retention(&all, &complete, retain, None)
}

/// The id for the next checkpoint: above every id ever stored (retired ones included), so
/// nothing is overwritten and no id is used twice.
pub fn next_checkpoint_id(all: &[u64]) -> u64 {
    all.iter().copied().max().map_or(1, |m| m + 1)
}

/// Examines one checkpoint: manifest, its checksum, and every referenced file.
pub fn check_checkpoint(store: &dyn CheckpointStore, id: u64) -> Result<CheckpointCheck> {
    let Some(bytes) = store.read_manifest(id)? else {
        return Ok(CheckpointCheck::Incomplete);
    };
    let manifest = match Manifest::decode(id, &bytes) {
        Ok(m) => m,
        Err(StateError::CorruptCheckpoint { reason, .. }) => return Ok(CheckpointCheck::Corrupt(reason)),
        Err(e) => return Err(e),
    };
    for file in manifest.files() {
        let digest = match store.digest(id, &file.path) {
            Err(StateError::CorruptCheckpoint { reason, .. }) => return Ok(CheckpointCheck::Corrupt(reason)),
            other => other?,
        };
        match digest {
            None => return Ok(CheckpointCheck::Corrupt(format!("file {} is missing", file.path))),
            Some((size, crc)) if size != file.size || crc != file.crc32 => {
                return Ok(CheckpointCheck::Corrupt(format!(
                    "file {} does not match its checksum (size {size} vs {}, crc {crc:08x} vs {:08x})",
                    file.path, file.size, file.crc32
                )))
            }
            Some(_) => {}
        }
    }
    Ok(CheckpointCheck::Complete(Box::new(manifest)))
}

/// Finds what to restore, examining checkpoints newest first and stopping at the first good one.
pub fn find_restore(store: &dyn CheckpointStore) -> Result<RestoreDecision> {
    let mut ids = store.list()?;
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut checks = Vec::new();
    for id in ids {
        let check = check_checkpoint(store, id)?;
        let done = matches!(check, CheckpointCheck::Complete(_));
        checks.push((id, check));
        if done {
            break;
        }
    }
    Ok(decide_restore(checks))
}

/// What reading every checkpoint's manifest found (without verifying file checksums).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestScan {
    /// Checkpoints with a manifest.
    pub complete: Vec<u64>,
    /// Checkpoints without one: never completed (or being written).
    pub absent: Vec<u64>,
    /// Checkpoints whose manifest could not be read (an I/O error), with the error: unknown, so
    /// never deleted.
    pub unreadable: Vec<(u64, String)>,
    /// Complete checkpoints whose manifest marks them as savepoints.
    pub savepoints: Vec<u64>,
}

/// Reads every checkpoint's manifest, telling "absent" from "unreadable".
pub fn scan_manifests(store: &dyn CheckpointStore) -> Result<ManifestScan> {
    let mut ids = store.list()?;
    ids.sort_unstable();
    let mut scan = ManifestScan::default();
    for id in ids {
        match store.read_manifest(id) {
            Ok(Some(bytes)) => {
                if Manifest::decode(id, &bytes).is_ok_and(|m| m.savepoint) {
                    scan.savepoints.push(id);
                }
                scan.complete.push(id)
            }
            Ok(None) => scan.absent.push(id),
            Err(e) => scan.unreadable.push((id, e.to_string())),
        }
    }
    Ok(scan)
}

/// Incomplete checkpoints that can be deleted when a run starts from `restored`: those newer than
/// it (they can never complete now), or all when starting fresh. Unreadable ones are not among
/// them: what could not be read is never deleted.
pub fn decide_leftovers(scan: &ManifestScan, restored: Option<u64>) -> Vec<u64> {
    scan.absent.iter().copied().filter(|id| restored.is_none_or(|r| *id > r)).collect()
}

/// Complete checkpoints to retire (move aside, never delete) before a run restores `restored`:
/// every newer one. Left in place, a later restart would restore one of them — whose output the
/// file sink has rolled back, or whose pending files are gone — instead of what this run commits.
pub fn decide_retirement(scan: &ManifestScan, restored: u64) -> Vec<u64> {
    let newer_unreadable = scan.unreadable.iter().map(|(id, _)| *id);
    scan.complete.iter().copied().chain(newer_unreadable).filter(|id| *id > restored).collect()
}

/// Prefix (relative to an object-store checkpoint location) of the objects several checkpoints
/// may share: immutable SST files, stored once.
pub const SHARED_PREFIX: &str = "shared/";

/// When checkpoint `deleted` goes: its shared objects that no `remaining` manifest names (retained
/// checkpoints, savepoints and retired ones alike). Objects of its own (under `chk-<id>/`) go with
/// it and are not listed here. While `undecodable` other manifests exist, none: one of them might
/// name any shared object (the checkpoint's own objects still go, so retention goes on).
pub fn decide_shared_objects_to_delete(deleted: &Manifest, remaining: &[Manifest], undecodable: usize) -> Vec<String> {
    if undecodable > 0 {
        return Vec::new();
    }
    let shared = |m: &Manifest| -> Vec<String> {
        m.files().filter_map(|f| f.object.clone()).filter(|o| o.starts_with(SHARED_PREFIX)).collect()
    };
    let referenced: std::collections::HashSet<String> = remaining.iter().flat_map(shared).collect();
    let mut out: Vec<String> = shared(deleted).into_iter().filter(|o| !referenced.contains(o)).collect();
    out.sort();
    out.dedup();
    out
}

/// Which of the stored shared objects `stored` no manifest names (complete, savepoint or retired
/// ones alike): uploads of attempts that died before a checkpoint named them. Decide only while
/// no upload of the running job is in flight. While `undecodable` manifests exist, none (one of
/// them might name any object).
pub fn decide_orphaned_shared_objects(stored: &[String], manifests: &[Manifest], undecodable: usize) -> Vec<String> {
    if undecodable > 0 {
        return Vec::new();
    }
    let named: std::collections::HashSet<&str> =
        manifests.iter().flat_map(|m| m.files().filter_map(|f| f.object.as_deref())).collect();
    let mut out: Vec<String> =
        stored.iter().filter(|o| o.starts_with(SHARED_PREFIX) && !named.contains(o.as_str())).cloned().collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileDigest, KeyGroupRange, MemoryCheckpointStore, SubtaskSnapshot, VertexSnapshot};

    /// A one-subtask manifest naming `files`.
    fn manifest_of(
        id: u64,
        keyed_state_dir: Option<&str>,
        operator_state_file: Option<&str>,
        files: Vec<FileDigest>,
    ) -> Manifest {
        Manifest {
            checkpoint: id,
            job: "test".into(),
            max_parallelism: 128,
            completed_at_ms: 0,
            final_checkpoint: false,
            savepoint: false,
            vertices: vec![VertexSnapshot {
                vertex: "v0".into(),
                parallelism: 1,
                subtasks: vec![SubtaskSnapshot {
                    subtask: 0,
                    key_groups: KeyGroupRange { start: 0, end: 127 },
                    keyed_state_dir: keyed_state_dir.map(str::to_string),
                    operator_state_file: operator_state_file.map(str::to_string),
                    files,
                    keyed_states: Default::default(),
                }],
            }],
        }
    }

    fn complete(store: &MemoryCheckpointStore, id: u64) {
        let data = format!("state of {id}").into_bytes();
        store.put_file(id, "v0-0/operator.bin", &data);
        let file = FileDigest {
            path: "v0-0/operator.bin".into(),
            size: data.len() as u64,
            crc32: crc32fast::hash(&data),
            object: None,
        };
        let manifest = manifest_of(id, None, Some("v0-0/operator.bin"), vec![file]);
        store.write_manifest(id, &manifest.encode().unwrap()).unwrap();
    }

    fn restored_id(decision: RestoreDecision) -> Option<u64> {
        match decision {
            RestoreDecision::Restore { manifest, .. } => Some(manifest.checkpoint),
            _ => None,
        }
    }

    /// Checkpoint `id` in `store`'s directory: its operator state under `v0-0/` (made a
    /// symbolic link to `link_to` if given), and its manifest.
    fn complete_on_disk(store: &crate::FsCheckpointStore, id: u64, link_to: Option<&std::path::Path>) {
        let data = format!("state of {id}").into_bytes();
        let dir = store.checkpoint_dir(id);
        std::fs::create_dir_all(&dir).unwrap();
        let state_dir = match link_to {
            Some(outside) => {
                std::os::unix::fs::symlink(outside, dir.join("v0-0")).unwrap();
                outside.to_path_buf()
            }
            None => dir.join("v0-0"),
        };
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::write(state_dir.join("operator.bin"), &data).unwrap();
        let file = FileDigest {
            path: "v0-0/operator.bin".into(),
            size: data.len() as u64,
            crc32: crc32fast::hash(&data),
            object: None,
        };
        let manifest = manifest_of(id, None, Some("v0-0/operator.bin"), vec![file]);
        store.write_manifest(id, &manifest.encode().unwrap()).unwrap();
    }

    #[test]
    fn a_checkpoint_whose_files_are_reached_through_a_symlink_is_corrupt_and_the_previous_one_restored() {
        let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = crate::FsCheckpointStore::new(root.path()).unwrap();
        complete_on_disk(&store, 1, None);
        complete_on_disk(&store, 2, Some(outside.path()));
        match check_checkpoint(&store, 2).unwrap() {
            CheckpointCheck::Corrupt(reason) => assert!(reason.contains("symbolic link"), "{reason}"),
            other => panic!("a checkpoint read through a link outside it was accepted: {other:?}"),
        }
        assert_eq!(restored_id(find_restore(&store).unwrap()), Some(1));
    }

    #[test]
    fn an_unreadable_manifest_is_neither_complete_nor_absent_and_never_a_leftover() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 1);
        store.put_file(2, "v0-0/operator.bin", b"half written");
        complete(&store, 3);
        store.fail_manifest_reads(3);
        let scan = scan_manifests(&store).unwrap();
        assert_eq!(scan.complete, vec![1]);
        assert_eq!(scan.absent, vec![2]);
        assert_eq!(scan.unreadable.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(decide_leftovers(&scan, Some(1)), vec![2], "3 could not be read: kept");
        assert_eq!(decide_leftovers(&scan, None), vec![2]);
    }

    #[test]
    fn restoring_an_older_checkpoint_retires_every_newer_one() {
        let store = MemoryCheckpointStore::new();
        for id in [3, 4, 5] {
            complete(&store, id);
        }
        let scan = scan_manifests(&store).unwrap();
        assert_eq!(decide_retirement(&scan, 3), vec![4, 5]);
        assert!(decide_retirement(&scan, 5).is_empty());
        for id in decide_retirement(&scan, 3) {
            store.retire(id).unwrap();
        }
        assert_eq!(store.list().unwrap(), vec![3]);
        assert_eq!(store.retired().unwrap(), vec![4, 5]);
        assert_eq!(restored_id(find_restore(&store).unwrap()), Some(3), "a plain re-run restores 3 again");
    }

    #[test]
    fn empty_store_starts_fresh() {
        let store = MemoryCheckpointStore::new();
        assert!(matches!(find_restore(&store).unwrap(), RestoreDecision::Fresh));
    }

    #[test]
    fn latest_complete_checkpoint_is_restored() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 1);
        complete(&store, 2);
        store.put_file(3, "v0-0/operator.bin", b"half written");
        assert_eq!(restored_id(find_restore(&store).unwrap()), Some(2));
    }

    #[test]
    fn corrupt_latest_checkpoint_falls_back_to_previous_and_names_it() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 1);
        complete(&store, 2);
        store.flip_byte(2, "v0-0/operator.bin", 0);
        match find_restore(&store).unwrap() {
            RestoreDecision::Restore { manifest, skipped } => {
                assert_eq!(manifest.checkpoint, 1);
                assert_eq!(skipped.len(), 1);
                assert_eq!(skipped[0].0, 2);
                assert!(skipped[0].1.contains("v0-0/operator.bin"), "{}", skipped[0].1);
            }
            other => panic!("expected a restore, got {other:?}"),
        }
    }

    #[test]
    fn torn_manifest_falls_back_to_previous() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 4);
        complete(&store, 5);
        store.flip_byte(5, crate::MANIFEST_FILE, 40);
        assert_eq!(restored_id(find_restore(&store).unwrap()), Some(4));
    }

    #[test]
    fn missing_file_makes_checkpoint_corrupt() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 1);
        let manifest = store.read_manifest(1).unwrap().unwrap();
        store.delete(1).unwrap();
        store.write_manifest(1, &manifest).unwrap();
        assert!(matches!(check_checkpoint(&store, 1).unwrap(), CheckpointCheck::Corrupt(r) if r.contains("missing")));
    }

    #[test]
    fn all_corrupt_is_an_error_not_a_fresh_start() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 1);
        store.flip_byte(1, "v0-0/operator.bin", 2);
        assert!(matches!(find_restore(&store).unwrap(), RestoreDecision::NoneUsable { skipped } if skipped.len() == 1));
    }

    #[test]
    fn retention_keeps_newest_complete_and_the_one_in_flight() {
        let doomed = decide_retention(&[1, 2, 3, 4, 5, 6], &[1, 2, 3, 5], 2, Some(6));
        assert_eq!(doomed, vec![1, 2, 4]);
    }

    #[test]
    fn retention_never_deletes_a_savepoint_nor_counts_it_among_the_retained() {
        let scan = ManifestScan { complete: vec![1, 2, 3, 4, 5], savepoints: vec![2], ..Default::default() };
        assert_eq!(decide_scan_retention(&scan, 2), vec![1, 3]);
    }

    #[test]
    fn a_savepoint_is_found_by_the_scan() {
        let store = MemoryCheckpointStore::new();
        complete(&store, 1);
        let mut manifest = Manifest::decode(1, &store.read_manifest(1).unwrap().unwrap()).unwrap();
        manifest.checkpoint = 2;
        manifest.savepoint = true;
        store.write_manifest(2, &manifest.encode().unwrap()).unwrap();
        let scan = scan_manifests(&store).unwrap();
        assert_eq!((scan.complete, scan.savepoints), (vec![1, 2], vec![2]));
    }

    #[test]
    fn retention_never_deletes_the_only_complete_checkpoint() {
        assert_eq!(decide_retention(&[3, 4], &[3], 0, None), vec![4]);
    }

    #[test]
    fn next_id_is_above_every_stored_id_including_incomplete_ones() {
        assert_eq!(next_checkpoint_id(&[]), 1);
        assert_eq!(next_checkpoint_id(&[3, 9, 4]), 10);
    }

    fn with_objects(id: u64, objects: &[&str]) -> Manifest {
        let files = objects
            .iter()
            .map(|o| FileDigest { path: format!("v0-0/keyed/{o}"), size: 1, crc32: 0, object: Some(o.to_string()) })
            .collect();
        manifest_of(id, Some("v0-0/keyed"), None, files)
    }

    #[test]
    fn a_deleted_checkpoint_takes_only_the_shared_objects_no_other_manifest_names() {
        let old = with_objects(1, &["shared/a/1.sst", "shared/a/2.sst", "chk-0000000001/v0-0/keyed/MANIFEST-5"]);
        let retained = with_objects(2, &["shared/a/2.sst", "shared/a/3.sst"]);
        let retired = with_objects(7, &["shared/a/1.sst"]);
        assert_eq!(
            decide_shared_objects_to_delete(&old, std::slice::from_ref(&retained), 0),
            vec!["shared/a/1.sst".to_string()]
        );
        assert!(
            decide_shared_objects_to_delete(&old, std::slice::from_ref(&retained), 1).is_empty(),
            "an undecodable manifest might name 1.sst"
        );
        assert!(
            decide_shared_objects_to_delete(&old, &[retained, retired], 0).is_empty(),
            "a retired manifest still names 1.sst"
        );
    }

    #[test]
    fn shared_objects_no_manifest_names_are_orphans_unless_a_manifest_is_undecodable() {
        let kept = with_objects(1, &["shared/a/1.sst", "chk-0000000001/a/v0-0/keyed/MANIFEST-5"]);
        let stored: Vec<String> =
            ["shared/a/1.sst", "shared/dead-run/7.sst", "shared/dead-run/8.sst"].map(String::from).to_vec();
        let orphans = decide_orphaned_shared_objects(&stored, std::slice::from_ref(&kept), 0);
        assert_eq!(orphans, ["shared/dead-run/7.sst", "shared/dead-run/8.sst"]);
        assert!(decide_orphaned_shared_objects(&stored, &[kept], 1).is_empty());
    }
}
