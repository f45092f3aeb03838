//! Keyed state with a time to live (Flink's `StateTtlConfig`): a value or map entry expires a
//! fixed processing time after it was written (or also read), is never returned once expired,
//! and its RocksDB row is dropped by compaction. So an unbounded join or dedup keeps bounded state.
//!
//! Registered with [`StateRegistry::value_with_ttl`], [`StateRegistry::list_with_ttl`] and
//! [`StateRegistry::map_with_ttl`]; the handles take the [`KeyedContext`], whose processing clock
//! decides what has expired. A list's elements expire one by one (as Flink's); its row expires
//! with its newest element.

use std::time::Duration;

use rill_state::{Expiring, MapState, Result, StateKey, StateValue, ValueState};

use crate::keyed::{KeyedContext, StateRegistry};

/// When an entry's time to live starts again (Flink's `StateTtlConfig.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlUpdate {
    /// When it is created or written (the default).
    #[default]
    OnCreateAndWrite,
    /// Also when it is read.
    OnReadAndWrite,
}

/// The time to live of a keyed state (Flink's `StateTtlConfig`): expired entries are never
/// returned, and their rows are dropped when RocksDB compacts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtlConfig {
    ttl_ms: i64,
    update: TtlUpdate,
}

impl StateTtlConfig {
    /// Entries live `ttl` of processing time after they are created or written.
    pub fn new(ttl: Duration) -> Self {
        StateTtlConfig { ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX), update: TtlUpdate::default() }
    }

    /// The same, restarting the time to live as `update` says.
    pub fn with_update(self, update: TtlUpdate) -> Self {
        StateTtlConfig { update, ..self }
    }

    fn expiring<V>(&self, value: V, now_ms: i64) -> Expiring<V> {
        Expiring { expires_at_ms: now_ms.saturating_add(self.ttl_ms), value }
    }
}

/// A single value per key that expires: [`StateRegistry::value_with_ttl`].
pub struct TtlValueState<K, V> {
    inner: ValueState<K, Expiring<V>>,
    config: StateTtlConfig,
}

impl<K: StateKey, V: StateValue> TtlValueState<K, V> {
    /// The current key's value, unless it has expired.
    pub fn get(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Option<V>> {
        let now = ctx.current_processing_time();
        let Some(stored) = self.inner.get(ctx.state())? else { return Ok(None) };
        if stored.expired(now) {
            self.inner.clear(ctx.state())?;
            return Ok(None);
        }
        if self.config.update == TtlUpdate::OnReadAndWrite {
            self.inner.set(ctx.state(), self.config.expiring(stored.value.clone(), now))?;
        }
        Ok(Some(stored.value))
    }

    /// Sets the current key's value; it lives the time to live from now.
    pub fn set(&self, ctx: &mut KeyedContext<'_, K>, value: V) -> Result<()> {
        let now = ctx.current_processing_time();
        self.inner.set(ctx.state(), self.config.expiring(value, now))
    }

    /// Removes the current key's value.
    pub fn clear(&self, ctx: &mut KeyedContext<'_, K>) -> Result<()> {
        self.inner.clear(ctx.state())
    }
}

/// A list per key whose elements expire one by one: [`StateRegistry::list_with_ttl`]. The row
/// holds the elements with their expiry, and expires itself with the newest of them.
pub struct TtlListState<K, V> {
    inner: ValueState<K, Expiring<Vec<Expiring<V>>>>,
    config: StateTtlConfig,
}

/// The stored row of a list: its elements, expiring when the last of them does.
fn list_row<V>(elements: Vec<Expiring<V>>) -> Expiring<Vec<Expiring<V>>> {
    let expires_at_ms = elements.iter().map(|e| e.expires_at_ms).max().unwrap_or(i64::MIN);
    Expiring { expires_at_ms, value: elements }
}

impl<K: StateKey, V: StateValue> TtlListState<K, V> {
    /// The current key's elements that have not expired, in order (those that have are removed).
    pub fn get(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Vec<V>> {
        let now = ctx.current_processing_time();
        let Some(stored) = self.inner.get(ctx.state())? else { return Ok(Vec::new()) };
        let before = stored.value.len();
        let mut live: Vec<Expiring<V>> = stored.value.into_iter().filter(|e| !e.expired(now)).collect();
        let refresh = self.config.update == TtlUpdate::OnReadAndWrite;
        if refresh {
            live = live.into_iter().map(|e| self.config.expiring(e.value, now)).collect();
        }
        let values = live.iter().map(|e| e.value.clone()).collect();
        if live.is_empty() {
            self.inner.clear(ctx.state())?;
        } else if live.len() != before || refresh {
            self.inner.set(ctx.state(), list_row(live))?;
        }
        Ok(values)
    }

    /// Appends `value` to the current key's list; it lives the time to live from now.
    pub fn add(&self, ctx: &mut KeyedContext<'_, K>, value: V) -> Result<()> {
        let now = ctx.current_processing_time();
        let element = self.config.expiring(value, now);
        self.inner.update(ctx.state(), |held| {
            let mut elements = held.map(|row| row.value).unwrap_or_default();
            elements.push(element);
            Some(list_row(elements))
        })
    }

    /// Removes the current key's list.
    pub fn clear(&self, ctx: &mut KeyedContext<'_, K>) -> Result<()> {
        self.inner.clear(ctx.state())
    }
}

/// A map per key whose entries expire one by one: [`StateRegistry::map_with_ttl`].
pub struct TtlMapState<K, UK, UV> {
    inner: MapState<K, UK, Expiring<UV>>,
    config: StateTtlConfig,
}

impl<K: StateKey, UK: StateKey, UV: StateValue> TtlMapState<K, UK, UV> {
    /// The value under `user_key` for the current key, unless it has expired.
    pub fn get(&self, ctx: &mut KeyedContext<'_, K>, user_key: &UK) -> Result<Option<UV>> {
        let now = ctx.current_processing_time();
        let Some(stored) = self.inner.get(ctx.state(), user_key)? else { return Ok(None) };
        if stored.expired(now) {
            self.inner.remove(ctx.state(), user_key.clone())?;
            return Ok(None);
        }
        if self.config.update == TtlUpdate::OnReadAndWrite {
            self.inner.put(ctx.state(), user_key.clone(), self.config.expiring(stored.value.clone(), now))?;
        }
        Ok(Some(stored.value))
    }

