//! In-memory, bounded write-back caches in front of RocksDB, one per registered keyed state.
//!
//! Reads fill the cache from RocksDB; writes only mark entries dirty. At a barrier every dirty
//! entry goes into the subtask's single `WriteBatch`. When a cache reaches its bound, its dirty
//! entries are written to the working database and the cache is emptied, so state larger than
//! memory works (the working database is never restored from; checkpoints are).

use std::any::Any;

use ahash::AHashMap;
use rocksdb::WriteBatch;

use crate::db::Db;

use crate::handles::{StateKey, StateValue};
use crate::{Result, StateError};

/// A cache the backend can flush at a barrier without knowing its types.
pub(crate) trait StateTable: Send {
    /// Moves every dirty entry into `batch` and marks it clean.
    fn flush_into(&mut self, batch: &mut WriteBatch) -> Result<()>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Length of the `key group | state id` prefix of every RocksDB key.
pub(crate) const PREFIX_LEN: usize = 6;

pub(crate) fn encode_prefix(out: &mut Vec<u8>, key_group: u16, state_id: u32) {
    out.extend_from_slice(&key_group.to_be_bytes());
    out.extend_from_slice(&state_id.to_be_bytes());
}

fn encode_key<K: serde::Serialize>(out: &mut Vec<u8>, name: &str, key: &K) -> Result<()> {
    bincode::serialize_into(out, key).map_err(StateError::codec(format!("key of '{name}'")))
}

struct Slot<V> {
    key_group: u16,
    value: Option<V>,
    dirty: bool,
}

/// Cache of a `ValueState` (and `ListState`, a value holding a `Vec`).
pub(crate) struct ValueTable<K, V> {
    name: String,
    state_id: u32,
    capacity: usize,
    cache: AHashMap<K, Slot<V>>,
    buf: Vec<u8>,
}

impl<K: StateKey, V: StateValue> ValueTable<K, V> {
    pub(crate) fn new(name: String, state_id: u32, capacity: usize) -> Self {
        ValueTable { name, state_id, capacity: capacity.max(1), cache: AHashMap::new(), buf: Vec::new() }
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
            Some(bytes) => {
                bincode::deserialize(&bytes).map(Some).map_err(StateError::codec(format!("value of '{}'", self.name)))
            }
        }
    }

    fn make_room(&mut self, db: &mut Db) -> Result<()> {
        if self.cache.len() >= self.capacity {
            let mut batch = WriteBatch::default();
            self.flush_into(&mut batch)?;
            db.write(batch)?;
            self.cache.clear();
        }
        Ok(())
    }

    pub(crate) fn get(&mut self, db: &mut Db, key: &K, key_group: u16) -> Result<Option<V>> {
        if let Some(slot) = self.cache.get(key) {
            return Ok(slot.value.clone());
        }
        let value = self.load(db, key, key_group)?;
        self.make_room(db)?;
        self.cache.insert(key.clone(), Slot { key_group, value: value.clone(), dirty: false });
        Ok(value)
    }

