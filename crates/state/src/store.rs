//! Checkpoint storage: the small I/O trait behind every checkpoint decision, with a file-system
//! implementation (where RocksDB snapshots live) and an in-memory one for tests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::job_id::{new_job_id, parse_job_id};
use crate::{Result, StateError};

/// File name of a checkpoint's manifest inside its directory.
pub const MANIFEST_FILE: &str = "_manifest";

/// The I/O a checkpoint coordinator needs. No decision is made here: see [`crate::decisions`].
pub trait CheckpointStore: Send + Sync {
    /// Ids of all checkpoints with anything stored, complete or not, in no particular order.
    fn list(&self) -> Result<Vec<u64>>;
    /// The manifest's bytes, or `None` if the checkpoint has none (it never completed).
    fn read_manifest(&self, id: u64) -> Result<Option<Vec<u8>>>;
    /// Makes directory `rel` of checkpoint `id` durable (fsync). `""` is the checkpoint's own
    /// directory; syncing it also syncs the root that holds it.
    fn sync_dir(&self, id: u64, rel: &str) -> Result<()>;
    /// Writes a manifest durably and atomically: after a crash it is either whole or absent.
    /// Call it only once every directory on the path of every file it names is durable.
    fn write_manifest(&self, id: u64, bytes: &[u8]) -> Result<()>;
    /// Size and CRC-32 of one file of a checkpoint, or `None` if it is missing.
    fn digest(&self, id: u64, path: &str) -> Result<Option<(u64, u32)>>;
    /// Deletes a checkpoint and all its files.
    fn delete(&self, id: u64) -> Result<()>;
    /// Moves a checkpoint aside durably, never deleting it: it is no longer listed nor restorable,
    /// and its id is never used again (see [`CheckpointStore::retired`]).
    fn retire(&self, id: u64) -> Result<()>;
    /// Ids of the retired checkpoints.
    fn retired(&self) -> Result<Vec<u64>>;
    /// On the first call, makes this run the owner of the checkpoint location, fencing out every
    /// older run; on later calls, checks that it still is. Fails with [`StateError::Fenced`] once
    /// a newer run claimed the location. Call it before retiring or deleting anything and after
    /// writing a manifest, before sinks commit. A store that only one process can use at a time
    /// (a locked local directory) needs nothing: the default.
    fn claim(&self) -> Result<()> {
        Ok(())
    }
    /// The id of the job this location checkpoints (see [`JOB_ID_FILE`](crate::JOB_ID_FILE)):
    /// created by the first run, the same for every later run and process on this location.
    fn job_id(&self) -> Result<String>;
    /// Deletes stored objects shared between checkpoints that no manifest names (uploads of an
    /// attempt or a process that died before a checkpoint named them), returning how many. Call
    /// it only while no upload of this job is in flight. Stores without shared objects have none
    /// (the default).
    fn sweep_orphans(&self) -> Result<usize> {
        Ok(0)
    }
}

/// Where retired checkpoints go, under the checkpoint root.
pub const RETIRED_DIR: &str = "retired";

/// The checkpoint ids among the entries of `dir` (directories `chk-<id>`).
fn checkpoint_ids(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(StateError::Io { op: "list", path: dir.to_path_buf(), source: e }),
    };
    for entry in entries {
        let entry = entry.map_err(StateError::io("list", dir))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(|n| n.strip_prefix("chk-")).and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Checkpoints as directories `chk-<id>` under one root directory.
#[derive(Debug, Clone)]
pub struct FsCheckpointStore {
    root: PathBuf,
}

impl FsCheckpointStore {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(StateError::io("create checkpoint dir", &root))?;
        Ok(FsCheckpointStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("chk-{id:010}"))
    }

    /// File `rel` of checkpoint `id`, refusing a path through a symbolic link (the checkpoint's
    /// own directory included): rill never writes links, and one could lead a restore to read, or
    /// a download to write, outside the checkpoint. Such a checkpoint is corrupt.
    pub fn file_without_links(&self, id: u64, rel: &str) -> Result<PathBuf> {
        let mut path = self.checkpoint_dir(id);
        let mut components = std::iter::once(None).chain(Path::new(rel).components().map(Some));
        while let Some(component) = components.next() {
            if let Some(component) = component {
                path.push(component);
            }
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(StateError::CorruptCheckpoint {
                        checkpoint: id,
                        reason: format!("file {rel} is reached through a symbolic link ({})", path.display()),
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    path.extend(components.flatten());
                    break;
                }
                Err(e) => return Err(StateError::Io { op: "inspect", path, source: e }),
            }
        }
        Ok(path)
    }
}

impl CheckpointStore for FsCheckpointStore {
    fn job_id(&self) -> Result<String> {
        let path = self.root.join(crate::JOB_ID_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                return parse_job_id(&bytes).ok_or_else(|| {
                    let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "empty job id");
                    StateError::Io { op: "read job id", path, source }
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::Io { op: "read job id", path, source: e }),
        }
        let root = fs::canonicalize(&self.root).map_err(StateError::io("resolve", &self.root))?;
        let id = new_job_id(&root.display().to_string());
        write_atomically(&path, id.as_bytes())?;
        Ok(id)
    }

    fn list(&self) -> Result<Vec<u64>> {
        checkpoint_ids(&self.root)
    }