    /// Puts `value` under `user_key` for the current key; it lives the time to live from now.
    pub fn put(&self, ctx: &mut KeyedContext<'_, K>, user_key: UK, value: UV) -> Result<()> {
        let now = ctx.current_processing_time();
        self.inner.put(ctx.state(), user_key, self.config.expiring(value, now))
    }

    /// Removes `user_key` for the current key.
    pub fn remove(&self, ctx: &mut KeyedContext<'_, K>, user_key: UK) -> Result<()> {
        self.inner.remove(ctx.state(), user_key)
    }

    /// The current key's entries that have not expired (those that have are removed).
    pub fn entries(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Vec<(UK, UV)>> {
        let now = ctx.current_processing_time();
        let mut live = Vec::new();
        for (user_key, stored) in self.inner.entries(ctx.state())? {
            if stored.expired(now) {
                self.inner.remove(ctx.state(), user_key)?;
            } else {
                live.push((user_key, stored.value));
            }
        }
        Ok(live)
    }
}

impl<K: StateKey> StateRegistry<'_, K> {
    /// A single value per key with a time to live.
    pub fn value_with_ttl<V: StateValue>(&mut self, name: &str, config: StateTtlConfig) -> Result<TtlValueState<K, V>> {
        let full = self.name(name);
        Ok(TtlValueState { inner: self.backend().expiring_value_state(&full)?, config })
    }

    /// A list per key whose elements each have a time to live.
    pub fn list_with_ttl<V: StateValue>(&mut self, name: &str, config: StateTtlConfig) -> Result<TtlListState<K, V>> {
        let full = self.name(name);
        Ok(TtlListState { inner: self.backend().expiring_value_state(&full)?, config })
    }

    /// A map per key whose entries each have a time to live.
    pub fn map_with_ttl<UK: StateKey, UV: StateValue>(
        &mut self,
        name: &str,
        config: StateTtlConfig,
    ) -> Result<TtlMapState<K, UK, UV>> {
        let full = self.name(name);
        Ok(TtlMapState { inner: self.backend().expiring_map_state(&full)?, config })
    }
}
