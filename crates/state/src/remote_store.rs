//! Checkpoints in object storage, with the local disk as their working copy: the
//! [`CheckpointStore`] of a job whose checkpoint location is `s3://...`.
//!
//! The object store is the truth. A checkpoint is complete when its manifest object exists; the
//! manifest is written last, with a put that fails if one exists already. A subtask's files are
//! uploaded before it acknowledges (see [`crate::SnapshotUploader`]), so a manifest only ever
//! names objects that are there. Restoring reads the manifest from the store and downloads each
//! file it names into the local checkpoint directory, unless a local copy with the same size and
//! checksum is there already (the same machine); then the local copy is restored as always.
//! Layout under the location's prefix:
//!
//! ```text
//! chk-<id>/_manifest               written last, only if absent
//! chk-<id>/<instance>/...          a checkpoint's own files (operator state, RocksDB metadata)
//! shared/<instance>/<n>.sst        SST files, uploaded once, named by every manifest needing them
//! retired/chk-<id>/...             checkpoints moved aside, never deleted
//! _generation                      the head: which run owns the location (see fence.rs)
//! _job                             the job's id (see job_id.rs)
//! ```
//!
//! Of two runs on one location, only the newest commits: each run claims the location's next
//! generation before it touches anything, and every manifest write first advances the head
//! conditionally, so a run that was claimed over fails, fenced, before its manifest exists.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::decisions::{decide_orphaned_shared_objects, decide_shared_objects_to_delete, SHARED_PREFIX};
use crate::fence::{aborted_manifest, Fence, ABORTED_MANIFEST};
use crate::job_id::{new_job_id, parse_job_id};
use crate::store::{digest_file, digest_if_present, FsCheckpointStore};
use crate::upload::checkpoint_rel;
use rill_storage::{PutOutcome, RemoteLocation};

use crate::{CheckpointStore, Manifest, Result, StateError, MANIFEST_FILE, RETIRED_DIR};

/// Checkpoints in an object store, mirrored to (and restored through) a local directory.
#[derive(Debug, Clone)]
pub struct RemoteCheckpointStore {
    local: FsCheckpointStore,
    location: Arc<RemoteLocation>,
    /// Manifests read while checking a checkpoint, to find each file's object.
    manifests: Arc<Mutex<HashMap<u64, Arc<Manifest>>>>,
    /// This run's hold on the location.
    fence: Arc<Fence>,
}

fn parse_id(name: &str) -> Option<u64> {
    name.strip_prefix("chk-").and_then(|n| n.parse().ok())
}

impl RemoteCheckpointStore {
    /// Checkpoints at `location`, with `local` as the working copy.
    pub fn new(local: FsCheckpointStore, location: Arc<RemoteLocation>) -> Self {
        let fence = Arc::new(Fence::new(location.clone()));
        RemoteCheckpointStore { local, location, manifests: Arc::default(), fence }
    }

    /// The local working copy.
    pub fn local(&self) -> &FsCheckpointStore {
        &self.local
    }

    /// The object-store location.
    pub fn location(&self) -> &Arc<RemoteLocation> {
        &self.location
    }

    fn manifest_rel(id: u64) -> String {
        format!("{}/{MANIFEST_FILE}", checkpoint_rel(id))
    }

    fn remote_ids(&self, under: &str) -> Result<BTreeSet<u64>> {
        Ok(self.location.list_names(under)?.iter().filter_map(|n| parse_id(n)).collect())
    }

    /// Puts manifest `id` into the store only if its slot is empty (see `write_manifest`).
    fn put_manifest(&self, id: u64, bytes: &[u8]) -> Result<()> {
        let rel = Self::manifest_rel(id);
        if self.location.put_if_absent(&rel, bytes.to_vec())? == PutOutcome::AlreadyExists {
            let found = self.location.get(&rel)?;
            if found.as_deref() != Some(bytes) {
                if found.is_some_and(|f| f.starts_with(ABORTED_MANIFEST)) {
                    // A newer run claimed the location after this head was advanced.
                    self.fence.verify()?;
                }
                return Err(StateError::ManifestExists { checkpoint: id, location: self.location.url_of(&rel) });
            }
        }
        Ok(())
    }

