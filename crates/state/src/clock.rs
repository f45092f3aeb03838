//! CLOCK eviction for a state cache: when the cache is full, single entries leave it (dirty ones
//! written to RocksDB in one batch) instead of the whole cache being emptied.
//!
//! Every cached key sits once in a ring, with its `referenced` bit; each slot knows its position,
//! so a hit sets the bit without a second lookup. The hand sweeps the ring, clearing set bits and
//! choosing unset ones as victims (the second-chance approximation of LRU). A victim in the batch
//! a background snapshot may still be applying (`batched`) leaves with its row (see `tables.rs`).

use std::hash::Hash;

use ahash::AHashMap;

use crate::slot::Slot;

/// A key's place in the ring.
pub(crate) struct RingEntry<Q> {
    key: Q,
    /// Used since the hand last passed.
    referenced: bool,
    /// Chosen by the eviction under way.
    chosen: bool,
}

/// The ring of a cache's keys and the CLOCK hand.
pub(crate) struct Clock<Q> {
    ring: Vec<RingEntry<Q>>,
    hand: usize,
}

impl<Q> Default for Clock<Q> {
    fn default() -> Self {
        Clock { ring: Vec::new(), hand: 0 }
    }
}

impl<Q: Hash + Eq + Clone> Clock<Q> {
    /// Inserts a key that is not cached yet.
    pub(crate) fn insert<V>(&mut self, cache: &mut AHashMap<Q, Slot<V>>, key: Q, mut slot: Slot<V>) {
        slot.set_pos(self.ring.len());
        self.ring.push(RingEntry { key: key.clone(), referenced: false, chosen: false });
        cache.insert(key, slot);
    }

    /// Makes room for `n` keys in all.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.ring.reserve_exact(n.saturating_sub(self.ring.len()));
    }

    /// Marks the entry at `pos` (a slot's position) as used.
    #[inline]
    pub(crate) fn touch(&mut self, pos: usize) {
        if let Some(entry) = self.ring.get_mut(pos) {
            entry.referenced = true;
        }
    }

    /// Removes a cached key, returning its slot.
    pub(crate) fn remove<V>(&mut self, cache: &mut AHashMap<Q, Slot<V>>, key: &Q) -> Option<Slot<V>> {
        let slot = cache.remove(key)?;
        let pos = slot.pos();
        self.ring.swap_remove(pos);
        if let Some(moved) = self.ring.get(pos) {
            if let Some(s) = cache.get_mut(&moved.key) {
                s.set_pos(pos);
            }
        }
        Some(slot)
    }

    /// Drops the entries that are gone (removed, not in RocksDB, not in a batch in flight) and
    /// renumbers the ring: after a barrier's flush, which visits every entry anyway.
    pub(crate) fn retain_live<V>(&mut self, cache: &mut AHashMap<Q, Slot<V>>) {
        cache.retain(|_, slot| !slot.is_gone());
        self.ring.retain(|entry| cache.contains_key(&entry.key));
        for (pos, entry) in self.ring.iter().enumerate() {
            if let Some(slot) = cache.get_mut(&entry.key) {
                slot.set_pos(pos);
            }
        }
        if self.hand >= self.ring.len() {
            self.hand = 0;
        }
    }

    /// Up to `n` keys to evict, chosen by the hand (at most two sweeps of the ring).
    pub(crate) fn victims(&mut self, n: usize) -> Vec<Q> {
        let mut victims = Vec::with_capacity(n);
        let mut steps = 2 * self.ring.len();
        while victims.len() < n && steps > 0 && !self.ring.is_empty() {
            steps -= 1;
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let entry = &mut self.ring[self.hand];
            self.hand += 1;
            if entry.chosen {
                continue;
            }
            if entry.referenced {
                entry.referenced = false;
                continue;
            }
            entry.chosen = true;
            victims.push(entry.key.clone());
        }
        victims
    }

    /// Number of keys in the ring (always the cache's size).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_of(keys: &[u64]) -> (AHashMap<u64, Slot<u64>>, Clock<u64>) {
        let (mut cache, mut clock) = (AHashMap::new(), Clock::default());
        for k in keys {
            clock.insert(&mut cache, *k, Slot::loaded(0, Some(*k)));
        }
        (cache, clock)
    }

    fn assert_consistent(cache: &AHashMap<u64, Slot<u64>>, clock: &Clock<u64>) {
        assert_eq!(clock.len(), cache.len());
        for (key, slot) in cache {
            assert_eq!(clock.ring[slot.pos()].key, *key);
        }
    }

    #[test]
    fn an_entry_used_since_the_last_sweep_gets_a_second_chance() {
        let (cache, mut clock) = cache_of(&[1, 2, 3, 4]);
        clock.touch(cache[&1].pos());
        clock.touch(cache[&3].pos());
        assert_eq!(clock.victims(2), vec![2, 4]);
    }

    #[test]
    fn removing_keeps_ring_and_positions_consistent() {
        let (mut cache, mut clock) = cache_of(&[1, 2, 3, 4, 5]);
        clock.remove(&mut cache, &2);
        clock.remove(&mut cache, &5);
        assert_consistent(&cache, &clock);
        let gone = cache.get_mut(&3).unwrap(); // removed, never in RocksDB
        gone.set_value(None);
        gone.set_in_db(false);
        clock.retain_live(&mut cache);
        assert_eq!(clock.len(), 2);
        assert_consistent(&cache, &clock);
    }
}
