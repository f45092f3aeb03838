//! Timers of keyed operators: an in-memory ordered index, and the service that mirrors it in keyed
//! state so that timers survive checkpoints.
//!
//! Every registered timer is a row in a RocksDB-backed keyed `MapState<i64, ()>` (one for event
//! time, one for processing time), so a checkpoint holds exactly the timers that had not fired at
//! its barrier. At open the rows of the subtask's key groups are scanned to rebuild the in-memory
//! [`TimerQueue`], which orders timers by time; restoring at another parallelism hands each timer
//! to the subtask that owns its key, as for any keyed state.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use rill_runtime::Result;
use rill_state::{KeyedScope, MapState, StateKey};

use crate::keyed::StateRegistry;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the operator's watermark reaches the timer's timestamp.
    EventTime,
    /// Fires when the wall clock (processing time) reaches the timer's timestamp.
    ProcessingTime,
}

/// A deterministic hasher (fixed seeds), so timers of one timestamp fire in a reproducible order.
type Set<N> = HashSet<N, ahash::RandomState>;

fn new_set<N>() -> Set<N> {
    HashSet::with_hasher(ahash::RandomState::with_seeds(0x5eed, 0x7172, 0x11, 0x7e))
}

/// Timers ordered by time; each (time, entry) at most once.
#[derive(Debug, Clone)]
pub(crate) struct TimerQueue<N> {
    by_time: BTreeMap<i64, Set<N>>,
    len: usize,
}

impl<N> Default for TimerQueue<N> {
    fn default() -> Self {
        TimerQueue { by_time: BTreeMap::new(), len: 0 }
    }
}

impl<N: Hash + Eq> TimerQueue<N> {
    /// Adds a timer; returns whether it was new.
    #[inline]
    pub(crate) fn insert(&mut self, time: i64, entry: N) -> bool {
        let added = self.by_time.entry(time).or_insert_with(new_set).insert(entry);
        self.len += usize::from(added);
        added
    }

    /// Whether the timer is registered.
    #[cfg(test)]
    pub(crate) fn contains(&self, time: i64, entry: &N) -> bool {
        self.by_time.get(&time).is_some_and(|s| s.contains(entry))
    }

    /// Removes a timer; returns whether it was registered.
    pub(crate) fn remove(&mut self, time: i64, entry: &N) -> bool {
        let Some(set) = self.by_time.get_mut(&time) else { return false };
        let removed = set.remove(entry);
        if set.is_empty() {
            self.by_time.remove(&time);
        }
        self.len -= usize::from(removed);
        removed
    }

    /// Removes and returns every timer of the earliest time, if that time is at or before `up_to`.
    pub(crate) fn pop_due(&mut self, up_to: i64) -> Option<(i64, Set<N>)> {
        let entry = self.by_time.first_entry()?;
        if *entry.key() > up_to {
            return None;
        }
        let (time, set) = entry.remove_entry();
        self.len -= set.len();
        Some((time, set))
    }

    /// Number of registered timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The earliest registered time.
    #[cfg(test)]
    pub(crate) fn next_time(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }
}

/// Timers ordered by time, without deduplication or removal: for owners whose state tells
/// whether a popped timer is still wanted (window timers), appending is all a timer costs.
#[derive(Debug, Clone)]
pub(crate) struct TimerList<N> {
    by_time: BTreeMap<i64, Vec<N>>,
    len: usize,
}

impl<N> Default for TimerList<N> {
    fn default() -> Self {
        TimerList { by_time: BTreeMap::new(), len: 0 }
    }
}

impl<N> TimerList<N> {
    /// Adds a timer.
    #[inline]
    pub(crate) fn push(&mut self, time: i64, entry: N) {
        self.by_time.entry(time).or_default().push(entry);
        self.len += 1;
    }

    /// Removes and returns every timer of the earliest time, if that time is at or before `up_to`.
    pub(crate) fn pop_due(&mut self, up_to: i64) -> Option<(i64, Vec<N>)> {
        let entry = self.by_time.first_entry()?;
        if *entry.key() > up_to {
            return None;
        }
        let (time, entries) = entry.remove_entry();
        self.len -= entries.len();
        Some((time, entries))
    }

