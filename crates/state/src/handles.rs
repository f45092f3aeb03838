//! Typed handles to keyed state and the scope (current key) they are read and written in.

use std::marker::PhantomData;

use crate::backend::KeyedBackend;
use crate::key_group::KeyGroupOf;
use crate::state_types::{StateKey, StateValue};
use crate::tables::{MapTable, ValueTable};
use crate::Result;

/// The types a handle is for, owning none of them (so handles are `Copy`, `Send` and `Sync`
/// whatever the types are).
pub(crate) type Marker<T> = PhantomData<fn() -> T>;

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

/// A single value of type `V` per key of type `K`. Typed by both: reading it in the scope of
/// another key type does not compile. Cheap to copy; the data lives in the subtask's state
/// backend.
#[derive(Debug)]
pub struct ValueState<K, V> {
    pub(crate) table: usize,
    pub(crate) _types: Marker<(K, V)>,
}

impl<K, V> Clone for ValueState<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for ValueState<K, V> {}

impl<K: StateKey, V: StateValue> ValueState<K, V> {
    /// The value for the current key, if set.
    pub fn get(&self, scope: &mut KeyedScope<'_, K>) -> Result<Option<V>> {
        let (table, db) = scope.backend.table_and_db::<ValueTable<K, V>>(self.table)?;
        table.get(db, scope.key, scope.key_group)
    }

    /// Sets the value for the current key.
    pub fn set(&self, scope: &mut KeyedScope<'_, K>, value: V) -> Result<()> {
        self.update(scope, |_| Some(value))
    }

    /// Removes the value for the current key.
    pub fn clear(&self, scope: &mut KeyedScope<'_, K>) -> Result<()> {
        self.update(scope, |_| None)
    }

    /// Replaces the value for the current key with `f(old)`, with one lookup.
    pub fn update(&self, scope: &mut KeyedScope<'_, K>, f: impl FnOnce(Option<V>) -> Option<V>) -> Result<()> {
        let (table, db) = scope.backend.table_and_db::<ValueTable<K, V>>(self.table)?;
        table.update(db, scope.key, scope.key_group, f)
    }
}

/// A list of values of type `V` per key of type `K`.
#[derive(Debug)]
pub struct ListState<K, V> {
    pub(crate) inner: ValueState<K, Vec<V>>,
}

impl<K, V> Clone for ListState<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for ListState<K, V> {}

impl<K: StateKey, V: StateValue> ListState<K, V> {
    /// All values for the current key, in insertion order (empty if none).
    pub fn get(&self, scope: &mut KeyedScope<'_, K>) -> Result<Vec<V>> {
        Ok(self.inner.get(scope)?.unwrap_or_default())
    }

    /// Appends a value for the current key.
    pub fn add(&self, scope: &mut KeyedScope<'_, K>, value: V) -> Result<()> {
        self.inner.update(scope, |old| {
            let mut list = old.unwrap_or_default();
            list.push(value);
            Some(list)
        })
    }

    /// Replaces all values for the current key.
    pub fn set(&self, scope: &mut KeyedScope<'_, K>, values: Vec<V>) -> Result<()> {
        self.inner.update(scope, |_| if values.is_empty() { None } else { Some(values) })
    }

    /// Removes all values for the current key.
    pub fn clear(&self, scope: &mut KeyedScope<'_, K>) -> Result<()> {
        self.inner.clear(scope)
    }
}

/// A map from `UK` to `UV` per key of type `K`, stored one entry per RocksDB row, so large maps
/// need not fit in memory.
#[derive(Debug)]
pub struct MapState<K, UK, UV> {
    pub(crate) table: usize,
    pub(crate) _types: Marker<(K, UK, UV)>,
}

impl<K, UK, UV> Clone for MapState<K, UK, UV> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, UK, UV> Copy for MapState<K, UK, UV> {}

impl<K: StateKey, UK: StateKey, UV: StateValue> MapState<K, UK, UV> {
    /// The value under `user_key` for the current key.
    pub fn get(&self, scope: &mut KeyedScope<'_, K>, user_key: &UK) -> Result<Option<UV>> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.get(db, scope.key, user_key, key_group)
    }

    /// Puts `value` under `user_key` for the current key.
    pub fn put(&self, scope: &mut KeyedScope<'_, K>, user_key: UK, value: UV) -> Result<()> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.set(db, scope.key, user_key, key_group, Some(value), false)
    }

    /// Puts `value` under a `user_key` that has no stored value yet, without reading it first. An
    /// entry inserted this way and removed before the next checkpoint never reaches RocksDB.
    ///
    /// The caller must know that nothing is stored under `user_key` for the current key (an
    /// operator that tracks its entries in memory, for instance); otherwise use [`MapState::put`].
    pub fn insert_new(&self, scope: &mut KeyedScope<'_, K>, user_key: UK, value: UV) -> Result<()> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.set(db, scope.key, user_key, key_group, Some(value), true)
    }

    /// Replaces the value under `user_key` for the current key with `f(old)` (`None`: absent,
    /// or remove), with one lookup; returns what `f` returns besides the new value.
    pub fn update<R>(
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
    pub fn take(&self, scope: &mut KeyedScope<'_, K>, user_key: &UK) -> Result<Option<UV>> {
        self.update(scope, user_key, |old| (None, old))
    }

    /// Removes `user_key` for the current key.
    pub fn remove(&self, scope: &mut KeyedScope<'_, K>, user_key: UK) -> Result<()> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.set(db, scope.key, user_key, key_group, None, false)
    }

    /// All entries for the current key, ordered by the user key's encoding.
    pub fn entries(&self, scope: &mut KeyedScope<'_, K>) -> Result<Vec<(UK, UV)>> {
        let key_group = scope.group();
        let (table, db) = scope.backend.table_and_db::<MapTable<K, UK, UV>>(self.table)?;
        table.entries(db, scope.key, key_group)
    }
}
