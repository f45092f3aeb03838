//! The keyed state backend of one subtask: a RocksDB working database plus the typed caches.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rocksdb::{checkpoint::Checkpoint, DB};

use crate::db::{open_db, ChunkedBatch, Db};
use crate::key_group::KeyGroupsOf;
use crate::memory::{StateMemory, StateMemoryUsage};
use crate::state_types::StateKey;
use crate::store::digest_file;
use crate::tables::{StateTable, PREFIX_LEN};
use crate::ttl::ExpiringStates;
use crate::{stable_hash, FileDigest, KeyGroupRange, Result, StateError};

/// Tuning of keyed state. Every in-memory buffer is bounded by these numbers; see
/// [`StateMemory`] for how a byte budget is split.
#[derive(Debug, Clone)]
pub struct KeyedStateConfig {
    /// Entries each state's write-back cache may hold before it evicts to RocksDB.
    pub cache_entries_per_state: usize,
    /// RocksDB memtable of a subtask in bytes, without a byte budget (a budget sizes them).
    pub write_buffer_bytes: usize,
    /// RocksDB block cache per subtask in bytes, without a byte budget (one cache for the process).
    pub block_cache_bytes: usize,
    /// Memory for all keyed state of the process, in bytes: RocksDB's block cache and memtables
    /// get a quarter, the state caches of the subtasks the rest (caches then hold as many
    /// entries as fit, up to `cache_entries_per_state`). `None`: bounded by the sizes above.
    pub memory_budget_bytes: Option<usize>,
    /// Whether RocksDB overwrites a row in its memtable in place when the memtable holds the
    /// row and its new value is no larger (RocksDB's `inplace_update_support`). A row written
    /// again and again between checkpoints then takes one memtable entry instead of one per
    /// write. Off by default: the row buffer in front of RocksDB already takes those rewrites
    /// (a row reaches RocksDB about once per checkpoint), and a write of a row the memtable does
    /// not hold costs one more memtable search. Measured in BENCHMARKS.md: with the row buffer,
    /// no gain spilling 100 k keys with a tenth cached (wall ratio 1.00), and 18 % slower at 10 M
    /// uniform keys with a 1 GiB budget. It may pay for a job whose working set is larger than
    /// the row buffer but fits in the memtables.
    pub in_place_updates: bool,
}

impl Default for KeyedStateConfig {
    fn default() -> Self {
        KeyedStateConfig {
            cache_entries_per_state: 500_000,
            write_buffer_bytes: 4 << 20,
            block_cache_bytes: 8 << 20,
            memory_budget_bytes: None,
            in_place_updates: false,
        }
    }
}

/// A snapshot of some key groups to restore from: a RocksDB checkpoint directory and its range.
#[derive(Debug, Clone)]
pub struct KeyedRestoreSource {
    /// The RocksDB checkpoint directory.
    pub dir: PathBuf,
    /// Key groups that snapshot holds.
    pub key_groups: KeyGroupRange,
    /// The states taken from it, each with the uid of the operator owning it (see
    /// [`KeyedBackend::set_owner`]); empty when the snapshot's manifest recorded none.
    pub states: BTreeMap<String, String>,
    /// Whether only `states` are taken (the snapshot's other states go to other operator
    /// chains); otherwise all of it.
    pub partial: bool,
}

impl KeyedRestoreSource {
    /// All of the snapshot in `dir`, holding `key_groups`.
    pub fn new(dir: impl Into<PathBuf>, key_groups: KeyGroupRange) -> Self {
        KeyedRestoreSource { dir: dir.into(), key_groups, states: BTreeMap::new(), partial: false }
    }
}

/// The id of state `name` in the database's keys.
fn state_id(name: &str) -> u32 {
    stable_hash(name) as u32
}

/// Keyed state of one subtask.
pub struct KeyedBackend {
    db: Db,
    path: PathBuf,
    key_groups: KeyGroupRange,
    config: KeyedStateConfig,
    memory: StateMemory,
    tables: Vec<Box<dyn StateTable>>,
    names: HashMap<String, usize>,
    /// Every state this database holds (registered now or restored), with its owner's uid.
    owners: BTreeMap<String, String>,
    /// The operator registering states now (see [`KeyedBackend::set_owner`]).
    owner: String,
    digests: Arc<Mutex<HashMap<(String, u64), u32>>>,
    /// The states whose rows expire (a time to live), shared with the compaction filter.
    expiring: ExpiringStates,
}