    /// The decoded manifest of `id` (from the cache of this store, else the object store).
    fn manifest(&self, id: u64) -> Result<Option<Arc<Manifest>>> {
        let cache = || self.manifests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache().get(&id) {
            return Ok(Some(m.clone()));
        }
        let Some(bytes) = self.read_manifest(id)? else { return Ok(None) };
        let manifest = Arc::new(Manifest::decode(id, &bytes)?);
        cache().insert(id, manifest.clone());
        Ok(Some(manifest))
    }

    /// Every manifest in the store but `except`'s (complete and retired checkpoints), and how
    /// many could not be decoded. One that cannot be fetched stops the deletion (it might name
    /// the objects about to go).
    fn other_manifests(&self, except: Option<u64>) -> Result<(Vec<Manifest>, usize)> {
        let (mut out, mut undecodable) = (Vec::new(), 0);
        let mut decoded = |result: Result<Option<Manifest>>| -> Result<()> {
            match result {
                Ok(Some(manifest)) => out.push(manifest),
                Ok(None) => {}
                Err(StateError::CorruptCheckpoint { .. }) => undecodable += 1,
                Err(e) => return Err(e),
            }
            Ok(())
        };
        for id in self.remote_ids("")?.into_iter().filter(|&i| Some(i) != except) {
            decoded(self.manifest(id).map(|m| m.map(|m| Manifest::clone(&m))))?;
        }
        for id in self.remote_ids(RETIRED_DIR)? {
            let rel = format!("{RETIRED_DIR}/{}", Self::manifest_rel(id));
            let bytes = self.location.get(&rel)?;
            decoded(bytes.map(|b| Manifest::decode(id, &b)).transpose())?;
        }
        Ok((out, undecodable))
    }
}

impl CheckpointStore for RemoteCheckpointStore {
    /// Checkpoints in the object store, and local leftovers of attempts that never uploaded.
    fn list(&self) -> Result<Vec<u64>> {
        let mut ids = self.remote_ids("")?;
        ids.extend(self.local.list()?);
        Ok(ids.into_iter().collect())
    }

    /// The manifest's bytes; an abort marker (see [`CheckpointStore::claim`]) is no manifest.
    fn read_manifest(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let bytes = self.location.get(&Self::manifest_rel(id))?;
        Ok(bytes.filter(|b| !b.starts_with(ABORTED_MANIFEST)).map(|b| b.to_vec()))
    }

    fn sync_dir(&self, id: u64, rel: &str) -> Result<()> {
        self.local.sync_dir(id, rel)
    }

    /// Advances the location's head to this checkpoint (fenced if a newer run claimed it), puts
    /// the manifest in the object store only if none is there (another process may have
    /// completed this checkpoint, or a newer run aborted it: then this one fails), then writes the
    /// local copy. Finding the very same manifest there is a success: an earlier attempt of this
    /// put landed, and its answer was lost.
    fn write_manifest(&self, id: u64, bytes: &[u8]) -> Result<()> {
        self.fence.advance(id)?;
        self.put_manifest(id, bytes)?;
        self.local.write_manifest(id, bytes)
    }

    /// Size and CRC-32 of the local copy of a file, downloading it first when the local copy
    /// is missing or differs from what the manifest says. `None` if the object is missing.
    fn digest(&self, id: u64, path: &str) -> Result<Option<(u64, u32)>> {
        let local = self.local.file_without_links(id, path)?;
        let entry = self.manifest(id)?.and_then(|m| m.files().find(|f| f.path == path).cloned());
        let found = digest_if_present(&local)?;
        let Some(entry) = entry else { return Ok(found) };
        if found == Some((entry.size, entry.crc32)) {
            return Ok(found);
        }
        let Some(object) = entry.object.as_deref() else { return Ok(found) };
        if !self.location.download(object, &local)? {
            return Ok(None);
        }
        digest_file(&local).map(Some)
    }

    /// Deletes the manifest first (the checkpoint is no longer complete), then the checkpoint's
    /// own objects and the shared ones no other manifest names, then the local copy.
    fn delete(&self, id: u64) -> Result<()> {
        let doomed_shared = match self.manifest(id)? {
            Some(manifest) => {
                let (others, undecodable) = self.other_manifests(Some(id))?;
                decide_shared_objects_to_delete(&manifest, &others, undecodable)
            }
            None => Vec::new(),
        };
        self.location.remove(&Self::manifest_rel(id))?;
        for object in self.location.list(&checkpoint_rel(id))? {
            self.location.remove(&object)?;
        }
        for object in doomed_shared {
            self.location.remove(&object)?;
        }
        self.manifests.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.local.delete(id)
    }

