//! Writing rows to the working RocksDB database: in [`ChunkedBatch`]es of bounded size, without
//! the write-ahead log.

use rocksdb::{WriteBatch, DB};

use crate::{Result, StateError};

/// Rows to write, built as a sequence of `WriteBatch`es of about `chunk_bytes` each instead of
/// one. A barrier's rows (every dirty cache entry) can be tens of megabytes: in one batch they
/// made one buffer grown by doubling (up to twice its content, and a copy while it grew),
/// outside any budget, and one huge memtable when written (RocksDB switches memtables only
/// between writes). In chunks, each is written and freed in turn.
pub(crate) struct ChunkedBatch {
    full: Vec<WriteBatch>,
    current: WriteBatch,
    chunk_bytes: usize,
}

impl ChunkedBatch {
    /// An empty batch whose chunks hold about `chunk_bytes` each (at least one row).
    pub(crate) fn new(chunk_bytes: usize) -> Self {
        ChunkedBatch { full: Vec::new(), current: WriteBatch::default(), chunk_bytes }
    }

    #[inline]
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) {
        self.current.put(key, value);
        self.roll();
    }

    #[inline]
    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.current.delete(key);
        self.roll();
    }

    /// Adds `key` with `value`, or a delete of `key`.
    #[inline]
    pub(crate) fn row(&mut self, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => self.put(key, v),
            None => self.delete(key),
        }
    }

    #[inline]
    fn roll(&mut self) {
        if self.current.size_in_bytes() >= self.chunk_bytes {
            self.full.push(std::mem::take(&mut self.current));
        }
    }

    /// Rows added so far.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.full.iter().map(WriteBatch::len).sum::<usize>() + self.current.len()
    }

    /// The chunks filled so far (tests).
    #[cfg(test)]
    pub(crate) fn chunks(&self) -> &[WriteBatch] {
        &self.full
    }

    /// Writes the chunks in order, each freed once written.
    pub(crate) fn write(self, db: &DB) -> Result<()> {
        for batch in self.full.into_iter().chain(std::iter::once(self.current)) {
            if !batch.is_empty() {
                write_batch(db, batch)?;
            }
        }
        Ok(())
    }
}

fn write_batch(db: &DB, batch: WriteBatch) -> Result<()> {
    let mut opts = rocksdb::WriteOptions::default();
    // Durability comes from checkpoints; the working database is discarded after a crash.
    opts.disable_wal(true);
    db.write_opt(batch, &opts).map_err(StateError::rocks("write batch", db.path()))
}