/// Called once a background snapshot is written: the snapshot's files, or why it failed.
pub type SnapshotDone = Box<dyn FnOnce(Result<Vec<FileDigest>>) + Send>;

impl std::fmt::Debug for KeyedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedBackend")
            .field("path", &self.path)
            .field("key_groups", &self.key_groups)
            .field("states", &self.names.len())
            .finish()
    }
}

impl KeyedBackend {
    /// Opens a fresh working database at `path` (deleting what was there) holding `key_groups`,
    /// filled from `restore` (the snapshots overlapping those key groups; empty for a fresh start).
    pub fn open(
        path: impl Into<PathBuf>,
        key_groups: KeyGroupRange,
        config: KeyedStateConfig,
        restore: &[KeyedRestoreSource],
    ) -> Result<Self> {
        let memory = StateMemory::new(&config, 1);
        Self::open_shared(path, key_groups, config, &memory, restore)
    }

    /// [`KeyedBackend::open`] with RocksDB memory and a byte budget shared with the other
    /// subtasks of the process (`memory`, made once for all of them).
    pub fn open_shared(
        path: impl Into<PathBuf>,
        key_groups: KeyGroupRange,
        config: KeyedStateConfig,
        memory: &StateMemory,
        restore: &[KeyedRestoreSource],
    ) -> Result<Self> {
        let path = path.into();
        remove_dir_if_exists(&path)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(StateError::io("create", parent))?;
        }
        let relevant: Vec<&KeyedRestoreSource> =
            restore.iter().filter(|s| s.key_groups.overlaps(&key_groups)).collect();
        let same_shape = relevant.len() == 1 && relevant[0].key_groups == key_groups && !relevant[0].partial;
        if same_shape {
            link_copy_dir(&relevant[0].dir, &path)?;
        }
        let expiring = ExpiringStates::default();
        let mut opts = memory.db_options();
        expiring.filter_compactions(&mut opts);
        let db = open_db(&opts, &path)?;
        let mut backend = KeyedBackend {
            db: Db::new(db, memory.row_buffer_bytes(), memory.write_buffer_bytes() / 2),
            path: path.clone(),
            key_groups,
            config,
            memory: memory.clone(),
            tables: Vec::new(),
            names: HashMap::new(),
            owners: relevant.iter().flat_map(|s| s.states.clone()).collect(),
            owner: String::new(),
            digests: Arc::default(),
            expiring,
        };
        if !same_shape {
            for source in relevant {
                backend.import_key_groups(source)?;
            }
        }
        Ok(backend)
    }

    /// Copies the rows of our key groups from another subtask's snapshot (restore at another parallelism).
    fn import_key_groups(&mut self, source: &KeyedRestoreSource) -> Result<()> {
        let tmp = self.path.with_extension("import");
        remove_dir_if_exists(&tmp)?;
        link_copy_dir(&source.dir, &tmp)?;
        let result = (|| {
            let src = DB::open(&self.memory.db_options(), &tmp).map_err(StateError::rocks("open snapshot", &tmp))?;
            let start = self.key_groups.start.to_be_bytes();
            let taken: HashSet<u32> = source.states.keys().map(|name| state_id(name)).collect();
            let mut batch = self.db.batch();
            for item in src.iterator(rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward)) {
                let (key, value) = item.map_err(StateError::rocks("scan snapshot", &tmp))?;
                if key.len() < PREFIX_LEN {
                    continue;
                }
                let kg = u16::from_be_bytes([key[0], key[1]]);
                if kg > self.key_groups.end {
                    break;
                }
                if source.partial && !taken.contains(&u32::from_be_bytes([key[2], key[3], key[4], key[5]])) {
                    continue;
                }
                batch.put(&key, &value);
                if batch.len() >= 10_000 {
                    let full = std::mem::replace(&mut batch, self.db.batch());
                    self.db.write(full)?;
                }
            }
            self.db.write(batch)
        })();
        remove_dir_if_exists(&tmp)?;
        result
    }

    /// Names the operator (its uid) that registers states from now on, so each state is
    /// restored with its operator wherever that operator runs later. The runtime calls it
    /// before handing the backend to an operator.
    #[inline]
    pub fn set_owner(&mut self, uid: &str) {
        if self.owner != uid {
            self.owner = uid.to_string();
        }
    }

    /// Every state this database holds, with the uid of the operator owning it (empty for one
    /// registered without an owner, or restored from a manifest that recorded none).
    pub fn state_owners(&self) -> &BTreeMap<String, String> {
        &self.owners
    }

    /// The key groups this backend holds.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.key_groups
    }

    pub(crate) fn register<T: StateTable + 'static>(
        &mut self,
        name: &str,
        make: impl FnOnce(u32) -> T,
    ) -> Result<usize> {
        if let Some(&index) = self.names.get(name) {
            if !(&*self.tables[index] as &dyn Any).is::<T>() {
                return Err(StateError::TypeMismatch { name: name.to_string() });
            }
            return Ok(index);
        }
        self.tables.push(Box::new(make(state_id(name))));
        self.names.insert(name.to_string(), self.tables.len() - 1);
        self.owners.entry(name.to_string()).or_insert_with(|| self.owner.clone());
        self.share_cache_budget();
        Ok(self.tables.len() - 1)
    }

    /// Marks state `name` as holding [`crate::Expiring`] values: compactions drop its expired rows.
    pub(crate) fn mark_expiring(&mut self, name: &str) {
        self.expiring.add(state_id(name));
    }

    /// Splits the subtask's cache budget among its states by use: a cache that did not evict
    /// since the last split keeps what it holds plus a quarter (at least an eighth of an even
    /// share, so an idle state can still take entries), and what is left goes evenly to
    /// the caches that evicted (to all, if none did). At first, and if what the caches hold
    /// exceeds the budget, it is split evenly. The shares never add up to more than the budget.
    fn share_cache_budget(&mut self) {
        let Some(total) = self.memory.cache_bytes_per_backend() else { return };
        let usage: Vec<(usize, bool)> = self.tables.iter_mut().map(|t| t.memory()).collect();
        let first = usage.iter().all(|(bytes, _)| *bytes == 0);
        let floor = total / (8 * usage.len().max(1));
        let keep = |(bytes, evicted): (usize, bool)| match evicted || first {
            true => None,
            false => Some((bytes + bytes / 4).max(floor)),
        };
        let settled: usize = usage.iter().filter_map(|u| keep(*u)).sum();
        let hungry = usage.iter().filter(|u| keep(**u).is_none()).count();
        for (table, use_) in self.tables.iter_mut().zip(usage.iter()) {
            let share = if settled > total {
                total / usage.len()
            } else {
                let left = total - settled;
                match keep(*use_) {
                    Some(kept) if hungry == 0 => kept + left / usage.len(),
                    Some(kept) => kept,
                    // This cache is hungry itself, so `hungry` is at least 1.
                    None => left / hungry.max(1),
                }
            };
            table.set_byte_budget(Some(share));
        }
    }

    /// Loads the state of a record batch's keys into the caches of every value state keyed by `K`,
    /// with one batched RocksDB read per state, so that processing the records finds them cached.
    /// The keys' groups are `key_groups` (one per key, as the exchange routed them) if given;
    /// otherwise only the keys not cached are hashed to their groups (of `max_parallelism`). Only
    /// worth calling for batches; a no-op while caches hit.
    #[allow(clippy::ptr_arg)] // a `Vec`, not a slice: the caches take it as `dyn Any`
    pub fn prefetch<K: StateKey>(
        &mut self,
        keys: &Vec<K>,
        key_groups: Option<&[u16]>,
        max_parallelism: u16,
    ) -> Result<()> {
        let key_groups = match key_groups {
            Some(groups) if groups.len() == keys.len() => KeyGroupsOf::Given(groups),
            _ => KeyGroupsOf::Hashed { max_parallelism },
        };
        for table in &mut self.tables {
            table.prefetch(&mut self.db, keys, key_groups)?;
        }
        Ok(())
    }

    /// Entries this subtask's state caches hold, and their estimated bytes (what a byte budget
    /// bounds).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.tables.iter().map(|t| t.cached()).fold((0, 0), |(e, b), (te, tb)| (e + te, b + tb))
    }

    /// What this subtask's keyed state holds in memory now: caches, evicted rows held in memory,
    /// and RocksDB's memtables and table readers (the block cache is the process's, see
    /// [`StateMemory::block_cache_bytes`]).
    pub fn memory_usage(&self) -> StateMemoryUsage {
        let (cache_entries, cache_bytes) = self.cache_usage();
        StateMemoryUsage {
            cache_entries,
            cache_bytes,
            pending_bytes: self.db.pending_bytes(),
            memtable_bytes: self.db.property("rocksdb.size-all-mem-tables"),
            table_readers_bytes: self.db.property("rocksdb.estimate-table-readers-mem"),
        }
    }

    /// Entries each state's cache holds before it spills.
    pub(crate) fn cache_entries_per_state(&self) -> usize {
        self.config.cache_entries_per_state
    }

    pub(crate) fn table_and_db<T: 'static>(&mut self, index: usize) -> Result<(&mut T, &mut Db)> {
        if let Some(table) = self.tables.get_mut(index).and_then(|t| (&mut **t as &mut dyn Any).downcast_mut::<T>()) {
            return Ok((table, &mut self.db));
        }
        let name = self.names.iter().find(|(_, i)| **i == index).map(|(n, _)| n.clone());
        Err(StateError::TypeMismatch { name: name.unwrap_or_else(|| format!("#{index}")) })
    }

    /// Takes a snapshot into `dir` and returns its files once it is written (see
    /// [`KeyedBackend::snapshot_async`]).
    pub fn snapshot(&mut self, dir: &Path) -> Result<Vec<FileDigest>> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.snapshot_async(
            dir,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        self.db.wait()?;
        rx.recv().map_err(|_| StateError::Snapshot {
            path: dir.to_path_buf(),
            reason: "the snapshot thread ended without a result".into(),
        })?
    }

    /// Snapshots every buffered change: the dirty cache entries go into a batch here (in chunks of half a memtable); on
    /// a background thread the rows the caches evicted since the last snapshot and then the
    /// batch are applied, and the database is checkpointed into `dir`
    /// (hard links to unchanged SST files, so successive snapshots share them), then `done`
    /// receives the files with sizes and checksums, paths relative to `dir`. Processing goes on
    /// meanwhile: writes to the database are held in memory until the snapshot is done (see `db.rs`).
    pub fn snapshot_async(&mut self, dir: &Path, done: SnapshotDone) -> Result<()> {
        // The previous batch must be applied before the caches forget what it removed.
        self.db.wait()?;
        let mut batch = self.db.batch();
        for table in &mut self.tables {
            table.flush_into(&mut batch)?;
        }
        self.share_cache_budget();
        let dir = dir.to_path_buf();
        let digests = self.digests.clone();
        let name =
            format!("snapshot-{}", self.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into()));
        let path = self.path.clone();
        self.db.spawn(name, move |db, earlier| {
            let guard = ReportOnDrop { done: Some(done), path };
            let result = write_snapshot(db, [earlier, batch], &dir, &digests);
            guard.report(result);
        })
    }
}

