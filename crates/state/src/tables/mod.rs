//! In-memory, bounded write-back caches in front of RocksDB, one per registered keyed state.
//!
//! Reads fill the cache from RocksDB; writes only mark entries dirty. At a barrier every dirty
//! entry goes into the subtask's batch (`ChunkedBatch`: `WriteBatch`es of half a memtable
//! each). When a value cache reaches its bound, CLOCK (`clock.rs`) picks a quarter of it to
//! leave, and the dirty ones among them are written to the working database's row buffer, which
//! holds them in memory until it is full or a snapshot takes them (see `db.rs`); a map cache
//! still writes its dirty entries to RocksDB and empties itself.
//! So state larger than memory works (the working database is never restored from; checkpoints
//! are).
//!
//! Each cached entry knows whether the database (RocksDB or its row buffer) holds a row for it
//! (`in_db`). An entry created and removed between two barriers (a window's contents, a timer)
//! never reaches the database: no put, no tombstone. Removed entries leave the cache at the next
//! barrier after no batch mentions them.
//! An entry of a batch a background snapshot is still applying that is evicted meanwhile leaves
//! its row in the row buffer, which reads look in first (see `db.rs`).

use std::any::Any;

use ahash::AHashMap;

use crate::db::{ChunkedBatch, Db};
use crate::key_group::KeyGroupsOf;
use crate::memory::CacheBound;
use crate::slot::Slot;

use crate::state_types::StateValue;
use crate::{KeyGroupRange, Result, StateError};

/// A cache the backend can flush at a barrier without knowing its types. A handle reaches its
/// typed table by upcasting to `dyn Any` and downcasting: one dynamic call per state access.
pub(crate) trait StateTable: Any + Send {
    /// Moves every dirty entry into `batch` and marks it clean.
    fn flush_into(&mut self, batch: &mut ChunkedBatch) -> Result<()>;
    /// Loads the state of the keys of a record batch (`keys`: a `Vec<K>`; the key groups of those
    /// not cached from `key_group`) ahead of their records, if this cache is keyed by that type.
    /// The default does nothing.
    fn prefetch(&mut self, _db: &mut Db, _keys: &dyn Any, _key_groups: KeyGroupsOf<'_>) -> Result<()> {
        Ok(())
    }
    /// Entries the cache holds and their estimated bytes.
    fn cached(&self) -> (usize, usize);
    /// Estimated bytes the cache holds, and whether it had to evict since the last call.
    fn memory(&mut self) -> (usize, bool);
    /// Sets the cache's share of the subtask's byte budget (`None`: bounded by entries only).
    fn set_byte_budget(&mut self, bytes: Option<usize>);
}

/// Length of the `key group | state id` prefix of every RocksDB key.
pub(crate) const PREFIX_LEN: usize = 6;

pub(crate) fn encode_prefix(out: &mut Vec<u8>, key_group: u16, state_id: u32) {
    out.extend_from_slice(&key_group.to_be_bytes());
    out.extend_from_slice(&state_id.to_be_bytes());
}

pub(crate) fn encode_key<K: serde::Serialize>(out: &mut Vec<u8>, name: &str, key: &K) -> Result<()> {
    bincode::serialize_into(out, key).map_err(StateError::codec_of("key", name))
}

/// Moves the dirty entries of a cache into `batch` and marks them clean; entries that are gone are
/// left for the caller to drop.
pub(crate) fn flush_slots<Q, V: StateValue>(
    cache: &mut AHashMap<Q, Slot<V>>,
    batch: &mut ChunkedBatch,
    (name, state_id): (&str, u32),
    bound: &mut CacheBound,
    encode_row: impl Fn(&mut Vec<u8>, &Q) -> Result<()>,
) -> Result<()> {
    let (mut row, mut value) = (Vec::new(), Vec::new());
    for (key, slot) in cache.iter_mut() {
        slot.set_batched(false);
        match take_dirty_row((&mut row, &mut value), name, state_id, key, slot, &encode_row)? {
            Some(true) => {
                bound.observe(row.len() - PREFIX_LEN + value.len());
                batch.put(&row, &value)
            }
            Some(false) => batch.delete(&row),
            None => continue,
        }
        slot.set_batched(true);
    }
    Ok(())
}

/// Encodes a dirty slot's row key into `row` and its value into `value`, and marks it clean:
/// `Some(true)` to put, `Some(false)` for a tombstone, `None` if there is nothing to write.
pub(crate) fn take_dirty_row<Q, V: StateValue>(
    bufs: (&mut Vec<u8>, &mut Vec<u8>),
    name: &str,
    state_id: u32,
    key: &Q,
    slot: &mut Slot<V>,
    encode_row: impl Fn(&mut Vec<u8>, &Q) -> Result<()>,
) -> Result<Option<bool>> {
    let (row, value) = bufs;
    if !slot.dirty() {
        return Ok(None);
    }
    slot.set_dirty(false);
    if slot.value().is_none() && !slot.in_db() {
        return Ok(None);
    }
    row.clear();
    encode_prefix(row, slot.key_group(), state_id);
    encode_row(row, key)?;
    if let Some(v) = slot.value() {
        value.clear();
        bincode::serialize_into(&mut *value, v).map_err(StateError::codec_of("value", name))?;
    }
    slot.set_in_db(slot.value().is_some());
    Ok(Some(slot.in_db()))
}

/// Scans every row of `state_id` in the key groups `range`, handing the bytes after the prefix
/// and the value bytes to `f` (the working database's, or a snapshot's for [`crate::CheckpointReader`]).
pub(crate) fn scan_rows(
    db: &rocksdb::DB,
    range: KeyGroupRange,
    state_id: u32,
    mut f: impl FnMut(u16, &[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let mut prefix = Vec::with_capacity(PREFIX_LEN);
    for key_group in range.start..=range.end {
        prefix.clear();
        encode_prefix(&mut prefix, key_group, state_id);
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        for item in db.iterator(mode) {
            let (row, value) = item.map_err(StateError::rocks("scan", db.path()))?;
            if !row.starts_with(&prefix) {
                break;
            }
            f(key_group, &row[PREFIX_LEN..], &value)?;
        }
    }
    Ok(())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &mut &[u8], what: impl FnOnce() -> String) -> Result<T> {
    bincode::deserialize_from(bytes).map_err(|e| StateError::Codec { what: what(), source: e })
}

/// Bytes a cached entry of `Q` and `S` takes in a hash map besides its heap: the pair and a
/// control byte, times 3/2 for the spare capacity of a table that doubles when full.
pub(crate) fn entry_overhead<Q, S>() -> usize {
    (std::mem::size_of::<(Q, S)>() + 1) * 3 / 2
}

mod map_table;
mod value_table;

pub(crate) use map_table::MapTable;
pub(crate) use value_table::ValueTable;