    fn read_manifest(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let path = self.checkpoint_dir(id).join(MANIFEST_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io { op: "read manifest", path, source: e }),
        }
    }

    fn sync_dir(&self, id: u64, rel: &str) -> Result<()> {
        let dir = self.checkpoint_dir(id);
        if rel.is_empty() {
            sync_dir(&dir)?;
            return sync_dir(&self.root);
        }
        sync_dir(&dir.join(rel))
    }

    fn write_manifest(&self, id: u64, bytes: &[u8]) -> Result<()> {
        let dir = self.checkpoint_dir(id);
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(StateError::io("create", &dir))?;
            sync_dir(&self.root)?;
        }
        write_atomically(&dir.join(MANIFEST_FILE), bytes)
    }

    fn digest(&self, id: u64, path: &str) -> Result<Option<(u64, u32)>> {
        digest_if_present(&self.file_without_links(id, path)?)
    }

    fn delete(&self, id: u64) -> Result<()> {
        let dir = self.checkpoint_dir(id);
        // The manifest goes first: a deletion cut short by a crash leaves an incomplete
        // checkpoint (ignored), never a complete-looking one with files missing.
        let manifest = dir.join(MANIFEST_FILE);
        match fs::remove_file(&manifest) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::Io { op: "delete manifest", path: manifest, source: e }),
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io { op: "delete checkpoint", path: dir, source: e }),
        }
    }

    fn retire(&self, id: u64) -> Result<()> {
        let retired = self.root.join(RETIRED_DIR);
        fs::create_dir_all(&retired).map_err(StateError::io("create", &retired))?;
        sync_dir(&self.root)?;
        let (from, to) = (self.checkpoint_dir(id), retired.join(format!("chk-{id:010}")));
        fs::rename(&from, &to).map_err(StateError::io("retire", &from))?;
        // Both directories durable: after a power cut the checkpoint is in one place or the other.
        sync_dir(&retired)?;
        sync_dir(&self.root)
    }

    fn retired(&self) -> Result<Vec<u64>> {
        checkpoint_ids(&self.root.join(RETIRED_DIR))
    }
}

/// Size and CRC-32 of a file on disk.
pub fn digest_file(path: &Path) -> Result<(u64, u32)> {
    let file = fs::File::open(path).map_err(StateError::io("open", path))?;
    digest_reader(file, path)
}

/// Size and CRC-32 of a file on disk, or `None` if there is no such file.
pub(crate) fn digest_if_present(path: &Path) -> Result<Option<(u64, u32)>> {
    match fs::File::open(path) {
        Ok(file) => digest_reader(file, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::Io { op: "open", path: path.to_path_buf(), source: e }),
    }
}

fn digest_reader(mut reader: impl Read, path: &Path) -> Result<(u64, u32)> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(StateError::io("read", path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize()))
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, then fsyncs the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&tmp).map_err(StateError::io("create", &tmp))?;
        file.write_all(bytes).map_err(StateError::io("write", &tmp))?;
        file.sync_all().map_err(StateError::io("fsync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(StateError::io("rename", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory so that renames and new entries in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = fs::File::open(dir).map_err(StateError::io("open dir", dir))?;
    handle.sync_all().map_err(StateError::io("fsync dir", dir))
}

/// Checkpoints held in memory, for testing checkpoint decisions without a disk.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    checkpoints: Mutex<BTreeMap<u64, BTreeMap<String, Vec<u8>>>>,
    retired: Mutex<BTreeMap<u64, BTreeMap<String, Vec<u8>>>>,
    unreadable: Mutex<std::collections::BTreeSet<u64>>,
    job_id: std::sync::OnceLock<String>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores one file of a checkpoint (as a subtask snapshot would).
    pub fn put_file(&self, id: u64, path: &str, bytes: &[u8]) {
        self.lock().entry(id).or_default().insert(path.to_string(), bytes.to_vec());
    }

    /// Overwrites one byte of a stored file (or the manifest), to simulate corruption.
    pub fn flip_byte(&self, id: u64, path: &str, offset: usize) {
        if let Some(bytes) = self.lock().get_mut(&id).and_then(|c| c.get_mut(path)) {
            if let Some(b) = bytes.get_mut(offset) {
                *b ^= 0xff;
            }
        }
    }

    /// Makes reading checkpoint `id`'s manifest fail with an I/O error (a failing disk).
    pub fn fail_manifest_reads(&self, id: u64) {
        self.unreadable.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, BTreeMap<String, Vec<u8>>>> {
        // A poisoned lock only means another test thread panicked; the map itself is intact.
        self.checkpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn job_id(&self) -> Result<String> {
        Ok(self.job_id.get_or_init(|| new_job_id("memory")).clone())
    }

    fn list(&self) -> Result<Vec<u64>> {
        Ok(self.lock().keys().copied().collect())
    }

    fn read_manifest(&self, id: u64) -> Result<Option<Vec<u8>>> {
        if self.unreadable.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
            let source = std::io::Error::other("injected read failure");
            return Err(StateError::Io { op: "read manifest", path: format!("memory/chk-{id}").into(), source });
        }
        Ok(self.lock().get(&id).and_then(|c| c.get(MANIFEST_FILE)).cloned())
    }

    fn sync_dir(&self, _id: u64, _rel: &str) -> Result<()> {
        Ok(())
    }

    fn write_manifest(&self, id: u64, bytes: &[u8]) -> Result<()> {
        self.put_file(id, MANIFEST_FILE, bytes);
        Ok(())
    }

    fn digest(&self, id: u64, path: &str) -> Result<Option<(u64, u32)>> {
        Ok(self.lock().get(&id).and_then(|c| c.get(path)).map(|b| (b.len() as u64, crc32fast::hash(b))))
    }

    fn delete(&self, id: u64) -> Result<()> {
        self.lock().remove(&id);
        Ok(())
    }

    fn retire(&self, id: u64) -> Result<()> {
        if let Some(files) = self.lock().remove(&id) {
            self.retired.lock().unwrap_or_else(|p| p.into_inner()).insert(id, files);
        }
        Ok(())
    }

    fn retired(&self) -> Result<Vec<u64>> {
        Ok(self.retired.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect())
    }
}
