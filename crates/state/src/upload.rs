//! Incremental upload of one subtask's snapshots to object storage: an SST file never changes
//! once RocksDB wrote it, so it is uploaded once, under `shared/<backend instance>/<file>`, and
//! every later checkpoint that still holds it only names it; everything else (RocksDB's
//! `MANIFEST`, `CURRENT`, `OPTIONS`, operator state) goes under `chk-<id>/<backend instance>/`,
//! so two runs that happen to take the same checkpoint id (an old one not yet fenced off, see
//! `fence.rs`) never overwrite each other's objects.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rill_storage::{RemoteLocation, StorageError};

use crate::decisions::SHARED_PREFIX;
use crate::{FileDigest, Result, SubtaskSnapshot};

/// Called once an upload has finished: the snapshot naming its objects and what moved, or why
/// it failed.
pub type UploadDone = Box<dyn FnOnce(Result<(SubtaskSnapshot, UploadStats)>) + Send>;

/// What one upload moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Files uploaded now.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files already in the store from an earlier checkpoint, named again.
    pub reused: usize,
}

/// The uploads of one subtask's keyed-state backend instance (a working database opened once
/// per attempt: its SST file names are unique within it).
#[derive(Debug, Clone)]
pub struct SnapshotUploader {
    location: Arc<RemoteLocation>,
    instance: String,
    /// Shared objects this instance has uploaded and the last snapshot still named.
    uploaded: Arc<Mutex<HashSet<String>>>,
    /// The SST files of the restored snapshot this working database started from, by file name:
    /// size, CRC-32 and object. A file still there unchanged is named again, not uploaded.
    restored: Arc<HashMap<String, (u64, u32, String)>>,
    /// Uploads in flight, to cancel when the attempt ends.
    in_flight: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

/// The checkpoint's own directory in the store.
pub(crate) fn checkpoint_rel(id: u64) -> String {
    format!("chk-{id:010}")
}

fn is_immutable(path: &str) -> bool {
    path.ends_with(".sst") || path.ends_with(".blob")
}

impl SnapshotUploader {
    /// An uploader for a backend instance named `instance` (unique per working database).
    pub fn new(location: Arc<RemoteLocation>, instance: impl Into<String>) -> Self {
        SnapshotUploader {
            location,
            instance: instance.into(),
            uploaded: Arc::default(),
            restored: Arc::default(),
            in_flight: Arc::default(),
        }
    }

    /// An uploader for a working database that starts as a copy of a restored snapshot whose
    /// files are `restored` (from its manifest): the SST files it still holds unchanged keep their
    /// objects, so the first checkpoint after a restart uploads only what changed.
    pub fn reusing(mut self, restored: &[FileDigest]) -> Self {
        let mut reusable = HashMap::new();
        for file in restored {
            let Some(object) = file.object.as_deref().filter(|o| o.starts_with(SHARED_PREFIX)) else { continue };
            let name = file.path.rsplit('/').next().unwrap_or(&file.path);
            reusable.insert(name.to_string(), (file.size, file.crc32, object.to_string()));
        }
        self.uploaded = Arc::new(Mutex::new(reusable.values().map(|(_, _, o)| o.clone()).collect()));
        self.restored = Arc::new(reusable);
        self
    }

    /// Cancels every upload still in flight (an attempt ended; its checkpoints never complete).
    pub fn cancel(&self) {
        for upload in self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            upload.abort();
        }
    }

    /// Where `file` of checkpoint `id` is stored: an SST file of the keyed state under `shared/`
    /// (the restored snapshot's object when the file is that one, unchanged), anything else under
    /// the checkpoint's own directory.
    fn object_of(&self, id: u64, snapshot: &SubtaskSnapshot, file: &FileDigest) -> String {
        let keyed = snapshot.keyed_state_dir.as_deref().is_some_and(|dir| file.path.starts_with(dir));
        match file.path.rsplit_once('/') {
            Some((_, name)) if keyed && is_immutable(name) => match self.restored.get(name) {
                Some((size, crc32, object)) if (*size, *crc32) == (file.size, file.crc32) => object.clone(),
                _ => format!("{SHARED_PREFIX}{}/{name}", self.instance),
            },
            _ => format!("{}/{}/{}", checkpoint_rel(id), self.instance, file.path),
        }
    }

    /// Uploads, in the background, the files of `snapshot` (written under the local
    /// `checkpoint_dir` of checkpoint `id`) that the store does not have yet, then calls `done`
    /// with the snapshot naming every file's object (and what moved).
    pub fn upload_async(&self, id: u64, checkpoint_dir: PathBuf, mut snapshot: SubtaskSnapshot, done: UploadDone) {
        let this = self.clone();
        let Some(handle) = self.location.runtime_handle().cloned() else {
            done(Err(StorageError::object_store_failure("upload", self.location.url(), "runtime is shut down").into()));
            return;
        };
        let url = self.location.url().to_string();
        let upload = handle.spawn(async move {
            let stats = this.upload(id, &checkpoint_dir, &mut snapshot).await?;
            Ok((snapshot, stats))
        });
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.retain(|u| !u.is_finished());
            in_flight.push(upload.abort_handle());
        }
        handle.spawn(async move {
            // A panicking (or cancelled) upload still answers: the checkpoint fails instead of waiting.
            done(upload.await.unwrap_or_else(|e| Err(StorageError::object_store_failure("upload", url, e).into())));
        });
    }

    async fn upload(
        &self,
        id: u64,
        checkpoint_dir: &std::path::Path,
        snapshot: &mut SubtaskSnapshot,
    ) -> Result<UploadStats> {
        let objects: Vec<String> = snapshot.files.iter().map(|f| self.object_of(id, snapshot, f)).collect();
        let known = self.uploaded.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut stats = UploadStats::default();
        let mut todo = Vec::new();
        for (file, object) in snapshot.files.iter().zip(&objects) {
            if object.starts_with(SHARED_PREFIX) && known.contains(object) {
                stats.reused += 1;
            } else {
                stats.files += 1;
                stats.bytes += file.size;
                todo.push((checkpoint_dir.join(&file.path), object.clone()));
            }
        }
        self.location.upload_files(todo).await?;
        let shared: HashSet<String> = objects.iter().filter(|o| o.starts_with(SHARED_PREFIX)).cloned().collect();
        *self.uploaded.lock().unwrap_or_else(|p| p.into_inner()) = shared;
        for (file, object) in snapshot.files.iter_mut().zip(objects) {
            file.object = Some(object);
        }
        Ok(stats)
    }
}
