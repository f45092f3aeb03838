//! The working RocksDB database of a subtask, and the background snapshot that may be using it.
//!
//! A snapshot's RocksDB work (applying the barrier's `WriteBatch`, flushing and linking a
//! checkpoint) runs on a background thread while the subtask goes on processing from its caches.
//! Nothing the subtask does meanwhile may reach the database, or the checkpoint could hold a
//! write made after its barrier. So writes made while a snapshot runs (a cache evicting) are kept
//! in an overlay, [`Pending`]: reads look there first, and it is applied in one batch as soon as
//! the snapshot is done. Processing waits for a snapshot only when the overlay is full. An entry of
//! the barrier's batch that leaves a cache meanwhile leaves its row in the overlay (see
//! `tables.rs`), so no read needs a row the snapshot may not have written yet.

use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;

use ahash::AHashMap;
use rocksdb::{WriteBatch, DB};

use crate::{Result, StateError};

pub(crate) struct Db {
    db: Arc<DB>,
    in_flight: Option<JoinHandle<()>>,
    pending: Pending,
    /// Bytes the overlay may hold; past them a write waits for the snapshot after all.
    pending_limit: usize,
    /// Size of the chunks of a [`ChunkedBatch`]: half a memtable.
    chunk_bytes: usize,
}

/// Rows written while a background snapshot runs, in write order, with the latest of each row
/// for reads (`None`: deleted).
#[derive(Default)]
struct Pending {
    batch: WriteBatch,
    rows: AHashMap<Box<[u8]>, Option<Box<[u8]>>>,
    /// Estimated bytes of `batch` and `rows`.
    bytes: usize,
}

/// Rows for [`Db::write_rows`], sorted or not, each a key and its new value (`None`: delete),
/// their bytes back to back in one buffer (no allocation per row).
#[derive(Default)]
pub(crate) struct Rows {
    bytes: Vec<u8>,
    rows: Vec<(Range<usize>, Option<Range<usize>>)>,
}

impl Rows {
    /// Adds a row: `key` with `value`, or a delete of `key`.
    pub(crate) fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let key = self.append(key);
        let value = value.map(|v| self.append(v));
        self.rows.push((key, value));
    }

    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Whether no row was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows sorted by key, as slices.
    fn sorted(&mut self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let bytes = &self.bytes;
        self.rows.sort_unstable_by(|a, b| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]));
        self.rows.iter().map(move |(key, value)| (&bytes[key.clone()], value.clone().map(|v| &bytes[v])))
    }
}

impl Db {
    /// A working database whose writes during a snapshot may hold up to `pending_limit` bytes,
    /// and whose batches are written in chunks of `chunk_bytes`.
    pub(crate) fn new(db: DB, pending_limit: usize, chunk_bytes: usize) -> Self {
        Db { db: Arc::new(db), in_flight: None, pending: Pending::default(), pending_limit, chunk_bytes }
    }

    /// An empty batch for this database, in chunks of half a memtable.
    pub(crate) fn batch(&self) -> ChunkedBatch {
        ChunkedBatch::new(self.chunk_bytes)
    }

