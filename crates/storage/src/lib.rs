//! Object-store locations for rill: where checkpoints and sink output go beyond the local disk.
//!
//! - [`RemoteLocation`]: an object store (`s3://bucket/prefix`, or any `object_store`
//!   implementation, an in-memory one in tests) under a prefix, with the small tokio runtime its
//!   client runs on, so that rill's synchronous tasks call it as blocking requests from any
//!   thread: put (also only-if-absent or only-if-unchanged), get, download, list, copy, delete, and streamed file
//!   uploads bounded per process.
//! - Multipart uploads under explicit ids, for sinks whose uploads outlive a process (started
//!   and filled while data arrives, completed when a checkpoint completes).
//! - [`Location`]: a local directory or an object store, parsed from one string, for every
//!   "directory or `s3://`" option.
//!
//! Below `rill-state` (checkpoints in object storage) and `rill-operators` (the object-store
//! sink). Depends on `object_store`, `tokio`, `futures`, `bytes` and `thiserror`; nothing else in
//! rill.

mod error;
mod location;
mod multipart;
mod requests;

pub use error::{Result, StorageError};
pub use location::{is_object_store_url, Location, RemoteLocation};
pub use multipart::UploadCompletion;
pub use requests::{ObjectVersion, PutOutcome, UpdateOutcome};
