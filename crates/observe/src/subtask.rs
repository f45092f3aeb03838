//! The counters one subtask keeps while it runs: relaxed atomics, written by the subtask's thread
//! only (so an addition is a plain load and store, no locked read-modify-write on the hot path),
//! read by the sampler.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// No watermark yet.
const NO_WATERMARK: i64 = i64::MIN;

/// Live counters of one subtask (kept across restarts of the job within the process, so counters
/// only grow). Counters are written by the subtask's thread alone; the checkpoint durations may
/// be set from its snapshot thread.
#[derive(Debug)]
pub struct SubtaskMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    idle_ns: AtomicU64,
    backpressured_ns: AtomicU64,
    watermark: AtomicI64,
    input_queued: AtomicU64,
    input_capacity: AtomicU64,
    checkpoint_sync_us: AtomicU64,
    checkpoint_async_us: AtomicU64,
    checkpoint_alignment_us: AtomicU64,
    state_cache_bytes: AtomicU64,
    state_memtable_bytes: AtomicU64,
    state_table_readers_bytes: AtomicU64,
}

impl Default for SubtaskMetrics {
    fn default() -> Self {
        SubtaskMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            watermark: AtomicI64::new(NO_WATERMARK),
            input_queued: AtomicU64::new(0),
            input_capacity: AtomicU64::new(0),
            checkpoint_sync_us: AtomicU64::new(0),
            checkpoint_async_us: AtomicU64::new(0),
            checkpoint_alignment_us: AtomicU64::new(0),
            state_cache_bytes: AtomicU64::new(0),
            state_memtable_bytes: AtomicU64::new(0),
            state_table_readers_bytes: AtomicU64::new(0),
        }
    }
}

/// One reading of a subtask's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SubtaskReading {
    pub(crate) records_in: u64,
    pub(crate) records_out: u64,
    pub(crate) idle_ns: u64,
    pub(crate) backpressured_ns: u64,
    pub(crate) watermark: Option<i64>,
    pub(crate) input_queued: u64,
    pub(crate) input_capacity: u64,
    pub(crate) checkpoint_sync_us: u64,
    pub(crate) checkpoint_async_us: u64,
    pub(crate) checkpoint_alignment_us: u64,
    pub(crate) state_cache_bytes: u64,
    pub(crate) state_memtable_bytes: u64,
    pub(crate) state_table_readers_bytes: u64,
}

/// Adds `n` to a counter that only one thread writes.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl SubtaskMetrics {
    /// Records taken in (read from the input channels, or produced by a source).
    #[inline]
    pub fn add_records_in(&self, n: u64) {
        add(&self.records_in, n);
    }

    /// Records taken in so far.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Relaxed)
    }

    /// Records sent on to the next subtasks.
    #[inline]
    pub fn add_records_out(&self, n: u64) {
        add(&self.records_out, n);
    }

    /// Time spent waiting for input.
    #[inline]
    pub fn add_idle(&self, d: Duration) {
        add(&self.idle_ns, d.as_nanos() as u64);
    }

    /// Time spent blocked on a full output channel.
    #[inline]
    pub fn add_backpressured(&self, d: Duration) {
        add(&self.backpressured_ns, d.as_nanos() as u64);
    }

    /// The subtask's current input watermark (milliseconds).
    #[inline]
    pub fn set_watermark(&self, ms: i64) {
        self.watermark.store(ms, Relaxed);
    }

    /// Batches waiting in the input channels, and how many they can hold.
    pub fn set_input_queue(&self, queued: u64, capacity: u64) {
        self.input_queued.store(queued, Relaxed);
        self.input_capacity.store(capacity, Relaxed);
    }

    /// Durations of the last checkpoint's synchronous part (operators snapshot).
    pub fn set_checkpoint_sync(&self, d: Duration) {
        self.checkpoint_sync_us.store(d.as_micros() as u64, Relaxed);
    }

    /// Duration of the last checkpoint's asynchronous part (state written in the background).
    pub fn set_checkpoint_async(&self, d: Duration) {
        self.checkpoint_async_us.store(d.as_micros() as u64, Relaxed);
    }

    /// Duration of the last barrier alignment (first barrier to last).
    pub fn set_checkpoint_alignment(&self, d: Duration) {
        self.checkpoint_alignment_us.store(d.as_micros() as u64, Relaxed);
    }

    /// Memory of the subtask's keyed state: its caches' estimated bytes (with the writes held back
    /// during a snapshot), RocksDB's memtables, and RocksDB's index and filter blocks.
    pub fn set_state_memory(&self, cache_bytes: u64, memtable_bytes: u64, table_readers_bytes: u64) {
        self.state_cache_bytes.store(cache_bytes, Relaxed);
        self.state_memtable_bytes.store(memtable_bytes, Relaxed);
        self.state_table_readers_bytes.store(table_readers_bytes, Relaxed);
    }

    pub(crate) fn read(&self) -> SubtaskReading {
        let watermark = self.watermark.load(Relaxed);
        SubtaskReading {
            records_in: self.records_in.load(Relaxed),
            records_out: self.records_out.load(Relaxed),
            idle_ns: self.idle_ns.load(Relaxed),
            backpressured_ns: self.backpressured_ns.load(Relaxed),
            watermark: (watermark != NO_WATERMARK).then_some(watermark),
            input_queued: self.input_queued.load(Relaxed),
            input_capacity: self.input_capacity.load(Relaxed),
            checkpoint_sync_us: self.checkpoint_sync_us.load(Relaxed),
            checkpoint_async_us: self.checkpoint_async_us.load(Relaxed),
            checkpoint_alignment_us: self.checkpoint_alignment_us.load(Relaxed),
            state_cache_bytes: self.state_cache_bytes.load(Relaxed),
            state_memtable_bytes: self.state_memtable_bytes.load(Relaxed),
            state_table_readers_bytes: self.state_table_readers_bytes.load(Relaxed),
        }
    }
}
