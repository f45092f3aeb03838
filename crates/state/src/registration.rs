//! Registering typed state handles on a [`KeyedBackend`], and scanning what a state holds.

use std::marker::PhantomData;

use crate::backend::KeyedBackend;
use crate::handles::{ListState, MapState, ValueState};
use crate::state_types::{StateKey, StateValue};
use crate::tables::{MapTable, ValueTable};
use crate::ttl::Expiring;
use crate::Result;

impl KeyedBackend {
    /// Registers (or looks up) a value state. `name` must be unique within the subtask.
    pub fn value_state<K: StateKey, V: StateValue>(&mut self, name: &str) -> Result<ValueState<K, V>> {
        let capacity = self.cache_entries_per_state();
        let table = self.register(name, |id| ValueTable::<K, V>::new(name.to_string(), id, capacity))?;
        Ok(ValueState { table, _types: PhantomData })
    }

    /// Registers (or looks up) a list state.
    pub fn list_state<K: StateKey, V: StateValue>(&mut self, name: &str) -> Result<ListState<K, V>> {
        Ok(ListState { inner: self.value_state::<K, Vec<V>>(name)? })
    }

    /// Registers (or looks up) a map state.
    pub fn map_state<K: StateKey, UK: StateKey, UV: StateValue>(&mut self, name: &str) -> Result<MapState<K, UK, UV>> {
        let capacity = self.cache_entries_per_state();
        let table = self.register(name, |id| MapTable::<K, UK, UV>::new(name.to_string(), id, capacity))?;
        Ok(MapState { table, _types: PhantomData })
    }

    /// Registers (or looks up) a value state whose values expire (see [`Expiring`]): compactions
    /// drop its rows once they have expired.
    pub fn expiring_value_state<K: StateKey, V: StateValue>(
        &mut self,
        name: &str,
    ) -> Result<ValueState<K, Expiring<V>>> {
        let state = self.value_state::<K, Expiring<V>>(name)?;
        self.mark_expiring(name);
        Ok(state)
    }

    /// Registers (or looks up) a map state whose entries expire one by one (see [`Expiring`]).
    pub fn expiring_map_state<K: StateKey, UK: StateKey, UV: StateValue>(
        &mut self,
        name: &str,
    ) -> Result<MapState<K, UK, Expiring<UV>>> {
        let state = self.map_state::<K, UK, Expiring<UV>>(name)?;
        self.mark_expiring(name);
        Ok(state)
    }

    /// Every stored entry of a value state over all keys of this backend's key groups, as (key
    /// group, key, value), in key-group order. Pending writes reach the working database first.
    /// For rebuilding in-memory indexes at open (timers, for instance).
    pub fn scan_value_state<K: StateKey, V: StateValue>(
        &mut self,
        state: ValueState<K, V>,
    ) -> Result<Vec<(u16, K, V)>> {
        let range = self.key_groups();
        let (table, db) = self.table_and_db::<ValueTable<K, V>>(state.table)?;
        table.scan(db, range)
    }

    /// Every stored entry of a map state over all keys of this backend's key groups, as (key
    /// group, key, user key, value), in key-group order. Pending writes reach the working
    /// database first. For rebuilding in-memory indexes at open (timers, windows).
    pub fn scan_map_state<K: StateKey, UK: StateKey, UV: StateValue>(
        &mut self,
        state: MapState<K, UK, UV>,
    ) -> Result<Vec<(u16, K, UK, UV)>> {
        let range = self.key_groups();
        let (table, db) = self.table_and_db::<MapTable<K, UK, UV>>(state.table)?;
        table.scan(db, range)
    }

    /// Like [`KeyedBackend::scan_map_state`], and also loads the entries into the state's cache
    /// when they fit: while the cache holds every entry, looking up an absent one costs no RocksDB
    /// read (until the cache spills). For operators that look up many entries that do not exist
    /// yet, such as windows.
    pub fn preload_map_state<K: StateKey, UK: StateKey, UV: StateValue>(
        &mut self,
        state: MapState<K, UK, UV>,
    ) -> Result<Vec<(u16, K, UK, UV)>> {
        let range = self.key_groups();
        let (table, db) = self.table_and_db::<MapTable<K, UK, UV>>(state.table)?;
        table.preload(db, range)
    }
}
