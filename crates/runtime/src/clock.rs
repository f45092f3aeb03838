//! Processing time: the wall clock operators read, replaceable by a manual clock in tests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The processing-time clock of a subtask, in milliseconds since the Unix epoch.
///
/// Jobs use the system clock; tests use a manual clock, moved only by the test, so that
/// processing-time timers and idleness timeouts are deterministic.
///
/// ```
/// use rill_runtime::ProcessingClock;
/// let clock = ProcessingClock::manual(1_000);
/// clock.set(1_500);
/// assert_eq!(clock.now_ms(), 1_500);
/// assert!(ProcessingClock::system().now_ms() > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProcessingClock {
    manual: Option<Arc<AtomicI64>>,
}

impl ProcessingClock {
    /// The system's wall clock.
    pub fn system() -> Self {
        ProcessingClock { manual: None }
    }

    /// A clock that stays at `start_ms` until [`ProcessingClock::set`] moves it. Clones share it.
    pub fn manual(start_ms: i64) -> Self {
        ProcessingClock { manual: Some(Arc::new(AtomicI64::new(start_ms))) }
    }

    /// Current processing time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Moves a manual clock to `now_ms` (ignored by the system clock).
    pub fn set(&self, now_ms: i64) {
        if let Some(t) = &self.manual {
            t.store(now_ms, Ordering::SeqCst);
        }
    }

    /// Whether this is a manual (test) clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}
