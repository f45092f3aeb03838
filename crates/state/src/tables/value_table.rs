//! The cache of a value state (`ValueState`, `ListState`): one row per key, CLOCK eviction.

use std::any::Any;

use ahash::AHashMap;

use super::{decode, encode_key, encode_prefix, flush_slots, scan_rows, take_dirty_row, StateTable, PREFIX_LEN};
use crate::clock::{Clock, RingEntry};
use crate::db::{ChunkedBatch, Db, Rows};
use crate::key_group::{KeyGroupOf, KeyGroupsOf};
use crate::memory::{table_buckets, table_entries, CacheBound};
use crate::slot::Slot;
use crate::state_types::{StateKey, StateValue};
use crate::{KeyGroupRange, Result, StateError};

/// Cache of a `ValueState` (and `ListState`, a value holding a `Vec`).
pub(crate) struct ValueTable<K, V> {
    name: String,
    state_id: u32,
    bound: CacheBound,
    /// Evicted since [`StateTable::memory`] was last asked.
    evicted: bool,
    inserts: u32,
    cache: AHashMap<K, Slot<V>>,
    /// Buckets reserved for `cache` under a byte budget (see `CacheBound`).
    reserved_buckets: usize,
    clock: Clock<K>,
    /// Whether hits set their CLOCK bit: only once the cache is half full (decided at each
    /// insert), so a cache that holds every key does not pay a second memory access per hit.
    recording: bool,
    buf: Vec<u8>,
    /// The last batch's keys missed the cache often enough for [`ValueTable::prefetch`] to pay.
    prefetching: bool,
    batches_seen: u64,
}

impl<K: StateKey, V: StateValue> ValueTable<K, V> {
    pub(crate) fn new(name: String, state_id: u32, capacity: usize) -> Self {
        // The ring is reserved exactly under a byte budget; the table is counted by buckets.
        let fixed = std::mem::size_of::<RingEntry<K>>();
        let bucket = std::mem::size_of::<(K, Slot<V>)>() + 1;
        ValueTable {
            name,
            state_id,
            bound: CacheBound::with_table(capacity, fixed, bucket),
            reserved_buckets: 0,
            evicted: false,
            inserts: 0,
            cache: AHashMap::new(),
            clock: Clock::default(),
            recording: false,
            buf: Vec::new(),
            prefetching: true,
            batches_seen: 0,
        }
    }

    fn row_key(&mut self, key: &K, key_group: u16) -> Result<()> {
        self.buf.clear();
        encode_prefix(&mut self.buf, key_group, self.state_id);
        encode_key(&mut self.buf, &self.name, key)
    }

    fn load(&mut self, db: &mut Db, key: &K, key_group: u16) -> Result<Option<V>> {
        self.row_key(key, key_group)?;
        match db.get(&self.buf)? {
            None => Ok(None),
            Some(bytes) => bincode::deserialize(&bytes).map(Some).map_err(StateError::codec_of("value", &self.name)),
        }
    }

    /// Entries the cache may hold: its bound's, and under a byte budget no more than the table
    /// reserved for it holds 7/16 full. The bound rises when entries turn out smaller than
    /// estimated; the table follows at the next budget, so it never grows by doubling between.
    fn capacity(&self) -> usize {
        let capacity = self.bound.capacity();
        match self.reserved_buckets {
            0 => capacity,
            buckets => capacity.min(table_entries(buckets).max(1)),
        }
    }

    /// When the cache is full, evicts a quarter of it chosen by CLOCK, writing the dirty
    /// victims to the working database's row buffer (see `db.rs`).
    fn make_room(&mut self, db: &mut Db) -> Result<()> {
        let capacity = self.capacity();
        if self.cache.len() < capacity {
            return Ok(());
        }
        self.evicted = true;
        // A quarter of the bound, or more if the bound shrank below the cache's size.
        let wanted = (capacity / 4).max(1) + self.cache.len().saturating_sub(capacity);
        let victims = self.clock.victims(wanted);
        let in_flight = db.snapshot_in_flight()?;
        let (mut row, mut value) = (Vec::new(), Vec::new());
        let mut rows = Rows::default();
        let name = &self.name;
        let encode = |row: &mut Vec<u8>, key: &K| encode_key(row, name, key);
        for key in &victims {
            if let Some(mut slot) = self.clock.remove(&mut self.cache, key) {
                if in_flight && slot.batched() {
                    // The snapshot may not have applied this entry's row yet, so a read after it
                    // left could find an older one: it leaves with its row (or tombstone), which
                    // reads find in the row buffer.
                    slot.set_dirty(true);
                    slot.set_in_db(true);
                }
                match take_dirty_row((&mut row, &mut value), name, self.state_id, key, &mut slot, encode)? {
                    Some(true) => {
                        self.bound.observe(row.len() - PREFIX_LEN + value.len());
                        rows.push(&row, Some(&value))
                    }
                    Some(false) => rows.push(&row, None),
                    None => {}
                }
            }
        }
        if !rows.is_empty() {
            db.write_rows(rows)?;
        }
        Ok(())
    }