    /// Number of timers (stale ones included).
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The timers of one domain: the in-memory index and the keyed state that mirrors it.
#[derive(Debug)]
struct DomainTimers<K> {
    queue: TimerQueue<K>,
    state: MapState<K, i64, ()>,
}

/// Event-time and processing-time timers of a keyed operator, persisted in keyed state.
#[derive(Debug)]
pub(crate) struct TimerService<K> {
    event: DomainTimers<K>,
    processing: DomainTimers<K>,
}

impl<K: StateKey> TimerService<K> {
    /// Registers the operator's timer states and loads the timers of this subtask's key groups.
    pub(crate) fn open(registry: &mut StateRegistry<'_, K>) -> Result<Self> {
        let mut load = |name: &str| -> Result<DomainTimers<K>> {
            let state = registry.map::<i64, ()>(&format!("__timers/{name}"))?;
            let mut queue = TimerQueue::default();
            for (_, key, time, ()) in registry.backend().scan_map_state::<K, i64, ()>(state)? {
                queue.insert(time, key);
            }
            Ok(DomainTimers { queue, state })
        };
        Ok(TimerService { event: load("event")?, processing: load("processing")? })
    }

    fn domain(&mut self, domain: TimeDomain) -> &mut DomainTimers<K> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer for the scope's key (a no-op if it is registered already).
    pub(crate) fn register(&mut self, domain: TimeDomain, scope: &mut KeyedScope<'_, K>, time: i64) -> Result<()> {
        let timers = self.domain(domain);
        if timers.queue.insert(time, scope.key().clone()) {
            // The index mirrors the state: a timer missing from one is missing from the other.
            timers.state.insert_new(scope, time, ())?;
        }
        Ok(())
    }

    /// Deletes a timer of the scope's key (a no-op if it is not registered).
    pub(crate) fn delete(&mut self, domain: TimeDomain, scope: &mut KeyedScope<'_, K>, time: i64) -> Result<()> {
        let timers = self.domain(domain);
        if timers.queue.remove(time, scope.key()) {
            timers.state.remove(scope, time)?;
        }
        Ok(())
    }

    /// Takes the timers of the earliest due time (at or before `up_to`) out of the index. Each
    /// must then be [`TimerService::forget`]-ed from the state as it fires.
    pub(crate) fn pop_due(&mut self, domain: TimeDomain, up_to: i64) -> Option<(i64, Set<K>)> {
        self.domain(domain).queue.pop_due(up_to)
    }

    /// Removes a fired timer's row from keyed state.
    pub(crate) fn forget(&mut self, domain: TimeDomain, scope: &mut KeyedScope<'_, K>, time: i64) -> Result<()> {
        self.domain(domain).state.remove(scope, time)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_pop_in_time_order_and_only_when_due() {
        let mut q = TimerQueue::default();
        assert!(q.insert(30, "c"));
        assert!(q.insert(10, "a"));
        assert!(q.insert(10, "b"));
        assert!(!q.insert(10, "a"), "registering twice is a no-op");
        assert_eq!(q.len(), 3);
        assert!(q.pop_due(9).is_none());
        let (t, set) = q.pop_due(20).unwrap();
        assert_eq!((t, set.len()), (10, 2));
        assert!(q.pop_due(20).is_none());
        assert_eq!(q.next_time(), Some(30));
        assert_eq!(q.pop_due(i64::MAX).map(|(t, _)| t), Some(30));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_timer_list_pops_whole_times_in_order() {
        let mut l = TimerList::default();
        l.push(20, 'b');
        l.push(10, 'a');
        l.push(20, 'c');
        assert_eq!(l.len(), 3);
        assert_eq!(l.pop_due(15), Some((10, vec!['a'])));
        assert_eq!(l.pop_due(15), None);
        assert_eq!(l.pop_due(20), Some((20, vec!['b', 'c'])));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn removed_timers_do_not_fire() {
        let mut q = TimerQueue::default();
        q.insert(5, 1u64);
        q.insert(5, 2u64);
        assert!(q.remove(5, &1));
        assert!(!q.remove(5, &1));
        assert!(q.contains(5, &2) && !q.contains(5, &1));
        let (_, set) = q.pop_due(5).unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![2]);
        assert!(!q.remove(6, &3));
        assert_eq!(q.len(), 0);
    }
}
