//! Buffered records per target stream, and cutting them into PutRecords batches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One serialized record on its way to Kinesis.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Unique within the subtask (order of arrival).
    pub(crate) id: u64,
    pub(crate) stream: Arc<str>,
    /// `stream/shard id` of the shard its hash key maps to, when the shard map is known.
    pub(crate) shard: Option<Arc<str>>,
    pub(crate) data: Vec<u8>,
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
    /// Failed attempts so far, throttling not counted.
    pub(crate) attempts: u32,
    /// Throttled answers so far.
    pub(crate) throttles: u32,
    /// When it was first throttled (retries of throttled records are bounded by time).
    pub(crate) throttled_since: Option<Instant>,
    pub(crate) enqueued: Instant,
}

impl Entry {
    /// What the record counts against the Kinesis size limits: data plus partition key.
    pub(crate) fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    /// Whether it failed before (a retry goes out without waiting for the linger time).
    pub(crate) fn is_retry(&self) -> bool {
        self.attempts > 0 || self.throttles > 0
    }
}

/// A batch for one stream.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) stream: Arc<str>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) bytes: usize,
}

/// Limits for cutting the next batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub(crate) max_records: usize,
    pub(crate) max_bytes: usize,
    pub(crate) linger: Duration,
    /// Send partial batches at once (a flush is waiting).
    pub(crate) flushing: bool,
}

#[derive(Debug)]
struct StreamQueue {
    stream: Arc<str>,
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Entries at the front that are retries: they go out without waiting for the linger time.
    urgent: usize,
}

impl StreamQueue {
    fn is_due(&self, now: Instant, limits: &BatchLimits) -> bool {
        let Some(front) = self.entries.front() else {
            return false;
        };
        limits.flushing
            || self.urgent > 0
            || self.entries.len() >= limits.max_records
            || self.bytes >= limits.max_bytes
            || now.saturating_duration_since(front.enqueued) >= limits.linger
    }
}

/// Records waiting to be sent, one FIFO queue per target stream.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    queues: Vec<StreamQueue>,
    next: usize,
}

impl Queues {
    fn queue_mut(&mut self, stream: &Arc<str>) -> &mut StreamQueue {
        let index = match self.queues.iter().position(|q| q.stream == *stream) {
            Some(i) => i,
            None => {
                self.queues.push(StreamQueue { stream: stream.clone(), entries: VecDeque::new(), bytes: 0, urgent: 0 });
                self.queues.len() - 1
            }
        };
        &mut self.queues[index]
    }

    /// Appends a new record to its stream's queue.
    pub(crate) fn push(&mut self, entry: Entry) {
        let queue = self.queue_mut(&entry.stream.clone());
        queue.bytes += entry.size();
        queue.entries.push_back(entry);
    }

    /// Puts records due for a retry at the front of their stream's queue, in their order.
    pub(crate) fn push_retries(&mut self, entries: Vec<Entry>) {
        for entry in entries.into_iter().rev() {
            let queue = self.queue_mut(&entry.stream.clone());
            queue.bytes += entry.size();
            queue.urgent += 1;
            queue.entries.push_front(entry);
        }
    }

    /// Takes the next due batch, visiting streams round robin: the entries of a due queue that
    /// `admit` accepts, in queue order, up to the limits (entries it refuses stay queued in
    /// their order). `None` if no due queue has an admissible entry.
    pub(crate) fn next_batch(
        &mut self,
        now: Instant,
        limits: &BatchLimits,
        admit: &mut dyn FnMut(&Entry) -> bool,
    ) -> Option<Batch> {
        let n = self.queues.len();
        for step in 0..n {
            let index = (self.next + step) % n;
            if !self.queues[index].is_due(now, limits) {
                continue;
            }
            let queue = &mut self.queues[index];
            let mut entries = Vec::with_capacity(limits.max_records.min(queue.entries.len()));
            let mut kept = VecDeque::new();
            let mut bytes = 0;
            while let Some(entry) = queue.entries.pop_front() {
                let size = entry.size();
                let full =
                    entries.len() >= limits.max_records || (!entries.is_empty() && bytes + size > limits.max_bytes);
                if full {
                    queue.entries.push_front(entry);
                    break;
                }
                if admit(&entry) {
                    bytes += size;
                    if entry.is_retry() {
                        queue.urgent = queue.urgent.saturating_sub(1);
                    }
                    entries.push(entry);
                } else {
                    kept.push_back(entry);
                }
            }
            while let Some(entry) = kept.pop_back() {
                queue.entries.push_front(entry);
            }
            if entries.is_empty() {
                continue;
            }
            queue.bytes -= bytes;
            self.next = (index + 1) % n;
            return Some(Batch { stream: queue.stream.clone(), entries, bytes });
        }
        None
    }

