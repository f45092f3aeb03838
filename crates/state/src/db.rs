//! The working RocksDB database of a subtask, the rows written to it that are still held in
//! memory, and the background snapshot that may be using it.
//!
//! Rows a cache writes when it evicts go into a hash-indexed buffer, [`RowBuffer`], not straight
//! into RocksDB: a row evicted again and again (a working set larger than the cache, every
//! record a miss) is found and overwritten there with one hash lookup, where RocksDB's memtable
//! searched its skiplist twice per miss (once to read the row, once to overwrite the evicted
//! one's). Reads look in the buffer first. The buffer goes to RocksDB, sorted, when it outgrows
//! its share of memory, before a scan, and at every snapshot.
//!
//! A snapshot's RocksDB work (writing the buffer's rows, then the barrier's batch, flushing and
//! linking a checkpoint) runs on a background thread while the subtask goes on processing from
//! its caches. Nothing the subtask writes meanwhile may reach the database, or the checkpoint
//! could hold a write made after its barrier. So at a snapshot the buffer is frozen: reads find
//! its rows there until the snapshot is done, and new writes go into a fresh buffer. Processing
//! waits for a snapshot only when the two buffers together are full. An entry of the barrier's
//! batch that leaves a cache meanwhile leaves its row in the new buffer (see `tables.rs`), so no
//! read needs a row the snapshot may not have written yet.

use std::sync::Arc;
use std::thread::JoinHandle;

use rocksdb::DB;

pub(crate) use crate::chunked_batch::ChunkedBatch;
use crate::row_buffer::RowBuffer;
pub(crate) use crate::row_buffer::Rows;
use crate::{Result, StateError};

pub(crate) struct Db {
    db: Arc<DB>,
    in_flight: Option<JoinHandle<()>>,
    /// Rows written since the last snapshot began; read first.
    buffer: RowBuffer,
    /// Rows the in-flight snapshot writes to RocksDB before its batch; read next.
    frozen: RowBuffer,
    /// Bytes the two buffers may hold together; past them the rows go to RocksDB.
    buffer_limit: usize,
    /// Size of the chunks of a [`ChunkedBatch`]: half a memtable.
    chunk_bytes: usize,
}

impl Db {
    /// A working database whose buffered rows may hold up to `buffer_limit` bytes, and whose
    /// batches are written in chunks of `chunk_bytes`.
    pub(crate) fn new(db: DB, buffer_limit: usize, chunk_bytes: usize) -> Self {
        Db {
            db: Arc::new(db),
            in_flight: None,
            buffer: RowBuffer::default(),
            frozen: RowBuffer::default(),
            buffer_limit,
            chunk_bytes,
        }
    }

    /// An empty batch for this database, in chunks of half a memtable.
    pub(crate) fn batch(&self) -> ChunkedBatch {
        ChunkedBatch::new(self.chunk_bytes)
    }

    /// Waits for the background snapshot, if any; the rows it froze are in RocksDB then.
    pub(crate) fn wait(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.take() {
            handle.join().map_err(|_| StateError::Snapshot {
                path: self.db.path().to_path_buf(),
                reason: "the snapshot thread panicked".into(),
            })?;
        }
        self.frozen.clear();
        Ok(())
    }

    /// Waits for the background snapshot, then writes the buffered rows to RocksDB, so that
    /// RocksDB alone answers for every row (before a scan).
    fn settle(&mut self) -> Result<()> {
        self.wait()?;
        if !self.buffer.is_empty() {
            self.buffer.to_batch(self.chunk_bytes).write(&self.db)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Whether a background snapshot may still be applying its batch. A finished one is joined
    /// here.
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

    /// Estimated bytes of the rows held in memory, not yet in RocksDB.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.buffer.bytes() + self.frozen.bytes()
    }

    /// A RocksDB integer property (`rocksdb.size-all-mem-tables`, ...); 0 if RocksDB has none.
    pub(crate) fn property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }

    /// The buffered row of `key`, newest buffer first: `None` if neither has one.
    fn buffered(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.buffer.get(key).or_else(|| self.frozen.get(key))
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(row) = self.buffered(key) {
            return Ok(row.map(<[u8]>::to_vec));
        }
        self.db.get(key).map_err(StateError::rocks("get", self.db.path()))
    }