/// Reports a background snapshot's result exactly once: if the snapshot thread unwinds (a panic)
/// before reporting, the drop reports the failure, so the checkpoint fails instead of waiting for
/// an acknowledgement that never comes.
struct ReportOnDrop {
    done: Option<SnapshotDone>,
    path: PathBuf,
}

impl ReportOnDrop {
    fn report(mut self, result: Result<Vec<FileDigest>>) {
        if let Some(done) = self.done.take() {
            done(result);
        }
    }
}

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let reason = "the snapshot thread panicked before finishing".to_string();
            done(Err(StateError::Snapshot { path: std::mem::take(&mut self.path), reason }));
        }
    }
}

/// Writes `batches` in order (the rows buffered before the barrier, then the barrier's), then
/// checkpoints the database into `dir`.
fn write_snapshot(
    db: &DB,
    batches: [ChunkedBatch; 2],
    dir: &Path,
    digests: &Mutex<HashMap<(String, u64), u32>>,
) -> Result<Vec<FileDigest>> {
    for batch in batches {
        batch.write(db)?;
    }
    remove_dir_if_exists(dir)?;
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(StateError::io("create", parent))?;
    }
    let checkpoint = Checkpoint::new(db).map_err(StateError::rocks("checkpoint", db.path()))?;
    checkpoint.create_checkpoint(dir).map_err(StateError::rocks("create checkpoint", dir))?;
    let mut known = digests.lock().unwrap_or_else(|p| p.into_inner());
    let mut files = Vec::new();
    let mut fresh = HashMap::new();
    for entry in fs::read_dir(dir).map_err(StateError::io("list", dir))? {
        let entry = entry.map_err(StateError::io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = entry.path();
        let size = entry.metadata().map_err(StateError::io("stat", &full))?.len();
        // SST and blob files never change once written: their checksum is computed once.
        let immutable = name.ends_with(".sst") || name.ends_with(".blob");
        let crc = match known.get(&(name.clone(), size)) {
            Some(crc) if immutable => *crc,
            _ => digest_file(&full)?.1,
        };
        if immutable {
            fresh.insert((name.clone(), size), crc);
        }
        files.push(FileDigest { path: name, size, crc32: crc, object: None });
    }
    *known = fresh;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

pub(crate) fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::Io { op: "remove", path: path.to_path_buf(), source: e }),
    }
}