    /// When the earliest non-due queue becomes due by lingering.
    pub(crate) fn next_linger_deadline(&self, linger: Duration) -> Option<Instant> {
        self.queues.iter().filter_map(|q| q.entries.front()).map(|front| front.enqueued + linger).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: &Arc<str>, size: usize, at: Instant) -> Entry {
        Entry {
            id: 0,
            stream: stream.clone(),
            shard: None,
            data: vec![0; size.saturating_sub(1)],
            partition_key: "k".into(),
            explicit_hash_key: None,
            attempts: 0,
            throttles: 0,
            throttled_since: None,
            enqueued: at,
        }
    }

    fn all(_: &Entry) -> bool {
        true
    }

    #[test]
    fn refused_entries_stay_queued_in_order_while_others_go() {
        let now = Instant::now();
        let s: Arc<str> = "s".into();
        let mut q = Queues::default();
        for i in 0..6 {
            let mut e = entry(&s, 10, now);
            e.id = i;
            q.push(e);
        }
        let l = limits(500, 5 << 20, true);
        let odd = q.next_batch(now, &l, &mut |e| e.id % 2 == 1).unwrap();
        assert_eq!(odd.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3, 5]);
        assert!(q.next_batch(now, &l, &mut |e| e.id % 2 == 1).is_none(), "nothing admissible is left");
        let rest = q.next_batch(now, &l, &mut all).unwrap();
        assert_eq!(rest.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [0, 2, 4]);
    }

    fn limits(max_records: usize, max_bytes: usize, flushing: bool) -> BatchLimits {
        BatchLimits { max_records, max_bytes, linger: Duration::from_millis(100), flushing }
    }

    #[test]
    fn a_batch_is_cut_at_the_record_limit() {
        let now = Instant::now();
        let s: Arc<str> = "s".into();
        let mut q = Queues::default();
        for _ in 0..1200 {
            q.push(entry(&s, 10, now));
        }
        let l = limits(500, 5 << 20, false);
        assert_eq!(q.next_batch(now, &l, &mut all).map(|b| b.entries.len()), Some(500));
        assert_eq!(q.next_batch(now, &l, &mut all).map(|b| b.entries.len()), Some(500));
        assert!(q.next_batch(now, &l, &mut all).is_none(), "200 records are not a full batch and have not lingered");
        let later = now + Duration::from_millis(100);
        assert_eq!(q.next_batch(later, &l, &mut all).map(|b| b.entries.len()), Some(200));
    }

    #[test]
    fn a_batch_is_cut_at_the_byte_limit() {
        let now = Instant::now();
        let s: Arc<str> = "s".into();
        let mut q = Queues::default();
        for _ in 0..6 {
            q.push(entry(&s, 1 << 20, now));
        }
        let batch = q.next_batch(now, &limits(500, 5 << 20, false), &mut all).unwrap();
        assert_eq!(batch.entries.len(), 5);
        assert_eq!(batch.bytes, 5 << 20);
    }

    #[test]
    fn flushing_sends_partial_batches_and_retries_go_first() {
        let now = Instant::now();
        let s: Arc<str> = "s".into();
        let mut q = Queues::default();
        q.push(entry(&s, 10, now));
        let mut retry = entry(&s, 20, now);
        retry.attempts = 1;
        q.push_retries(vec![retry]);
        let batch = q.next_batch(now, &limits(500, 5 << 20, false), &mut all).unwrap();
        assert_eq!(batch.entries.len(), 2, "an urgent retry makes the queue due");
        assert_eq!(batch.entries[0].attempts, 1);
        q.push(entry(&s, 10, now));
        assert!(q.next_batch(now, &limits(500, 5 << 20, false), &mut all).is_none());
        assert!(q.next_batch(now, &limits(500, 5 << 20, true), &mut all).is_some());
    }

    #[test]
    fn streams_are_served_round_robin() {
        let now = Instant::now();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut q = Queues::default();
        for _ in 0..4 {
            q.push(entry(&a, 10, now));
            q.push(entry(&b, 10, now));
        }
        let l = limits(2, 5 << 20, false);
        let order: Vec<String> =
            std::iter::from_fn(|| q.next_batch(now, &l, &mut all)).map(|b| b.stream.to_string()).collect();
        assert_eq!(order, ["a", "b", "a", "b"]);
    }
}