    /// Reads many rows at once and hands `found` each one's index and value, read in place, not
    /// copied: the buffered ones from memory, the others with RocksDB's batched `MultiGet`, in
    /// key order (cheaper for RocksDB), so not necessarily in the order of `keys`.
    pub(crate) fn multi_get<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        mut found: impl FnMut(usize, Option<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        let mut unbuffered = Vec::new();
        for (n, key) in keys.enumerate() {
            match self.buffered(key) {
                Some(row) => found(n, row)?,
                None => unbuffered.push((n, key)),
            }
        }
        if unbuffered.is_empty() {
            return Ok(());
        }
        unbuffered.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let cf = self.db.cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME).ok_or_else(|| StateError::Snapshot {
            path: self.db.path().to_path_buf(),
            reason: "the default column family is missing".into(),
        })?;
        let results = self.db.batched_multi_get_cf(&cf, unbuffered.iter().map(|(_, key)| *key), true);
        for ((n, _), result) in unbuffered.iter().zip(results) {
            let value = result.map_err(StateError::rocks("multi_get", self.db.path()))?;
            found(*n, value.as_deref())?
        }
        Ok(())
    }

    /// Writes rows into the buffer, without waiting for a background snapshot. Rows that would
    /// take the buffers past their limit go to RocksDB instead, after the buffer, once the
    /// snapshot (if one runs) is done.
    pub(crate) fn write_rows(&mut self, mut rows: Rows) -> Result<()> {
        if self.pending_bytes() + rows.buffered_bytes() <= self.buffer_limit {
            for (key, value) in rows.iter() {
                self.buffer.put(key, value);
            }
            return Ok(());
        }
        self.settle()?;
        let mut batch = self.batch();
        for (key, value) in rows.sorted() {
            batch.row(key, value);
        }
        batch.write(&self.db)
    }

    /// Writes a batch after the buffered rows (waiting for a background snapshot first).
    pub(crate) fn write(&mut self, batch: ChunkedBatch) -> Result<()> {
        self.settle()?;
        batch.write(&self.db)
    }

    /// The database, for scans; call [`Db::write`] first: RocksDB alone holds every row then.
    pub(crate) fn raw(&self) -> &DB {
        &self.db
    }

    /// Runs `work` on a background thread with the database and the buffered rows, which it must
    /// write before anything else (as a batch sorted by key); waits for the previous one first.
    /// Until it is done, reads find those rows in memory.
    pub(crate) fn spawn(&mut self, name: String, work: impl FnOnce(&DB, ChunkedBatch) + Send + 'static) -> Result<()> {
        self.wait()?;
        let earlier = self.buffer.to_batch(self.chunk_bytes);
        // `frozen` is empty after the wait: the two swap, and the empty one keeps its capacity.
        std::mem::swap(&mut self.buffer, &mut self.frozen);
        let db = self.db.clone();
        match std::thread::Builder::new().name(name).spawn(move || work(&db, earlier)) {
            Ok(handle) => {
                self.in_flight = Some(handle);
                Ok(())
            }
            Err(e) => {
                // No snapshot writes the frozen rows: they stay buffered.
                std::mem::swap(&mut self.buffer, &mut self.frozen);
                Err(StateError::io("spawn snapshot thread for", self.db.path())(e))
            }
        }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A working database in `dir` with default options, 1 MiB of row buffer and 1 MiB chunks.
    pub(crate) fn open(dir: &std::path::Path) -> Db {
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
    fn writes_during_a_snapshot_stay_in_memory_are_read_from_there_and_reach_rocksdb_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(dir.path());
        db.write_rows(rows(&[("b", Some("1")), ("a", Some("1"))])).unwrap();
        assert_eq!(db.raw().get(b"a").unwrap(), None, "buffered, not yet in RocksDB");
        let (release, blocked) = mpsc::channel::<()>();
        let (handed_tx, handed) = mpsc::channel();
        let (seen_tx, seen) = mpsc::channel();
        db.spawn("slow-snapshot".into(), move |db, earlier| {
            handed_tx.send(earlier.len()).unwrap();
            earlier.write(db).unwrap();
            blocked.recv().unwrap();
            seen_tx.send(db.get(b"a").unwrap()).unwrap();
        })
        .unwrap();
        assert_eq!(handed.recv().unwrap(), 2, "the snapshot was handed the rows buffered before it");
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
        db.multi_get([&b"a"[..], &b"c"[..], &b"d"[..]].into_iter(), |n, value| {
            read.push((n, value.map(<[u8]>::to_vec)));
            Ok(())
        })
        .unwrap();
        read.sort();
        assert_eq!(read, vec![(0, Some(b"2".to_vec())), (1, Some(b"3".to_vec())), (2, None)]);
        release.send(()).unwrap();
        db.wait().unwrap();
        assert_eq!(seen.recv().unwrap(), Some(b"1".to_vec()), "the snapshot saw the rows from before it");
        assert_eq!(db.get(b"b").unwrap(), None, "a delete made during the snapshot still hides the row");
        assert_eq!(db.raw().get(b"b").unwrap(), Some(b"1".to_vec()), "which is still only in memory");
        db.write(db.batch()).unwrap();
        assert_eq!(db.raw().get(b"a").unwrap(), Some(b"2".to_vec()), "held writes reach RocksDB before a scan");
        assert_eq!(db.raw().get(b"b").unwrap(), None);
        assert_eq!(db.pending_bytes(), 0);
    }

    #[test]
    fn a_row_written_again_is_overwritten_in_the_buffer_not_added() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(dir.path());
        db.write_rows(rows(&[("row", Some("00"))])).unwrap();
        let one_row = db.pending_bytes();
        for i in 0..100 {
            db.write_rows(rows(&[("row", Some(&format!("{i:02}")))])).unwrap();
        }
        assert_eq!(db.pending_bytes(), one_row);
        assert_eq!(db.get(b"row").unwrap(), Some(b"99".to_vec()));
        db.write_rows(rows(&[("row", Some("longer"))])).unwrap();
        assert_eq!(db.pending_bytes(), one_row + 4, "a longer value counts its bytes");
        assert_eq!(db.get(b"row").unwrap(), Some(b"longer".to_vec()));
    }

    #[test]
    fn a_buffer_past_its_limit_goes_to_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let mut db = Db::new(open_db(&opts, dir.path()).unwrap(), 2000, 1 << 20);
        for i in 0..100u32 {
            db.write_rows(rows(&[(&format!("key-{i:03}"), Some("value"))])).unwrap();
            assert!(db.pending_bytes() <= 2000, "{} bytes held after row {i}", db.pending_bytes());
        }
        assert_eq!(db.raw().get(b"key-000").unwrap(), Some(b"value".to_vec()), "the first rows went to RocksDB");
        for i in 0..100u32 {
            assert_eq!(db.get(format!("key-{i:03}").as_bytes()).unwrap(), Some(b"value".to_vec()), "row {i}");
        }
        // Rows too many for the buffer go straight to RocksDB, after the buffered ones they replace.
        db.write_rows(rows(&[("key-098", Some("old")), ("key-099", Some("old"))])).unwrap();
        let big: Vec<(String, Option<&str>)> =
            (0..100u32).map(|i| (format!("key-{i:03}"), (i != 99).then_some("new"))).collect();
        let big: Vec<(&str, Option<&str>)> = big.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        db.write_rows(rows(&big)).unwrap();
        assert_eq!(db.pending_bytes(), 0);
        assert_eq!(db.get(b"key-098").unwrap(), Some(b"new".to_vec()));
        assert_eq!(db.get(b"key-099").unwrap(), None, "deleted");
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
        assert!(batch.chunks().len() >= 10, "{} chunks", batch.chunks().len());
        for chunk in batch.chunks() {
            assert!(chunk.size_in_bytes() < 1000 + 64, "a chunk of {} bytes", chunk.size_in_bytes());
        }
        db.write(batch).unwrap();
        for i in 0..500u32 {
            let want = (i != 3).then(|| vec![7u8; 12]);
            assert_eq!(db.get(format!("key-{i:05}").as_bytes()).unwrap(), want, "row {i}");
        }
    }
}
