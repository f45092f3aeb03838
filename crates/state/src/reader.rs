//! Reading a checkpoint's keyed state with the job's own types, outside the job (the read side of
//! Flink's State Processor API): for dumps, audits and migrations.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{Options, DB};

use crate::backend::{link_copy_dir, remove_dir_if_exists};
use crate::decisions::{check_checkpoint, find_restore, CheckpointCheck, RestoreDecision};
use crate::tables::scan_rows;
use crate::{stable_hash, FsCheckpointStore, Manifest, Result, StateError, StateKey, StateValue};

/// A complete, verified checkpoint whose keyed state can be read.
///
/// ```no_run
/// # fn main() -> rill_state::Result<()> {
/// // The running counts of `keyed_count`: operator uid `counts`, state `count`.
/// let reader = rill_state::CheckpointReader::open("job/checkpoints", None)?;
/// reader.for_each_value::<u64, u64>("counts/count", |key, count| {
///     println!("{key}\t{count}");
///     Ok(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CheckpointReader {
    dir: PathBuf,
    manifest: Manifest,
}

impl CheckpointReader {
    /// Opens checkpoint `id` under the checkpoint directory `root`, or the latest complete one,
    /// after checking its manifest and every file's size and checksum (as a restore would).
    pub fn open(root: impl AsRef<Path>, id: Option<u64>) -> Result<Self> {
        let store = FsCheckpointStore::new(root.as_ref())?;
        let manifest = match id {
            Some(id) => match check_checkpoint(&store, id)? {
                CheckpointCheck::Complete(m) => *m,
                CheckpointCheck::Incomplete => {
                    return Err(StateError::CorruptCheckpoint {
                        checkpoint: id,
                        reason: "it has no manifest (never completed, or does not exist)".into(),
                    })
                }
                CheckpointCheck::Corrupt(reason) => {
                    return Err(StateError::CorruptCheckpoint { checkpoint: id, reason })
                }
            },
            None => match find_restore(&store)? {
                RestoreDecision::Restore { manifest, .. } => *manifest,
                RestoreDecision::Fresh => {
                    return Err(StateError::NoUsableCheckpoint {
                        dir: store.root().to_path_buf(),
                        details: "no checkpoint ever completed".into(),
                    })
                }
                RestoreDecision::NoneUsable { skipped } => {
                    return Err(StateError::NoUsableCheckpoint {
                        dir: store.root().to_path_buf(),
                        details: skipped
                            .iter()
                            .map(|(id, r)| format!("checkpoint {id}: {r}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    })
                }
            },
        };
        Ok(CheckpointReader { dir: store.checkpoint_dir(manifest.checkpoint), manifest })
    }

    /// The checkpoint's id.
    pub fn checkpoint(&self) -> u64 {
        self.manifest.checkpoint
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Calls `f` with every key and value of the value state registered as `state` (the full
    /// name: `operator-uid/name` for states of a keyed process function), over every subtask, in
    /// key-group order. `K` and `V` must be the types the job used; a mismatch is a codec error
    /// naming the state.
    pub fn for_each_value<K: StateKey, V: StateValue>(
        &self,
        state: &str,
        mut f: impl FnMut(K, V) -> Result<()>,
    ) -> Result<()> {
        let state_id = stable_hash(state) as u32;
        let subtasks = self.manifest.vertices.iter().flat_map(|v| v.subtasks.iter());
        for subtask in subtasks {
            let Some(keyed) = &subtask.keyed_state_dir else { continue };
            let copy = ReadOnlyCopy::open(&self.dir.join(keyed))?;
            scan_rows(&copy.db, subtask.key_groups, state_id, |_, row, value| {
                let codec = |what: &str| StateError::codec(format!("{what} of '{state}'"));
                let key: K = bincode::deserialize(row).map_err(codec("key"))?;
                let value: V = bincode::deserialize(value).map_err(codec("value"))?;
                f(key, value)
            })?;
        }
        Ok(())
    }

    /// Every key and value of the value state `state` (see [`CheckpointReader::for_each_value`]).
    pub fn values<K: StateKey, V: StateValue>(&self, state: &str) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        self.for_each_value(state, |k, v| {
            out.push((k, v));
            Ok(())
        })?;
        Ok(out)
    }
}

/// A read-only RocksDB over a hard-linked copy of a snapshot directory (so nothing is ever
/// written into the checkpoint), removed when dropped.
struct ReadOnlyCopy {
    db: DB,
    path: PathBuf,
}

impl ReadOnlyCopy {
    fn open(snapshot: &Path) -> Result<Self> {
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let name =
            format!("{}.read-{}-{}", snapshot.display(), std::process::id(), COPIES.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name.replace(['/', '\\'], "_"));
        remove_dir_if_exists(&path)?;
        link_copy_dir(snapshot, &path)?;
        match DB::open_for_read_only(&Options::default(), &path, false) {
            Ok(db) => Ok(ReadOnlyCopy { db, path }),
            Err(e) => {
                let _ = remove_dir_if_exists(&path);
                Err(StateError::rocks("open snapshot", &path)(e))
            }
        }
    }
}

impl Drop for ReadOnlyCopy {
    fn drop(&mut self) {
        let _ = remove_dir_if_exists(&self.path);
    }
}
