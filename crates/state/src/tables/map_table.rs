//! The cache of a map state (`MapState`, timers, window contents): one row per key and user key.

use std::collections::hash_map::Entry;

use ahash::AHashMap;

use super::{decode, encode_key, encode_prefix, entry_overhead, flush_slots, scan_rows, StateTable};
use crate::db::{ChunkedBatch, Db};
use crate::memory::CacheBound;
use crate::slot::Slot;
use crate::state_types::{StateKey, StateValue};
use crate::{KeyGroupRange, Result, StateError};

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
