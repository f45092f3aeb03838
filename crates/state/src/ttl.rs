//! Time to live of keyed state: values stored with the time they expire, and the RocksDB
//! compaction filter that drops expired rows (Flink's `cleanupInRocksdbCompactFilter`).
//!
//! A value of a state with a time to live is stored as [`Expiring`]: its expiry time first, so the
//! compaction filter reads those 8 bytes of a row without decoding the value. Which states expire
//! is known by their id (the 4 bytes after the key group in every row key). Handles never return
//! an expired value (the check is theirs, at read); the filter only reclaims the space of rows
//! nobody reads again. A row older than one the filter drops expired earlier still, so whatever a
//! drop uncovers is expired as well.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::tables::PREFIX_LEN;

/// A value with the processing time (milliseconds since the Unix epoch) at which it expires.
/// Field order matters: the expiry is encoded first (bincode: 8 bytes, little-endian).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring<V> {
    /// When the value expires.
    pub expires_at_ms: i64,
    /// The value.
    pub value: V,
}

impl<V> Expiring<V> {
    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms <= now_ms
    }
}

/// The ids of a database's states whose rows expire, shared with its compaction filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpiringStates(Arc<RwLock<HashSet<u32>>>);

impl ExpiringStates {
    /// Marks state `id` as holding [`Expiring`] values.
    pub(crate) fn add(&self, id: u32) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(id);
    }

    /// Whether the row `key` → `value` is of an expiring state and expired at `now_ms`.
    pub(crate) fn expired(&self, key: &[u8], value: &[u8], now_ms: i64) -> bool {
        let (Some(id), Some(expiry)) = (key.get(2..PREFIX_LEN), value.get(..8)) else { return false };
        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let expiry = i64::from_le_bytes([
            expiry[0], expiry[1], expiry[2], expiry[3], expiry[4], expiry[5], expiry[6], expiry[7],
        ]);
        expiry <= now_ms && self.0.read().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }

    /// Sets the compaction filter dropping expired rows on `opts`.
    pub(crate) fn filter_compactions(&self, opts: &mut rocksdb::Options) {
        let states = self.clone();
        opts.set_compaction_filter("rill-state-ttl", move |_level: u32, key: &[u8], value: &[u8]| {
            match states.expired(key, value, now_ms()) {
                true => rocksdb::CompactionDecision::Remove,
                false => rocksdb::CompactionDecision::Keep,
            }
        });
    }
}

/// Processing time now, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_key(id: u32) -> Vec<u8> {
        let mut key = Vec::new();
        crate::tables::encode_prefix(&mut key, 7, id);
        key.extend_from_slice(b"key");
        key
    }

    #[test]
    fn a_row_of_an_expiring_state_is_expired_once_its_time_has_passed_and_other_states_never() {
        let states = ExpiringStates::default();
        states.add(42);
        let value = bincode::serialize(&Expiring { expires_at_ms: 1_000, value: "v".to_string() }).unwrap();
        assert!(!states.expired(&row_key(42), &value, 999));
        assert!(states.expired(&row_key(42), &value, 1_000));
        assert!(!states.expired(&row_key(43), &value, 5_000), "a state without a time to live");
        assert!(!states.expired(&row_key(42)[..4], &value, 5_000), "a key too short to name a state");
    }
}
