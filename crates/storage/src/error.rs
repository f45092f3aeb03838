//! The storage crate's error type.

use std::path::PathBuf;

/// What can go wrong with an object-store location.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An object-store request failed (after the store's own retries).
    #[error("object store {op} of {location} failed: {source}")]
    ObjectStore {
        /// What was being done (put, get, list, delete, copy, upload).
        op: &'static str,
        /// The object or prefix, as a URL.
        location: String,
        /// The object store's error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// A local file operation of a download or upload failed.
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
    /// A location (URL) that cannot be used.
    #[error("location '{url}': {reason}")]
    Location {
        /// The location as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }

    /// A request `op` on `location` failed with the store's error `source`.
    pub fn object_store(op: &'static str, location: impl Into<String>, source: object_store::Error) -> Self {
        StorageError::ObjectStore { op, location: location.into(), source: Box::new(source) }
    }

    /// An object-store operation that failed on rill's side (no runtime, a panicked task).
    pub fn object_store_failure(op: &'static str, location: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let source = object_store::Error::Generic { store: "rill", source: reason.to_string().into() };
        Self::object_store(op, location, source)
    }
}
