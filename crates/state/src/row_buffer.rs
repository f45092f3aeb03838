//! Rows written but still held in memory: the hash-indexed [`RowBuffer`] a subtask's evicted
//! cache rows go to before RocksDB (see [`crate::db`] for why), and [`Rows`], a list of rows
//! packed into one buffer.

use std::ops::Range;

use ahash::AHashMap;

use crate::chunked_batch::ChunkedBatch;

/// Bytes a buffered row takes besides its key and value: its hash-map entry (two boxed slices and
/// a control byte, with spare capacity) and the allocator's headers of the two boxes.
pub(crate) const BUFFERED_ROW_OVERHEAD: usize = 80;

/// Rows written but kept in memory, the latest of each (`None`: deleted), by key.
#[derive(Default)]
pub(crate) struct RowBuffer {
    rows: AHashMap<Box<[u8]>, Option<Box<[u8]>>>,
    /// Estimated bytes of `rows`.
    bytes: usize,
}

impl RowBuffer {
    /// The buffered row of `key`: `None` if the buffer has none, `Some(None)` if it was deleted.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.rows.get(key).map(Option::as_deref)
    }

    /// Buffers a row, overwriting the one of the same key in place when the value's size is the same.
    #[inline]
    pub(crate) fn put(&mut self, key: &[u8], value: Option<&[u8]>) {
        let new_len = value.map_or(0, <[u8]>::len);
        match self.rows.get_mut(key) {
            Some(Some(old)) if value.is_some_and(|v| v.len() == old.len()) => {
                old.copy_from_slice(value.unwrap_or_default());
            }
            Some(old) => {
                self.bytes = self.bytes - old.as_ref().map_or(0, |o| o.len()) + new_len;
                *old = value.map(Box::from);
            }
            None => {
                self.bytes += BUFFERED_ROW_OVERHEAD + key.len() + new_len;
                self.rows.insert(key.into(), value.map(Box::from));
            }
        }
    }

    /// The rows as batches sorted by key (cheaper for the memtable), in chunks of `chunk_bytes`.
    pub(crate) fn to_batch(&self, chunk_bytes: usize) -> ChunkedBatch {
        let mut sorted: Vec<(&[u8], Option<&[u8]>)> = self.rows.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut batch = ChunkedBatch::new(chunk_bytes);
        for (key, value) in sorted {
            batch.row(key, value);
        }
        batch
    }

    /// Whether no row is buffered.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Estimated bytes of the buffered rows.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets every row, keeping the map's capacity for the next ones.
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.bytes = 0;
    }
}

/// Rows for [`crate::db::Db::write_rows`], each a key and its new value (`None`: delete), their bytes back to
/// back in one buffer (no allocation per row).
#[derive(Default)]
pub(crate) struct Rows {
    bytes: Vec<u8>,
    rows: Vec<(Range<usize>, Option<Range<usize>>)>,
}

impl Rows {
    /// Adds a row: `key` with `value`, or a delete of `key`.
    #[inline]
    pub(crate) fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let key = self.append(key);
        let value = value.map(|v| self.append(v));
        self.rows.push((key, value));
    }

    #[inline]
    fn append(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Whether no row was added.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows in the order they were added, as slices.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let bytes = &self.bytes;
        self.rows.iter().map(move |(key, value)| (&bytes[key.clone()], value.clone().map(|v| &bytes[v])))
    }

    /// The rows sorted by key, as slices.
    #[inline]
    pub(crate) fn sorted(&mut self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let bytes = &self.bytes;
        self.rows.sort_unstable_by(|a, b| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]));
        self.iter()
    }

    /// Estimated bytes the rows would take in a [`RowBuffer`].
    #[inline]
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.bytes.len() + self.rows.len() * BUFFERED_ROW_OVERHEAD
    }
}
