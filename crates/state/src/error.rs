//! The state crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in keyed state, operator state or checkpoint storage.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB refused an operation.
    #[error("rocksdb {op} failed at {path}: {source}")]
    RocksDb {
        /// What was being done (open, write batch, checkpoint, ...).
        op: &'static str,
        /// The database directory.
        path: PathBuf,
        /// RocksDB's own error.
        #[source]
        source: rocksdb::Error,
    },
    /// A background snapshot did not finish.
    #[error("snapshot of {path} failed: {reason}")]
    Snapshot {
        /// The database directory.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state value could not be encoded or decoded.
    #[error("state {what} could not be (de)serialized: {source}")]
    Codec {
        /// Which value (state name, key, ...).
        what: String,
        /// The codec error.
        #[source]
        source: bincode::Error,
    },
    /// A checkpoint manifest is unreadable, torn or does not match the files it references.
    #[error("checkpoint {checkpoint} is corrupt: {reason}")]
    CorruptCheckpoint {
        /// The checkpoint id.
        checkpoint: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// No complete checkpoint could be restored although some exist.
    #[error("no usable checkpoint in {dir}: {details}")]
    NoUsableCheckpoint {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Why each candidate was rejected.
        details: String,
    },
    /// A state was registered twice with different types, or accessed with the wrong type.
    #[error("state '{name}' is used with a different type than it was registered with")]
    TypeMismatch {
        /// The state name.
        name: String,
    },
    /// The job's shape is incompatible with the checkpoint being restored.
    #[error("checkpoint {checkpoint} cannot be restored: {reason}")]
    Incompatible {
        /// The checkpoint id.
        checkpoint: u64,
        /// What does not match.
        reason: String,
    },
    /// The manifest of a checkpoint was already written, by another process.
    #[error("checkpoint {checkpoint} already has a manifest at {location}: another process completed it (two jobs share one checkpoint location)")]
    ManifestExists {
        /// The checkpoint id.
        checkpoint: u64,
        /// Where the manifest is.
        location: String,
    },
    /// A newer run claimed the checkpoint location: this one must commit nothing more.
    #[error("fenced: a newer run claimed the checkpoint location {location} ({}); this run (generation {generation}) commits nothing more and stops", match newer { Some(n) => format!("generation {n}"), None => "its head is gone".to_string() })]
    Fenced {
        /// The checkpoint location.
        location: String,
        /// This run's generation.
        generation: u64,
        /// The generation that owns the location now, if its head could be read.
        newer: Option<u64>,
    },
    /// An object that governs a checkpoint location (the head that fences it, the job id)
    /// cannot be used.
    #[error("checkpoint location object {location} cannot be used: {reason}")]
    BadHead {
        /// The object, as a URL.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store holding checkpoints failed (see [`rill_storage::StorageError`]).
    #[error(transparent)]
    Storage(#[from] rill_storage::StorageError),
}

/// Result alias for this crate.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

impl StateError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StateError::Io { op, path, source }
    }

    pub(crate) fn rocks(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(rocksdb::Error) -> Self {
        let path = path.into();
        move |source| StateError::RocksDb { op, path, source }
    }

    /// [`StateError::codec`] for `"{part} of '{name}'"`, formatted only if the error happens (it is
    /// on the path of every state access).
    pub(crate) fn codec_of<'a>(part: &'static str, name: &'a str) -> impl FnOnce(bincode::Error) -> Self + 'a {
        move |source| StateError::Codec { what: format!("{part} of '{name}'"), source }
    }

    pub(crate) fn codec(what: impl Into<String>) -> impl FnOnce(bincode::Error) -> Self {
        let what = what.into();
        move |source| StateError::Codec { what, source }
    }
}