    /// Loads the uncached keys among `keys` with one batched RocksDB read, so the records of a
    /// batch find their state cached. Skipped while lookups hit the cache anyway (it tries again
    /// every 64th batch), and never loads more than half the cache.
    pub(crate) fn prefetch(&mut self, db: &mut Db, keys: &[K], key_groups: KeyGroupsOf<'_>) -> Result<()> {
        self.batches_seen = self.batches_seen.wrapping_add(1);
        if !self.prefetching && !self.batches_seen.is_multiple_of(64) {
            return Ok(());
        }
        // The missing keys' rows, encoded back to back in one buffer, each with its record's index.
        let mut rows = Vec::new();
        let mut missing: Vec<(std::ops::Range<usize>, usize)> = Vec::new();
        let limit = self.capacity() / 2;
        for (i, key) in keys.iter().enumerate() {
            if missing.len() >= limit {
                break;
            }
            if !self.cache.contains_key(key) {
                let start = rows.len();
                encode_prefix(&mut rows, key_groups.at(i).of(key), self.state_id);
                encode_key(&mut rows, &self.name, key)?;
                missing.push((start..rows.len(), i));
            }
        }
        self.prefetching = missing.len() * 16 >= keys.len();
        if missing.is_empty() {
            return Ok(());
        }
        let mut loaded = Vec::with_capacity(missing.len());
        let name = &self.name;
        db.multi_get(missing.iter().map(|(row, _)| &rows[row.clone()]), |n, bytes| {
            let value = match bytes {
                None => None,
                Some(bytes) => Some(bincode::deserialize(bytes).map_err(StateError::codec_of("value", name))?),
            };
            loaded.push((missing[n].1, value));
            Ok(())
        })?;
        for (i, value) in loaded {
            let key = &keys[i];
            if self.cache.contains_key(key) {
                // A key that occurs twice in the batch: loaded once already.
                continue;
            }
            self.make_room(db)?;
            let pos = self.cache.len();
            self.insert(key.clone(), Slot::loaded(key_groups.at(i).of(key), value));
            // Loaded to be used: the first sweep passes it over.
            self.clock.touch(pos);
        }
        Ok(())
    }

    /// Caches an entry; every 64th insert also samples the entry's encoded size for the bound.
    fn insert(&mut self, key: K, slot: Slot<V>) {
        self.inserts = self.inserts.wrapping_add(1);
        if self.inserts % 64 == 1 {
            let key_bytes = bincode::serialized_size(&key).unwrap_or(0);
            let value_bytes = slot.value().map_or(0, |v| bincode::serialized_size(v).unwrap_or(0));
            self.bound.observe((key_bytes + value_bytes) as usize);
        }
        self.recording = self.cache.len() * 2 >= self.capacity();
        self.clock.insert(&mut self.cache, key, slot);
    }

    pub(crate) fn get(&mut self, db: &mut Db, key: &K, key_group: KeyGroupOf) -> Result<Option<V>> {
        if let Some(slot) = self.cache.get_mut(key) {
            if self.recording {
                self.clock.touch(slot.pos());
            }
            return Ok(slot.value().cloned());
        }
        let key_group = key_group.of(key);
        let value = self.load(db, key, key_group)?;
        self.make_room(db)?;
        self.insert(key.clone(), Slot::loaded(key_group, value.clone()));
        Ok(value)
    }

