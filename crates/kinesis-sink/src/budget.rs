//! The buffer limit of one sink subtask, shared by its thread and its writer: a record is
//! counted from the moment the subtask hands it over (while it still sits in the command
//! channel) until Kinesis stored it or it was dropped, so `max_buffered_records` and
//! `max_buffered_bytes` bound everything the subtask holds.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Default)]
struct Held {
    records: usize,
    bytes: usize,
    closed: bool,
}

/// Records and bytes held, with blocking acquisition.
#[derive(Debug)]
pub(crate) struct Budget {
    max_records: usize,
    max_bytes: usize,
    held: Mutex<Held>,
    freed: Condvar,
}

/// The writer stopped: nothing will free room any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl Budget {
    /// A budget of `max_records` records and `max_bytes` bytes.
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        Budget { max_records, max_bytes, held: Mutex::new(Held::default()), freed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes room for one record of `bytes`, waiting while the budget is full (a record larger
    /// than the whole byte budget waits for an empty buffer). Returns whether it had to wait.
    pub(crate) fn acquire(&self, bytes: usize) -> Result<bool, Closed> {
        let mut held = self.lock();
        let mut waited = false;
        loop {
            if held.closed {
                return Err(Closed);
            }
            let fits = held.records < self.max_records && (held.bytes + bytes <= self.max_bytes || held.records == 0);
            if fits {
                held.records += 1;
                held.bytes += bytes;
                return Ok(waited);
            }
            waited = true;
            held = self.freed.wait_timeout(held, Duration::from_millis(100)).map_or_else(|p| p.into_inner().0, |r| r.0);
        }
    }

    /// Frees room for `records` records of `bytes` bytes in all.
    pub(crate) fn release(&self, records: usize, bytes: usize) {
        let mut held = self.lock();
        held.records = held.records.saturating_sub(records);
        held.bytes = held.bytes.saturating_sub(bytes);
        drop(held);
        self.freed.notify_all();
    }

    /// The writer stopped: waiting subtasks give up.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.freed.notify_all();
    }

    /// Records held now.
    #[cfg(test)]
    pub(crate) fn records(&self) -> usize {
        self.lock().records
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn records_in_the_channel_count_until_the_writer_releases_them() {
        let budget = Arc::new(Budget::new(3, 1 << 20));
        for _ in 0..3 {
            assert_eq!(budget.acquire(10), Ok(false));
        }
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.acquire(10))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "a fourth record waits while three are held");
        budget.release(1, 10);
        assert_eq!(waiting.join().ok(), Some(Ok(true)));
        assert_eq!(budget.records(), 3);
    }

    #[test]
    fn bytes_are_bounded_too_but_one_oversized_record_still_fits_alone() {
        let budget = Budget::new(100, 100);
        assert_eq!(budget.acquire(150), Ok(false), "alone, a record larger than the budget goes");
        budget.release(1, 150);
        assert_eq!(budget.acquire(60), Ok(false));
        budget.close();
        assert_eq!(budget.acquire(60), Err(Closed), "a closed budget does not block");
    }
}
