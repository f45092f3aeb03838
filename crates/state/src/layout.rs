//! Where a subtask's part of a checkpoint lives: `chk-N/<vertex>-<subtask>/operator.bin` for its
//! operator state and `chk-N/<vertex>-<subtask>/keyed/` for its RocksDB checkpoint, and the
//! [`SubtaskSnapshot`] that names them (with size and checksum) in the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::store::write_atomically;
use crate::{FileDigest, KeyGroupRange, OperatorStateSnapshot, Result, StateError, SubtaskSnapshot};

/// One subtask's directory inside a checkpoint, and the snapshot it is filling.
#[derive(Debug)]
pub struct SubtaskSnapshotWriter {
    /// `<vertex>-<subtask>`, relative to the checkpoint directory.
    rel: String,
    dir: PathBuf,
    snapshot: SubtaskSnapshot,
}

impl SubtaskSnapshotWriter {
    /// Creates `checkpoint_dir/rel` for subtask `subtask` owning `key_groups`.
    pub fn create(checkpoint_dir: &Path, rel: String, subtask: usize, key_groups: KeyGroupRange) -> Result<Self> {
        let dir = checkpoint_dir.join(&rel);
        std::fs::create_dir_all(&dir).map_err(StateError::io("create", &dir))?;
        let snapshot = SubtaskSnapshot {
            subtask,
            key_groups,
            keyed_state_dir: None,
            operator_state_file: None,
            files: Vec::new(),
            keyed_states: Default::default(),
        };
        Ok(SubtaskSnapshotWriter { rel, dir, snapshot })
    }

    /// Writes the operator state durably (if there is any) and names it in the snapshot.
    pub fn write_operator_state(&mut self, state: &OperatorStateSnapshot) -> Result<()> {
        if state.entries.is_empty() {
            return Ok(());
        }
        let bytes = state.encode()?;
        write_atomically(&self.dir.join("operator.bin"), &bytes)?;
        let path = format!("{}/operator.bin", self.rel);
        self.snapshot.files.push(FileDigest {
            path: path.clone(),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
            object: None,
        });
        self.snapshot.operator_state_file = Some(path);
        Ok(())
    }

    /// Where the keyed state's RocksDB checkpoint goes.
    pub fn keyed_state_dir(&self) -> PathBuf {
        self.dir.join("keyed")
    }

    /// The snapshot so far, without keyed state.
    pub fn finish(self) -> SubtaskSnapshot {
        self.snapshot
    }

    /// The snapshot with the keyed state's files (`files`, relative to [`Self::keyed_state_dir`])
    /// and its states with their owners (see [`crate::KeyedBackend::state_owners`]).
    pub fn finish_with_keyed_state(self, files: Vec<FileDigest>, states: BTreeMap<String, String>) -> SubtaskSnapshot {
        let keyed_rel = format!("{}/keyed", self.rel);
        let mut snapshot = self.snapshot;
        snapshot.keyed_states = states;
        snapshot.files.extend(files.into_iter().map(|f| FileDigest { path: format!("{keyed_rel}/{}", f.path), ..f }));
        snapshot.keyed_state_dir = Some(keyed_rel);
        snapshot
    }
}