    /// Moves the checkpoint's own objects under `retired/` (manifest last), and the local copy
    /// aside. Shared objects stay: a retired manifest still names them.
    fn retire(&self, id: u64) -> Result<()> {
        let manifest_rel = Self::manifest_rel(id);
        let mut objects = self.location.list(&checkpoint_rel(id))?;
        objects.sort_by_key(|o| *o == manifest_rel);
        for object in &objects {
            self.location.copy(object, &format!("{RETIRED_DIR}/{object}"))?;
        }
        // The manifest goes first: a retirement cut short leaves an incomplete checkpoint.
        self.location.remove(&manifest_rel)?;
        for object in objects.iter().filter(|o| **o != manifest_rel) {
            self.location.remove(object)?;
        }
        self.manifests.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if self.local.checkpoint_dir(id).exists() {
            self.local.retire(id)?;
        }
        Ok(())
    }

    fn retired(&self) -> Result<Vec<u64>> {
        let mut ids = self.remote_ids(RETIRED_DIR)?;
        ids.extend(self.local.retired()?);
        Ok(ids.into_iter().collect())
    }

    /// Claims the location's next generation (see `fence.rs`), then settles the checkpoint the
    /// previous owner was completing: an abort marker goes into its manifest's slot unless its
    /// manifest is there, so it is either complete now or never.
    /// Lists `shared/` and deletes what no manifest (complete, savepoint, retired) names.
    fn sweep_orphans(&self) -> Result<usize> {
        let stored = self.location.list(SHARED_PREFIX)?;
        let (manifests, undecodable) = self.other_manifests(None)?;
        let orphans = decide_orphaned_shared_objects(&stored, &manifests, undecodable);
        for object in &orphans {
            self.location.remove(object)?;
        }
        Ok(orphans.len())
    }

    fn job_id(&self) -> Result<String> {
        let fresh = new_job_id(self.location.url()).into_bytes();
        let stored = self.location.get_or_create(crate::JOB_ID_FILE, fresh)?;
        parse_job_id(&stored).ok_or_else(|| StateError::BadHead {
            location: self.location.url_of(crate::JOB_ID_FILE),
            reason: "the job id object is empty".into(),
        })
    }

    fn claim(&self) -> Result<()> {
        let Some(claimed) = self.fence.claim()? else { return Ok(()) };
        if let Some(id) = claimed.previous_checkpoint {
            self.location.put_if_absent(&Self::manifest_rel(id), aborted_manifest(claimed.generation))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn store(memory: &Arc<InMemory>, dir: &std::path::Path) -> RemoteCheckpointStore {
        let location = Arc::new(RemoteLocation::from_store("memory://bucket", memory.clone(), "job").unwrap());
        RemoteCheckpointStore::new(FsCheckpointStore::new(dir).unwrap(), location)
    }

    #[test]
    fn a_manifest_in_flight_when_a_newer_run_claims_never_lands_and_its_checkpoint_stays_incomplete() {
        let (memory, dirs) = (Arc::new(InMemory::new()), [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()]);
        let (old, new) = (store(&memory, dirs[0].path()), store(&memory, dirs[1].path()));
        old.claim().unwrap();
        old.fence.advance(4).unwrap();
        new.claim().unwrap();
        let err = old.put_manifest(4, b"manifest").unwrap_err();
        assert!(matches!(err, StateError::Fenced { generation: 1, newer: Some(2), .. }), "{err}");
        assert_eq!(new.read_manifest(4).unwrap(), None, "the abort marker is no manifest");
    }

    #[test]
    fn a_manifest_that_landed_before_a_newer_run_claimed_stays_complete() {
        let (memory, dirs) = (Arc::new(InMemory::new()), [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()]);
        let (old, new) = (store(&memory, dirs[0].path()), store(&memory, dirs[1].path()));
        old.claim().unwrap();
        old.write_manifest(4, b"manifest").unwrap();
        new.claim().unwrap();
        assert_eq!(new.read_manifest(4).unwrap().as_deref(), Some(&b"manifest"[..]));
        assert!(matches!(old.claim().unwrap_err(), StateError::Fenced { .. }), "the older run is fenced");
    }
}