    #[inline]
    pub(crate) fn update(
        &mut self,
        db: &mut Db,
        key: &K,
        key_group: KeyGroupOf,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<()> {
        if let Some(slot) = self.cache.get_mut(key) {
            slot.map_value(f);
            slot.set_dirty(true);
            if self.recording {
                self.clock.touch(slot.pos());
            }
            if slot.is_gone() {
                self.clock.remove(&mut self.cache, key);
            }
            return Ok(());
        }
        self.update_missed(db, key, key_group, f)
    }

    /// [`ValueTable::update`] of a key not cached: kept out of line, so that the hit path, taken
    /// for nearly every record while the keys fit, stays small where it is inlined.
    #[inline(never)]
    fn update_missed(
        &mut self,
        db: &mut Db,
        key: &K,
        key_group: KeyGroupOf,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<()> {
        let key_group = key_group.of(key);
        let old = self.load(db, key, key_group)?;
        let mut slot = Slot::loaded(key_group, old);
        slot.map_value(f);
        slot.set_dirty(true);
        if !slot.is_gone() {
            self.make_room(db)?;
            self.insert(key.clone(), slot);
        }
        Ok(())
    }

    /// Every stored entry of this state in `range`: (key group, key, value).
    pub(crate) fn scan(&mut self, db: &mut Db, range: KeyGroupRange) -> Result<Vec<(u16, K, V)>> {
        let mut batch = db.batch();
        self.flush_into(&mut batch)?;
        db.write(batch)?;
        let name = &self.name;
        let mut out = Vec::new();
        scan_rows(db.raw(), range, self.state_id, |key_group, mut row, mut value| {
            let key: K = decode(&mut row, || format!("key of '{name}'"))?;
            let value: V = decode(&mut value, || format!("value of '{name}'"))?;
            out.push((key_group, key, value));
            Ok(())
        })?;
        Ok(out)
    }
}

impl<K: StateKey, V: StateValue> StateTable for ValueTable<K, V> {
    fn flush_into(&mut self, batch: &mut ChunkedBatch) -> Result<()> {
        let name = &self.name;
        flush_slots(&mut self.cache, batch, (name, self.state_id), &mut self.bound, |row, key| {
            encode_key(row, name, key)
        })?;
        self.clock.retain_live(&mut self.cache);
        Ok(())
    }

    fn cached(&self) -> (usize, usize) {
        // A table reserved for a budget, or one grown by doubling when 7/8 full.
        let buckets = self.reserved_buckets.max((self.cache.len() * 8 / 7).next_power_of_two());
        (self.cache.len(), self.bound.cache_bytes(self.cache.len(), buckets))
    }

    fn memory(&mut self) -> (usize, bool) {
        (self.cached().1, std::mem::take(&mut self.evicted))
    }

    fn set_byte_budget(&mut self, bytes: Option<usize>) {
        self.bound.set_bytes(bytes);
        if bytes.is_some() {
            // The whole table at once (see `CacheBound`): a table that grows holds its old and
            // new buckets together for a moment, more than the budget allows.
            let capacity = self.bound.capacity();
            let buckets = table_buckets(capacity);
            if buckets > self.reserved_buckets {
                let more = (buckets * 7 / 8).saturating_sub(self.cache.len());
                self.cache.reserve(more);
                self.reserved_buckets = buckets;
            }
            self.clock.reserve(capacity);
        }
    }

    fn prefetch(&mut self, db: &mut Db, keys: &dyn Any, key_groups: KeyGroupsOf<'_>) -> Result<()> {
        match keys.downcast_ref::<Vec<K>>() {
            Some(keys) => ValueTable::prefetch(self, db, keys, key_groups),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cache_under_a_byte_budget_never_grows_its_table_while_it_churns() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = crate::db::tests::open(dir.path());
        let mut table = ValueTable::<u64, u64>::new("count".into(), 1, 1_000_000);
        table.set_byte_budget(Some(1 << 20));
        let capacity = table.bound.capacity();
        let reserved = table.cache.capacity();
        assert!(capacity > 1000 && reserved >= 2 * capacity, "{capacity} entries in a table for {reserved}");
        // Every update misses: a quarter of the cache leaves again and again, leaving tombstones.
        for k in 0..(40 * capacity as u64) {
            table.update(&mut db, &k, KeyGroupOf::Given(0), |_| Some(k)).unwrap();
            assert!(table.cache.capacity() <= reserved, "the table grew after {k} updates");
        }
        assert_eq!(table.clock.len(), table.cache.len());
    }

    #[test]
    fn a_batch_naming_a_key_twice_loads_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = crate::db::tests::open(dir.path());
        let mut table = ValueTable::<u64, u64>::new("count".into(), 1, 64);
        for k in 0..1000u64 {
            table.update(&mut db, &k, KeyGroupOf::Given(0), |_| Some(k)).unwrap();
        }
        let twice: Vec<u64> = (0..10u64).flat_map(|k| [k, k]).collect();
        table.prefetch(&mut db, &twice, KeyGroupsOf::Given(&[0; 20])).unwrap();
        assert_eq!(table.clock.len(), table.cache.len(), "one CLOCK entry per cached key");
        for k in 0..10u64 {
            assert_eq!(table.cache.get(&k).and_then(|slot| slot.value().copied()), Some(k), "key {k} loaded");
        }
    }
}
