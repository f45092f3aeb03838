//! A keyed stream's key selector: the one place a record's key, and its key group, are computed.

use std::hash::Hash;
use std::sync::Arc;

use rill_state::key_group_of;

/// Appends one value per record of a batch (a key, or a key group) to the vector.
type PerBatch<T, V> = Arc<dyn Fn(&[T], &mut Vec<V>) + Send + Sync>;

/// Appends the key group of each record of a batch to the vector: what the exchange of a keyed
/// stream routes by (a [`KeySelector`] with its key type erased).
pub(crate) type KeyGroups<T> = PerBatch<T, u16>;

/// The key of a keyed stream's records, built once by `key_by` from the user's `|record| key`.
///
/// For a batch it yields the records' keys ([`KeySelector::keys`]) or their key groups (what the
/// exchange routes by), each in one dynamic call compiled for the selector's own type, so a
/// batch of a thousand records costs one indirect call, not a thousand. The key group travels
/// with the record to the keyed subtask ([`crate::OperatorContext::key_groups`]), so keyed operators
/// never hash a key again.
pub struct KeySelector<T, K> {
    one: Arc<dyn Fn(&T) -> K + Send + Sync>,
    keys: PerBatch<T, K>,
    key_groups: KeyGroups<T>,
}

impl<T, K> Clone for KeySelector<T, K> {
    fn clone(&self) -> Self {
        KeySelector { one: self.one.clone(), keys: self.keys.clone(), key_groups: self.key_groups.clone() }
    }
}

impl<T: 'static, K: Hash + 'static> KeySelector<T, K> {
    /// The selector `key`, hashing keys into `max_parallelism` key groups (the job's
    /// [`crate::JobConfig::max_parallelism`]; tests of one operator build their own).
    pub fn new<F>(key: F, max_parallelism: u16) -> Self
    where
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        let for_keys = key.clone();
        let for_groups = key.clone();
        KeySelector {
            keys: Arc::new(move |batch: &[T], keys: &mut Vec<K>| keys.extend(batch.iter().map(|t| for_keys(t)))),
            key_groups: Arc::new(move |batch: &[T], groups: &mut Vec<u16>| {
                groups.extend(batch.iter().map(|t| key_group_of(&for_groups(t), max_parallelism)))
            }),
            one: key,
        }
    }
}

impl<T, K> KeySelector<T, K> {
    /// The key of one record.
    #[inline]
    pub fn key(&self, record: &T) -> K {
        (self.one)(record)
    }

    /// Replaces the contents of `keys` with the key of each record of `batch`, in order.
    #[inline]
    pub fn keys(&self, batch: &[T], keys: &mut Vec<K>) {
        keys.clear();
        (self.keys)(batch, keys);
    }

    /// The key groups of a batch's records, for the exchange.
    pub(crate) fn key_groups(&self) -> KeyGroups<T> {
        self.key_groups.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gets_one_key_and_one_key_group_per_record_in_order() {
        let selector = KeySelector::new(|n: &u64| n % 10, 128);
        let batch: Vec<u64> = (0..25).collect();
        let (mut keys, mut groups) = (vec![99], vec![7]);
        selector.keys(&batch, &mut keys);
        groups.clear();
        selector.key_groups()(&batch, &mut groups);
        assert_eq!(keys, batch.iter().map(|n| n % 10).collect::<Vec<_>>());
        assert_eq!(groups, keys.iter().map(|k| key_group_of(k, 128)).collect::<Vec<_>>());
        assert_eq!(selector.key(&13), 3);
    }
}
