//! Typed handles to keyed state and the scope (current key) they are read and written in.

use std::marker::PhantomData;

use crate::backend::KeyedBackend;
use crate::key_group::KeyGroupOf;
use crate::state_types::{StateKey, StateValue};
use crate::tables::{MapTable, ValueTable};
use crate::Result;

/// Keyed state access for one key: what operators read and write state through.
pub struct KeyedScope<'a, K> {
    pub(crate) backend: &'a mut KeyedBackend,
    pub(crate) key: &'a K,
    pub(crate) key_group: KeyGroupOf,
}

impl<'a, K: StateKey> KeyedScope<'a, K> {
    /// A scope for `key`, whose key group the caller has computed.
    pub fn new(backend: &'a mut KeyedBackend, key: &'a K, key_group: u16) -> Self {
        KeyedScope { backend, key, key_group: KeyGroupOf::Given(key_group) }
    }

    /// A scope for `key` whose key group is hashed only if an access misses the caches: the
    /// fast path of an operator whose keys' state is cached.
    pub fn hashing(backend: &'a mut KeyedBackend, key: &'a K, max_parallelism: u16) -> Self {
        KeyedScope { backend, key, key_group: KeyGroupOf::Hashed { max_parallelism } }
    }

    /// The current key's group (hashed now if the scope was not given it).
    fn group(&self) -> u16 {
        self.key_group.of(self.key)
    }

    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }
}

/// A single value per key. Cheap to copy; the data lives in the subtask's state backend.
#[derive(Debug)]
pub struct ValueState<V> {
    pub(crate) table: usize,
    pub(crate) _value: PhantomData<fn() -> V>,
}

impl<V> Clone for ValueState<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ValueState<V> {}

impl<V: StateValue> ValueState<V> {
    /// The value for the current key, if set.
    pub fn get<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>) -> Result<Option<V>> {
        let (table, db) = scope.backend.table_and_db::<ValueTable<K, V>>(self.table)?;
        table.get(db, scope.key, scope.key_group)
    }

    /// Sets the value for the current key.
    pub fn set<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, value: V) -> Result<()> {
        self.update(scope, |_| Some(value))
    }

    /// Removes the value for the current key.
    pub fn clear<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>) -> Result<()> {
        self.update(scope, |_| None)
    }

    /// Replaces the value for the current key with `f(old)`, with one lookup.
    pub fn update<K: StateKey>(
        &self,
        scope: &mut KeyedScope<'_, K>,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<()> {
        let (table, db) = scope.backend.table_and_db::<ValueTable<K, V>>(self.table)?;
        table.update(db, scope.key, scope.key_group, f)
    }
}

/// A list of values per key.
#[derive(Debug)]
pub struct ListState<V> {
    pub(crate) inner: ValueState<Vec<V>>,
}

impl<V> Clone for ListState<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ListState<V> {}

impl<V: StateValue> ListState<V> {
    /// All values for the current key, in insertion order (empty if none).
    pub fn get<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>) -> Result<Vec<V>> {
        Ok(self.inner.get(scope)?.unwrap_or_default())
    }

    /// Appends a value for the current key.
    pub fn add<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, value: V) -> Result<()> {
        self.inner.update(scope, |old| {
            let mut list = old.unwrap_or_default();
            list.push(value);
            Some(list)
        })
    }

    /// Replaces all values for the current key.
    pub fn set<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, values: Vec<V>) -> Result<()> {
        self.inner.update(scope, |_| if values.is_empty() { None } else { Some(values) })
    }

    /// Removes all values for the current key.
    pub fn clear<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>) -> Result<()> {
        self.inner.clear(scope)
    }
}

/// A map per key, stored one entry per RocksDB row, so large maps need not fit in memory.
#[derive(Debug)]
pub struct MapState<UK, UV> {
    pub(crate) table: usize,
    pub(crate) _types: PhantomData<fn() -> (UK, UV)>,
}

impl<UK, UV> Clone for MapState<UK, UV> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<UK, UV> Copy for MapState<UK, UV> {}

impl<UK: StateKey, UV: StateValue> MapState<UK, UV> {
    /// The value under `user_key` for the current key.
    pub fn get<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, user_key: &UK) -> Result<Option<UV>> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.get(db, scope.key, user_key, key_group)
    }

    /// Puts `value` under `user_key` for the current key.
    pub fn put<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, user_key: UK, value: UV) -> Result<()> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.set(db, scope.key, user_key, key_group, Some(value), false)
    }

    /// Puts `value` under a `user_key` that has no stored value yet, without reading it first. An
    /// entry inserted this way and removed before the next checkpoint never reaches RocksDB.
    ///
    /// The caller must know that nothing is stored under `user_key` for the current key (an
    /// operator that tracks its entries in memory, for instance); otherwise use [`MapState::put`].
    pub fn insert_new<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, user_key: UK, value: UV) -> Result<()> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.set(db, scope.key, user_key, key_group, Some(value), true)
    }

    /// Replaces the value under `user_key` for the current key with `f(old)` (`None`: absent,
    /// or remove), with one lookup; returns what `f` returns besides the new value.
    pub fn update<K: StateKey, R>(
        &self,
        scope: &mut KeyedScope<'_, K>,
        user_key: &UK,
        f: impl FnOnce(Option<UV>) -> (Option<UV>, R),
    ) -> Result<R> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.update(db, scope.key, user_key, key_group, f)
    }

    /// Removes `user_key` for the current key and returns its value.
    pub fn take<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, user_key: &UK) -> Result<Option<UV>> {
        self.update(scope, user_key, |old| (None, old))
    }

    /// Removes `user_key` for the current key.
    pub fn remove<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>, user_key: UK) -> Result<()> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.set(db, scope.key, user_key, key_group, None, false)
    }

    /// All entries for the current key, ordered by the user key's encoding.
    pub fn entries<K: StateKey>(&self, scope: &mut KeyedScope<'_, K>) -> Result<Vec<(UK, UV)>> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.entries(db, scope.key, key_group)
    }
}