/// Copies a RocksDB directory, hard-linking the immutable SST files and copying the rest.
pub(crate) fn link_copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(StateError::io("create", to))?;
    for entry in fs::read_dir(from).map_err(StateError::io("list", from))? {
        let entry = entry.map_err(StateError::io("list", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let name = entry.file_name().to_string_lossy().into_owned();
        let linked = (name.ends_with(".sst") || name.ends_with(".blob")) && fs::hard_link(&src, &dst).is_ok();
        if !linked {
            fs::copy(&src, &dst).map_err(StateError::io("copy", &src))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of state `name` in the working database (not the caches).
    fn rows_of(backend: &KeyedBackend, name: &str) -> usize {
        let id = state_id(name).to_be_bytes();
        let rows = backend.db.raw().iterator(rocksdb::IteratorMode::Start);
        rows.filter_map(std::result::Result::ok).filter(|(key, _)| key.get(2..6) == Some(&id[..])).count()
    }

    #[test]
    fn a_compaction_drops_the_expired_rows_of_an_expiring_state_and_keeps_every_other_row() {
        let (dir, snapshots) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let all = KeyGroupRange { start: 0, end: 127 };
        let mut backend = KeyedBackend::open(dir.path().join("db"), all, KeyedStateConfig::default(), &[]).unwrap();
        let expiring = backend.expiring_value_state::<u64, String>("ttl").unwrap();
        let plain = backend.value_state::<u64, crate::Expiring<String>>("plain").unwrap();
        for key in 0..5_000u64 {
            let mut scope = crate::KeyedScope::hashing(&mut backend, &key, 128);
            // Half expired long ago, half in a year.
            let expires_at_ms = if key % 2 == 0 { 1 } else { i64::MAX };
            let value = crate::Expiring { expires_at_ms, value: format!("v{key}") };
            expiring.set(&mut scope, value.clone()).unwrap();
            plain.set(&mut scope, value).unwrap();
        }
        backend.snapshot(snapshots.path()).unwrap();
        assert_eq!((rows_of(&backend, "ttl"), rows_of(&backend, "plain")), (5_000, 5_000));
        backend.db.raw().compact_range(None::<&[u8]>, None::<&[u8]>);
        assert_eq!(rows_of(&backend, "ttl"), 2_500, "the expired rows are gone, the live ones stay");
        assert_eq!(rows_of(&backend, "plain"), 5_000, "a state without a time to live keeps every row");
    }

    #[test]
    fn a_panic_in_the_snapshot_thread_is_reported_as_a_failed_snapshot() {
        let (tx, rx) = std::sync::mpsc::channel();
        let done: SnapshotDone = Box::new(move |result| {
            let _ = tx.send(result.map(|_| ()).map_err(|e| e.to_string()));
        });
        let thread = std::thread::spawn(move || {
            let _guard = ReportOnDrop { done: Some(done), path: PathBuf::from("db") };
            panic!("injected: the disk vanished mid-snapshot");
        });
        assert!(thread.join().is_err(), "the thread panicked");
        let reported = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("a report, not silence");
        assert!(reported.unwrap_err().contains("panicked"));
    }

    #[test]
    fn a_finished_snapshot_is_reported_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        let done: SnapshotDone = Box::new(move |result| {
            let _ = tx.send(result.is_ok());
        });
        ReportOnDrop { done: Some(done), path: PathBuf::from("db") }.report(Ok(vec![]));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![true]);
    }
}
