//! [`SubtaskLocal`]: state an operator builds in `on_open` and only touches through `&mut self`.

use std::sync::Mutex;

/// A value owned by one subtask's operator instance. Operators must be `Sync` (the job keeps a
/// prototype that is cloned per subtask) while what they build at open, keyed by user types, need
/// not be; the mutex makes it so, and access through `&mut self` never locks.
#[derive(Debug, Default)]
pub(crate) struct SubtaskLocal<T>(Mutex<T>);

impl<T> SubtaskLocal<T> {
    pub(crate) fn new(value: T) -> Self {
        SubtaskLocal(Mutex::new(value))
    }

    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
