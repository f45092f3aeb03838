//! The working RocksDB database of a subtask, and the background snapshot that may be using it.
//!
//! A snapshot's RocksDB work (applying the barrier's `WriteBatch`, flushing and linking a
//! checkpoint) runs on a background thread while the subtask goes on processing from its caches.
//! That is safe because, until the snapshot is done, the subtask only reads keys that are not in
//! the batch (those stay cached) and every write waits for the snapshot first.

use std::sync::Arc;
use std::thread::JoinHandle;

use rocksdb::{WriteBatch, DB};

use crate::{Result, StateError};

pub(crate) struct Db {
    db: Arc<DB>,
    in_flight: Option<JoinHandle<()>>,
}

impl Db {
    pub(crate) fn new(db: DB) -> Self {
        Db { db: Arc::new(db), in_flight: None }
    }

    /// Waits for the background snapshot, if any.
    pub(crate) fn wait(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.take() {
            handle.join().map_err(|_| StateError::Snapshot {
                path: self.db.path().to_path_buf(),
                reason: "the snapshot thread panicked".into(),
            })?;
        }
        Ok(())
    }

    /// Whether a background snapshot may still be applying its batch.
    pub(crate) fn snapshot_in_flight(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|h| !h.is_finished())
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(StateError::rocks("get", self.db.path()))
    }

    /// Writes a batch (waiting for a background snapshot first).
    pub(crate) fn write(&mut self, batch: WriteBatch) -> Result<()> {
        self.wait()?;
        write_batch(&self.db, batch)
    }

    /// The database, for scans; call [`Db::wait`] first if the scan must see the latest batch.
    pub(crate) fn raw(&self) -> &DB {
        &self.db
    }

    /// Runs `work` on a background thread with the database; waits for the previous one first.
    pub(crate) fn spawn(&mut self, name: String, work: impl FnOnce(&DB) + Send + 'static) -> Result<()> {
        self.wait()?;
        let db = self.db.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || work(&db))
            .map_err(StateError::io("spawn snapshot thread for", self.db.path()))?;
        self.in_flight = Some(handle);
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Never leave a snapshot writing into a checkpoint directory behind.
        let _ = self.wait();
    }
}

pub(crate) fn write_batch(db: &DB, batch: WriteBatch) -> Result<()> {
    let mut opts = rocksdb::WriteOptions::default();
    // Durability comes from checkpoints; the working database is discarded after a crash.
    opts.disable_wal(true);
    db.write_opt(batch, &opts).map_err(StateError::rocks("write batch", db.path()))
}
