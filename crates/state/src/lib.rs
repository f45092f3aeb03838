//! State for rill jobs: keyed state in RocksDB, operator state, key groups, and checkpoint storage.
//!
//! - [`KeyedBackend`]: one RocksDB working database per subtask. Keys are prefixed by key group
//!   and state id; writes buffer in bounded in-memory caches and reach RocksDB in one `WriteBatch`
//!   per barrier; snapshots are RocksDB checkpoints (hard links, so unchanged SST files are shared).
//! - [`Expiring`] values: states with a time to live, whose expired rows a compaction filter
//!   drops.
//! - [`KeyGroupRange`] and [`key_group_of`]: Flink-style key groups with a stable hash, so restore
//!   at another parallelism only reassigns ranges.
//! - [`OperatorStateSnapshot`]: non-keyed state with union redistribution (sources' positions).
//! - [`Manifest`], [`CheckpointStore`] and [`decisions`]: what makes a checkpoint complete, and the
//!   pure decisions of what to restore and what to delete, with I/O behind one small trait.
//! - [`CheckpointReader`]: a complete checkpoint's keyed state read with the job's own types,
//!   outside the job.
//! - [`RemoteCheckpointStore`] and [`SnapshotUploader`]: checkpoints in an object store
//!   (`s3://bucket/prefix`, a `rill_storage::RemoteLocation`), SST files uploaded once and shared
//!   between checkpoints, manifests written only if absent, restore by download onto any machine;
//!   the location fenced by generations ([`Head`]), so that only the newest run commits.
//!
//! Depends on `rocksdb`, `bincode`/`serde` for encoding, `crc32fast` for checksums, `fastrand`
//! for job ids, and `rill-storage` for object storage; nothing else in rill.

mod backend;
mod chunked_batch;
mod clock;
mod db;
pub mod decisions;
mod error;
mod fence;
mod handles;
mod job_id;
mod key_group;
mod layout;
mod manifest;
mod memory;
mod operator_state;
mod reader;
mod registration;
mod remote_store;
mod row_buffer;
mod slot;
mod state_types;
mod store;
mod tables;
mod ttl;
mod upload;

pub use backend::{KeyedBackend, KeyedRestoreSource, KeyedStateConfig, SnapshotDone};
pub use error::{Result, StateError};
pub use fence::{Head, HEAD_OBJECT};
pub use handles::{KeyedScope, ListState, MapState, ValueState};
pub use job_id::JOB_ID_FILE;
pub use key_group::{key_group_of, stable_hash, subtask_for_key_group, KeyGroupRange, DEFAULT_MAX_PARALLELISM};
pub use layout::SubtaskSnapshotWriter;
pub use manifest::{FileDigest, Manifest, SubtaskSnapshot, VertexSnapshot};
pub use memory::{StateMemory, StateMemoryUsage};
pub use operator_state::OperatorStateSnapshot;
pub use reader::CheckpointReader;
pub use remote_store::RemoteCheckpointStore;
pub use state_types::{StateKey, StateValue};
pub use store::{
    digest_file, sync_dir, CheckpointStore, FsCheckpointStore, MemoryCheckpointStore, MANIFEST_FILE, RETIRED_DIR,
};
pub use ttl::Expiring;
pub use upload::{SnapshotUploader, UploadDone, UploadStats};