    pub(crate) fn update(
        &mut self,
        db: &mut Db,
        key: &K,
        key_group: u16,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<()> {
        if let Some(slot) = self.cache.get_mut(key) {
            slot.value = f(slot.value.take());
            slot.dirty = true;
            return Ok(());
        }
        let old = self.load(db, key, key_group)?;
        self.make_room(db)?;
        self.cache.insert(key.clone(), Slot { key_group, value: f(old), dirty: true });
        Ok(())
    }
}

impl<K: StateKey, V: StateValue> StateTable for ValueTable<K, V> {
    fn flush_into(&mut self, batch: &mut WriteBatch) -> Result<()> {
        let (mut row, mut value) = (Vec::new(), Vec::new());
        for (key, slot) in self.cache.iter_mut().filter(|(_, s)| s.dirty) {
            row.clear();
            encode_prefix(&mut row, slot.key_group, self.state_id);
            encode_key(&mut row, &self.name, key)?;
            match &slot.value {
                Some(v) => {
                    value.clear();
                    bincode::serialize_into(&mut value, v)
                        .map_err(StateError::codec(format!("value of '{}'", self.name)))?;
                    batch.put(&row, &value);
                }
                None => batch.delete(&row),
            }
            slot.dirty = false;
        }
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Cache of a `MapState`: one row per (key, user key).
pub(crate) struct MapTable<K, UK, UV> {
    name: String,
    state_id: u32,
    capacity: usize,
    cache: AHashMap<(K, UK), Slot<UV>>,
}

impl<K: StateKey, UK: StateKey, UV: StateValue> MapTable<K, UK, UV> {
    pub(crate) fn new(name: String, state_id: u32, capacity: usize) -> Self {
        MapTable { name, state_id, capacity: capacity.max(1), cache: AHashMap::new() }
    }

    fn key_prefix(&self, key: &K, key_group: u16) -> Result<Vec<u8>> {
        let mut row = Vec::with_capacity(32);
        encode_prefix(&mut row, key_group, self.state_id);
        encode_key(&mut row, &self.name, key)?;
        Ok(row)
    }

    fn flush_to_db(&mut self, db: &mut Db) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.flush_into(&mut batch)?;
        db.write(batch)
    }

    pub(crate) fn get(&mut self, db: &mut Db, key: &K, user_key: &UK, key_group: u16) -> Result<Option<UV>> {
        let composite = (key.clone(), user_key.clone());
        if let Some(slot) = self.cache.get(&composite) {
            return Ok(slot.value.clone());
        }
        let mut row = self.key_prefix(key, key_group)?;
        encode_key(&mut row, &self.name, user_key)?;
        let value = match db.get(&row)? {
            None => None,
            Some(bytes) => {
                Some(bincode::deserialize(&bytes).map_err(StateError::codec(format!("value of '{}'", self.name)))?)
            }
        };
        if self.cache.len() >= self.capacity {
            self.flush_to_db(db)?;
            self.cache.clear();
        }
        self.cache.insert(composite, Slot { key_group, value: value.clone(), dirty: false });
        Ok(value)
    }

    pub(crate) fn set(&mut self, db: &mut Db, key: &K, user_key: UK, key_group: u16, value: Option<UV>) -> Result<()> {
        let composite = (key.clone(), user_key);
        if let Some(slot) = self.cache.get_mut(&composite) {
            slot.value = value;
            slot.dirty = true;
            return Ok(());
        }
        if self.cache.len() >= self.capacity {
            self.flush_to_db(db)?;
            self.cache.clear();
        }
        self.cache.insert(composite, Slot { key_group, value, dirty: true });
        Ok(())
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
            let user_key: UK = bincode::deserialize(&row[prefix.len()..])
                .map_err(StateError::codec(format!("user key of '{}'", self.name)))?;
            let value: UV =
                bincode::deserialize(&value).map_err(StateError::codec(format!("value of '{}'", self.name)))?;
            out.push((user_key, value));
        }
        Ok(out)
    }
}

impl<K: StateKey, UK: StateKey, UV: StateValue> StateTable for MapTable<K, UK, UV> {
    fn flush_into(&mut self, batch: &mut WriteBatch) -> Result<()> {
        let (mut row, mut value) = (Vec::new(), Vec::new());
        for ((key, user_key), slot) in self.cache.iter_mut().filter(|(_, s)| s.dirty) {
            row.clear();
            encode_prefix(&mut row, slot.key_group, self.state_id);
            encode_key(&mut row, &self.name, key)?;
            encode_key(&mut row, &self.name, user_key)?;
            match &slot.value {
                Some(v) => {
                    value.clear();
                    bincode::serialize_into(&mut value, v)
                        .map_err(StateError::codec(format!("value of '{}'", self.name)))?;
                    batch.put(&row, &value);
                }
                None => batch.delete(&row),
            }
            slot.dirty = false;
        }
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