    /// Waits for the background snapshot, if any, then applies the writes held back meanwhile.
    pub(crate) fn wait(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.take() {
            handle.join().map_err(|_| StateError::Snapshot {
                path: self.db.path().to_path_buf(),
                reason: "the snapshot thread panicked".into(),
            })?;
        }
        if !self.pending.rows.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            write_batch(&self.db, pending.batch)?;
        }
        Ok(())
    }

    /// Whether a background snapshot may still be applying its batch. A finished one is joined
    /// here and the writes held back for it are applied.
    pub(crate) fn snapshot_in_flight(&mut self) -> Result<bool> {
        match &self.in_flight {
            Some(handle) if handle.is_finished() => {
                self.wait()?;
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Estimated bytes of the rows held back while a snapshot runs.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending.bytes
    }

    /// A RocksDB integer property (`rocksdb.size-all-mem-tables`, ...); 0 if RocksDB has none.
    pub(crate) fn property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(row) = self.pending.rows.get(key) {
            return Ok(row.as_ref().map(|v| v.to_vec()));
        }
        self.db.get(key).map_err(StateError::rocks("get", self.db.path()))
    }

    /// Reads many rows at once (RocksDB's batched `MultiGet`; `keys` sorted makes it cheaper) and
    /// hands `found` each one's index and value, read in place, not copied out of RocksDB.
    pub(crate) fn multi_get<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        mut found: impl FnMut(usize, Option<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        let cf = self.db.cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME).ok_or_else(|| StateError::Snapshot {
            path: self.db.path().to_path_buf(),
            reason: "the default column family is missing".into(),
        })?;
        let results = self.db.batched_multi_get_cf(&cf, keys.clone(), true);
        for (n, (key, result)) in keys.zip(results).enumerate() {
            match self.pending.rows.get(key) {
                Some(row) => found(n, row.as_deref())?,
                None => {
                    let value = result.map_err(StateError::rocks("multi_get", self.db.path()))?;
                    found(n, value.as_deref())?
                }
            }
        }
        Ok(())
    }

    /// Writes rows sorted by key (cheaper for the memtable), without waiting for a background
    /// snapshot: while one runs they are held back and applied once it is done, unless that
    /// would hold more than the pending limit (then this waits for the snapshot).
    pub(crate) fn write_rows(&mut self, mut rows: Rows) -> Result<()> {
        if self.snapshot_in_flight()? && self.pending.bytes < self.pending_limit {
            for (key, value) in rows.sorted() {
                // Both copies, the map's entry and its control byte, and the batch's framing.
                self.pending.bytes += 2 * (key.len() + value.map_or(0, <[u8]>::len)) + 64;
                match value {
                    Some(v) => self.pending.batch.put(key, v),
                    None => self.pending.batch.delete(key),
                }
                self.pending.rows.insert(key.into(), value.map(Box::from));
            }
            return Ok(());
        }
        self.wait()?;
        let mut batch = WriteBatch::default();
        for (key, value) in rows.sorted() {
            match value {
                Some(v) => batch.put(key, v),
                None => batch.delete(key),
            }
        }
        write_batch(&self.db, batch)
    }

    /// Writes a batch (waiting for a background snapshot first).
    pub(crate) fn write(&mut self, batch: ChunkedBatch) -> Result<()> {
        self.wait()?;
        batch.write(&self.db)
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

/// Opens a working database with its default column family by name, so batched reads can name it.
pub(crate) fn open_db(opts: &rocksdb::Options, path: &std::path::Path) -> Result<DB> {
    let default = rocksdb::ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone());
    DB::open_cf_descriptors(opts, path, [default]).map_err(StateError::rocks("open", path))
}

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

    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) {
        self.current.put(key, value);
        self.roll();
    }

    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.current.delete(key);
        self.roll();
    }

    fn roll(&mut self) {
        if self.current.size_in_bytes() >= self.chunk_bytes {
            self.full.push(std::mem::take(&mut self.current));
        }
    }

    /// Rows added so far.
    pub(crate) fn len(&self) -> usize {
        self.full.iter().map(WriteBatch::len).sum::<usize>() + self.current.len()
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

pub(crate) fn write_batch(db: &DB, batch: WriteBatch) -> Result<()> {
    let mut opts = rocksdb::WriteOptions::default();
    // Durability comes from checkpoints; the working database is discarded after a crash.
    opts.disable_wal(true);
    db.write_opt(batch, &opts).map_err(StateError::rocks("write batch", db.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn open(dir: &std::path::Path) -> Db {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        Db::new(open_db(&opts, dir).unwrap(), 1 << 20, 1 << 20)
    }

    fn rows(list: &[(&str, Option<&str>)]) -> Rows {
        let mut rows = Rows::default();
        for (key, value) in list {
            rows.push(key.as_bytes(), value.map(str::as_bytes));
        }
        rows
    }

    #[test]
    fn writes_during_a_snapshot_wait_in_memory_are_read_from_there_and_land_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(dir.path());
        db.write_rows(rows(&[("a", Some("1")), ("b", Some("1"))])).unwrap();
        let (release, blocked) = mpsc::channel::<()>();
        let (seen_tx, seen) = mpsc::channel();
        db.spawn("slow-snapshot".into(), move |db| {
            blocked.recv().unwrap();
            seen_tx.send(db.get(b"a").unwrap()).unwrap();
        })
        .unwrap();
        // The snapshot is blocked: a write that waited for it would never return.
        let (done_tx, done) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            db.write_rows(rows(&[("a", Some("2")), ("b", None), ("c", Some("3"))])).unwrap();
            done_tx.send(()).unwrap();
            db
        });
        done.recv_timeout(Duration::from_secs(10)).expect("the write returned while the snapshot ran");
        let mut db = writer.join().unwrap();
        assert_eq!(db.get(b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(db.get(b"b").unwrap(), None);
        let mut read = Vec::new();
        db.multi_get([&b"a"[..], &b"c"[..]].into_iter(), |n, value| {
            read.push((n, value.map(<[u8]>::to_vec)));
            Ok(())
        })
        .unwrap();
        assert_eq!(read, vec![(0, Some(b"2".to_vec())), (1, Some(b"3".to_vec()))]);
        release.send(()).unwrap();
        db.wait().unwrap();
        assert_eq!(seen.recv().unwrap(), Some(b"1".to_vec()), "the snapshot saw the database as at its start");
        assert_eq!(db.raw().get(b"a").unwrap(), Some(b"2".to_vec()), "held-back writes landed after it");
        assert_eq!(db.raw().get(b"b").unwrap(), None);
    }

    #[test]
    fn a_batch_larger_than_a_chunk_is_kept_in_chunks_and_every_row_lands() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(dir.path());
        let mut batch = ChunkedBatch::new(1000);
        for i in 0..500u32 {
            batch.put(format!("key-{i:05}").as_bytes(), &[7u8; 12]);
        }
        batch.delete(b"key-00003");
        assert_eq!(batch.len(), 501);
        assert!(batch.full.len() >= 10, "{} chunks", batch.full.len());
        for chunk in &batch.full {
            assert!(chunk.size_in_bytes() < 1000 + 64, "a chunk of {} bytes", chunk.size_in_bytes());
        }
        db.write(batch).unwrap();
        for i in 0..500u32 {
            let want = (i != 3).then(|| vec![7u8; 12]);
            assert_eq!(db.get(format!("key-{i:05}").as_bytes()).unwrap(), want, "row {i}");
        }
    }
}
