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

use std::collections::hash_map::Entry;

use ahash::AHashMap;

use crate::clock::{Clock, RingEntry};
use crate::db::{ChunkedBatch, Db, Rows};
use crate::key_group::{KeyGroupOf, KeyGroupsOf};
use crate::memory::{table_buckets, table_entries, CacheBound};
use crate::slot::Slot;

use crate::state_types::{StateKey, StateValue};
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

fn encode_key<K: serde::Serialize>(out: &mut Vec<u8>, name: &str, key: &K) -> Result<()> {
    bincode::serialize_into(out, key).map_err(StateError::codec_of("key", name))
}

/// Moves the dirty entries of a cache into `batch` and marks them clean; entries that are gone are
/// left for the caller to drop.
fn flush_slots<Q, V: StateValue>(
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
fn take_dirty_row<Q, V: StateValue>(
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

fn decode<T: serde::de::DeserializeOwned>(bytes: &mut &[u8], what: impl FnOnce() -> String) -> Result<T> {
    bincode::deserialize_from(bytes).map_err(|e| StateError::Codec { what: what(), source: e })
}

/// Bytes a cached entry of `Q` and `S` takes in a hash map besides its heap: the pair and a
/// control byte, times 3/2 for the spare capacity of a table that doubles when full.
fn entry_overhead<Q, S>() -> usize {
    (std::mem::size_of::<(Q, S)>() + 1) * 3 / 2
}

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

/// Cache of a `MapState`: one row per (key, user key).
pub(crate) struct MapTable<K, UK, UV> {
    name: String,
    state_id: u32,
    bound: CacheBound,
    /// Spilled since [`StateTable::memory`] was last asked.
    spilled: bool,
    cache: AHashMap<(K, UK), Slot<UV>>,
    /// Every stored entry is in the cache (after [`MapTable::preload`], until the cache spills):
    /// an entry missing from the cache is absent, no RocksDB read needed.
    complete: bool,
}

impl<K: StateKey, UK: StateKey, UV: StateValue> MapTable<K, UK, UV> {
    pub(crate) fn new(name: String, state_id: u32, capacity: usize) -> Self {
        let bound = CacheBound::new(capacity, entry_overhead::<(K, UK), Slot<UV>>());
        MapTable { name, state_id, bound, spilled: false, cache: AHashMap::new(), complete: false }
    }

    /// Loads every stored entry of `range` into the cache, if they fit, and returns them.
    pub(crate) fn preload(&mut self, db: &mut Db, range: KeyGroupRange) -> Result<Vec<(u16, K, UK, UV)>> {
        let rows = self.scan(db, range)?;
        if rows.len() + self.cache.len() < self.bound.capacity() {
            for (key_group, key, user_key, value) in &rows {
                self.cache
                    .entry((key.clone(), user_key.clone()))
                    .or_insert_with(|| Slot::loaded(*key_group, Some(value.clone())));
            }
            self.complete = true;
        }
        Ok(rows)
    }

    fn key_prefix(&self, key: &K, key_group: u16) -> Result<Vec<u8>> {
        let mut row = Vec::with_capacity(32);
        encode_prefix(&mut row, key_group, self.state_id);
        encode_key(&mut row, &self.name, key)?;
        Ok(row)
    }

    fn flush_to_db(&mut self, db: &mut Db) -> Result<()> {
        let mut batch = db.batch();
        self.flush_into(&mut batch)?;
        db.write(batch)
    }

    pub(crate) fn get(&mut self, db: &mut Db, key: &K, user_key: &UK, key_group: u16) -> Result<Option<UV>> {
        let composite = (key.clone(), user_key.clone());
        if let Some(slot) = self.cache.get(&composite) {
            return Ok(slot.value().cloned());
        }
        if self.complete {
            return Ok(None);
        }
        let mut row = self.key_prefix(key, key_group)?;
        encode_key(&mut row, &self.name, user_key)?;
        let value = match db.get(&row)? {
            None => None,
            Some(bytes) => Some(bincode::deserialize(&bytes).map_err(StateError::codec_of("value", &self.name))?),
        };
        self.make_room(db)?;
        self.cache.insert(composite, Slot::loaded(key_group, value.clone()));
        Ok(value)
    }

    fn make_room(&mut self, db: &mut Db) -> Result<()> {
        if self.cache.len() >= self.bound.capacity() {
            self.spilled = true;
            self.flush_to_db(db)?;
            self.cache.clear();
            self.complete = false;
        }
        Ok(())
    }

    /// Sets (or with `None` removes) an entry without reading it. `known_absent`: the caller
    /// guarantees RocksDB holds no row for it, so a later removal needs no tombstone.
    pub(crate) fn set(
        &mut self,
        db: &mut Db,
        key: &K,
        user_key: UK,
        key_group: u16,
        value: Option<UV>,
        known_absent: bool,
    ) -> Result<()> {
        self.make_room(db)?;
        match self.cache.entry((key.clone(), user_key)) {
            Entry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                slot.set_value(value);
                slot.set_dirty(true);
                if slot.is_gone() {
                    occupied.remove();
                }
            }
            Entry::Vacant(vacant) => {
                let in_db = !known_absent && !self.complete;
                let slot = Slot::new(key_group, value, true, in_db);
                if !slot.is_gone() {
                    vacant.insert(slot);
                }
            }
        }
        Ok(())
    }

    /// Replaces an entry with `f(old)`, with one lookup.
    pub(crate) fn update<R>(
        &mut self,
        db: &mut Db,
        key: &K,
        user_key: &UK,
        key_group: u16,
        f: impl FnOnce(Option<UV>) -> (Option<UV>, R),
    ) -> Result<R> {
        if let Entry::Occupied(mut occupied) = self.cache.entry((key.clone(), user_key.clone())) {
            let slot = occupied.get_mut();
            let (value, r) = f(slot.take_value());
            slot.set_value(value);
            slot.set_dirty(true);
            if slot.is_gone() {
                occupied.remove();
            }
            return Ok(r);
        }
        if self.complete {
            let (value, r) = f(None);
            if value.is_some() {
                self.make_room(db)?;
                let slot = Slot::new(key_group, value, true, false);
                self.cache.insert((key.clone(), user_key.clone()), slot);
            }
            return Ok(r);
        }
        let old = self.get(db, key, user_key, key_group)?;
        let (value, r) = f(old);
        if let Entry::Occupied(mut occupied) = self.cache.entry((key.clone(), user_key.clone())) {
            let slot = occupied.get_mut();
            slot.set_value(value);
            slot.set_dirty(true);
            if slot.is_gone() {
                occupied.remove();
            }
        }
        Ok(r)
    }

    /// Every stored entry of this state in `range`: (key group, key, user key, value).
    pub(crate) fn scan(&mut self, db: &mut Db, range: KeyGroupRange) -> Result<Vec<(u16, K, UK, UV)>> {
        self.flush_to_db(db)?;
        let name = &self.name;
        let mut out = Vec::new();
        scan_rows(db.raw(), range, self.state_id, |key_group, mut row, mut value| {
            let key: K = decode(&mut row, || format!("key of '{name}'"))?;
            let user_key: UK = decode(&mut row, || format!("user key of '{name}'"))?;
            let value: UV = decode(&mut value, || format!("value of '{name}'"))?;
            out.push((key_group, key, user_key, value));
            Ok(())
        })?;
        Ok(out)
    }

    pub(crate) fn entries(&mut self, db: &mut Db, key: &K, key_group: u16) -> Result<Vec<(UK, UV)>> {
        // Make RocksDB authoritative for this state, then scan the key's rows.
        self.flush_to_db(db)?;
        let prefix = self.key_prefix(key, key_group)?;
        let mut out = Vec::new();
        for item in db.raw().prefix_iterator(&prefix) {
            let (row, value) = item.map_err(StateError::rocks("scan", db.raw().path()))?;
            if !row.starts_with(&prefix) {
                break;
            }
            let user_key: UK =
                bincode::deserialize(&row[prefix.len()..]).map_err(StateError::codec_of("user key", &self.name))?;
            let value: UV = bincode::deserialize(&value).map_err(StateError::codec_of("value", &self.name))?;
            out.push((user_key, value));
        }
        Ok(out)
    }
}

impl<K: StateKey, UK: StateKey, UV: StateValue> StateTable for MapTable<K, UK, UV> {
    fn flush_into(&mut self, batch: &mut ChunkedBatch) -> Result<()> {
        let name = &self.name;
        flush_slots(&mut self.cache, batch, (name, self.state_id), &mut self.bound, |row, (key, user_key)| {
            encode_key(row, name, key)?;
            encode_key(row, name, user_key)
        })?;
        self.cache.retain(|_, slot| !slot.is_gone());
        Ok(())
    }

    fn cached(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.len() * self.bound.entry_bytes())
    }

    fn memory(&mut self) -> (usize, bool) {
        (self.cached().1, std::mem::take(&mut self.spilled))
    }

    fn set_byte_budget(&mut self, bytes: Option<usize>) {
        self.bound.set_bytes(bytes);
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
