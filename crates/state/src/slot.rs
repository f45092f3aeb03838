//! A cached entry of a state table: its value if any, and what the cache and its flush need to
//! know about it (dirty, in RocksDB, in a batch in flight, its key group and CLOCK position).

/// A cached entry. An enum whose two variants both carry the bookkeeping, so that rustc packs it
/// into the bytes after the tag: a `u64` count takes 16 bytes and its hash-table bucket (with a
/// `u64` key) 24, where an `Option<u64>` beside the same fields took 24 and 32. The all-cached
/// path is bounded by how much of that table the CPU's caches hold.
pub(crate) enum Slot<V> {
    /// No value (never set, removed, or absent from RocksDB).
    Absent {
        /// Position in the cache's CLOCK ring (value caches only); caches hold at most
        /// `MAX_CACHE_ENTRIES` entries.
        pos: u32,
        key_group: u16,
        /// `DIRTY`, `IN_DB` and `BATCHED`.
        flags: u8,
    },
    /// A value.
    Present {
        value: V,
        /// As in `Absent`.
        pos: u32,
        key_group: u16,
        flags: u8,
    },
}

/// Changed since the last flush.
const DIRTY: u8 = 1;
/// RocksDB holds a row for this entry (once the batches written so far are applied).
const IN_DB: u8 = 2;
/// Part of the most recent batch, which a background snapshot may still be applying.
const BATCHED: u8 = 4;

impl<V> Slot<V> {
    /// An entry as read from RocksDB.
    pub(crate) fn loaded(key_group: u16, value: Option<V>) -> Self {
        let in_db = value.is_some();
        Slot::new(key_group, value, false, in_db)
    }

    pub(crate) fn new(key_group: u16, value: Option<V>, dirty: bool, in_db: bool) -> Self {
        let mut slot = Slot::with(value, 0, key_group, 0);
        slot.set_dirty(dirty);
        slot.set_in_db(in_db);
        slot
    }

    #[inline]
    fn with(value: Option<V>, pos: u32, key_group: u16, flags: u8) -> Self {
        match value {
            Some(value) => Slot::Present { value, pos, key_group, flags },
            None => Slot::Absent { pos, key_group, flags },
        }
    }

    /// The value, if any.
    #[inline]
    pub(crate) fn value(&self) -> Option<&V> {
        match self {
            Slot::Present { value, .. } => Some(value),
            Slot::Absent { .. } => None,
        }
    }

    /// Takes the value out, leaving the entry without one.
    #[inline]
    pub(crate) fn take_value(&mut self) -> Option<V> {
        let (pos, key_group, flags) = (self.pos() as u32, self.key_group(), self.flags());
        match std::mem::replace(self, Slot::Absent { pos, key_group, flags }) {
            Slot::Present { value, .. } => Some(value),
            Slot::Absent { .. } => None,
        }
    }

    /// Replaces the value.
    #[inline]
    pub(crate) fn set_value(&mut self, value: Option<V>) {
        *self = Slot::with(value, self.pos() as u32, self.key_group(), self.flags());
    }

    /// Replaces the value with `f(old)`.
    #[inline]
    pub(crate) fn map_value(&mut self, f: impl FnOnce(Option<V>) -> Option<V>) {
        let old = self.take_value();
        self.set_value(f(old));
    }

    /// The key group of the entry's key.
    #[inline]
    pub(crate) fn key_group(&self) -> u16 {
        match self {
            Slot::Absent { key_group, .. } | Slot::Present { key_group, .. } => *key_group,
        }
    }

    #[inline]
    fn flags(&self) -> u8 {
        match self {
            Slot::Absent { flags, .. } | Slot::Present { flags, .. } => *flags,
        }
    }

    #[inline]
    fn set(&mut self, flag: u8, on: bool) {
        let (Slot::Absent { flags, .. } | Slot::Present { flags, .. }) = self;
        if on {
            *flags |= flag;
        } else {
            *flags &= !flag;
        }
    }

    /// Changed since the last flush.
    pub(crate) fn dirty(&self) -> bool {
        self.flags() & DIRTY != 0
    }

    #[inline]
    pub(crate) fn set_dirty(&mut self, on: bool) {
        self.set(DIRTY, on);
    }

    /// RocksDB holds a row for this entry (once the batches written so far are applied).
    pub(crate) fn in_db(&self) -> bool {
        self.flags() & IN_DB != 0
    }

    pub(crate) fn set_in_db(&mut self, on: bool) {
        self.set(IN_DB, on);
    }

    /// Part of the most recent batch, which a background snapshot may still be applying.
    pub(crate) fn batched(&self) -> bool {
        self.flags() & BATCHED != 0
    }

    pub(crate) fn set_batched(&mut self, on: bool) {
        self.set(BATCHED, on);
    }

    /// Position in the cache's CLOCK ring.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        match self {
            Slot::Absent { pos, .. } | Slot::Present { pos, .. } => *pos as usize,
        }
    }

    /// Moves the entry to `pos` in the CLOCK ring, which never holds more than
    /// `MAX_CACHE_ENTRIES` (`u32::MAX`) entries.
    pub(crate) fn set_pos(&mut self, to: usize) {
        let (Slot::Absent { pos, .. } | Slot::Present { pos, .. }) = self;
        *pos = to as u32;
    }

    /// Whether the entry can leave the cache: removed, not in RocksDB, not in an in-flight batch.
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self, Slot::Absent { flags, .. } if flags & (IN_DB | BATCHED) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_count_takes_a_24_byte_bucket_with_its_key() {
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 16);
        assert_eq!(std::mem::size_of::<(u64, Slot<u64>)>(), 24);
    }

    #[test]
    fn replacing_the_value_keeps_the_flags_position_and_key_group() {
        let mut slot = Slot::new(7, Some(1u64), true, false);
        slot.set_pos(42);
        slot.set_batched(true);
        slot.map_value(|old| old.map(|v| v + 1));
        assert_eq!((slot.value(), slot.pos(), slot.key_group()), (Some(&2), 42, 7));
        assert!(slot.dirty() && slot.batched() && !slot.in_db());
        slot.set_value(None);
        assert_eq!((slot.value(), slot.pos(), slot.key_group()), (None, 42, 7));
        assert!(slot.dirty() && slot.batched() && !slot.is_gone());
        slot.set_batched(false);
        assert!(slot.is_gone());
    }
}
