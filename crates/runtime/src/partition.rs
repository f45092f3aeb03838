//! Partitioning: which downstream subtask gets each record, and the exchange that sends batches.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};
use rill_observe::SubtaskMetrics;
use rill_state::subtask_for_key_group;

use crate::chain::Emitter;
use crate::context::TaskState;
use crate::{Barrier, Message, Result, RuntimeError, Watermark};

/// Records per batch on a channel.
pub(crate) const BATCH_SIZE: usize = 1024;

/// Appends the key group of each record of a batch to the vector (see [`Partitioner::Hash`]).
pub type BatchKeyGroups<T> = Arc<dyn Fn(&[T], &mut Vec<u16>) + Send + Sync>;

/// How records are spread over the subtasks of the next vertex.
pub enum Partitioner<T> {
    /// Subtask i sends to subtask i (round robin if the parallelisms differ).
    Forward,
    /// By key group of the record's key. The function appends the key group of each record of a
    /// batch to the vector: one dynamic call per batch, not per record.
    Hash(BatchKeyGroups<T>),
    /// Round robin.
    Rebalance,
    /// Every record to every subtask.
    Broadcast(Arc<dyn Fn(&T) -> T + Send + Sync>),
}

impl<T> Clone for Partitioner<T> {
    fn clone(&self) -> Self {
        match self {
            Partitioner::Forward => Partitioner::Forward,
            Partitioner::Hash(f) => Partitioner::Hash(f.clone()),
            Partitioner::Rebalance => Partitioner::Rebalance,
            Partitioner::Broadcast(f) => Partitioner::Broadcast(f.clone()),
        }
    }
}

/// The tail of a chain: partitions records into per-channel batches and sends them.
pub(crate) struct Exchange<T> {
    senders: Vec<Sender<Message<T>>>,
    buffers: Vec<Vec<T>>,
    partitioner: Partitioner<T>,
    subtask: usize,
    max_parallelism: u16,
    next_round_robin: usize,
    /// The key groups of the batch being routed (hash partitioning).
    key_groups: Vec<u16>,
    /// Whether the receivers were last told that this sender is idle.
    idle: bool,
    task: String,
    /// Records sent and time blocked on full channels (back-pressure).
    metrics: Arc<SubtaskMetrics>,
}

impl<T: Send + 'static> Exchange<T> {
    pub(crate) fn new(
        senders: Vec<Sender<Message<T>>>,
        partitioner: Partitioner<T>,
        info: &crate::TaskInfo,
        metrics: Arc<SubtaskMetrics>,
    ) -> Self {
        let n = senders.len();
        Exchange {
            buffers: (0..n).map(|_| Vec::with_capacity(BATCH_SIZE)).collect(),
            senders,
            partitioner,
            subtask: info.subtask,
            max_parallelism: info.max_parallelism,
            next_round_robin: info.subtask,
            key_groups: Vec::new(),
            idle: false,
            task: info.name(),
            metrics,
        }
    }

    /// Sends, counting the time blocked on a full channel as back-pressure.
    fn send(&self, channel: usize, message: Message<T>) -> Result<()> {
        let closed = || RuntimeError::ChannelClosed { task: self.task.clone() };
        match self.senders[channel].try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => {
                let blocked = Instant::now();
                let sent = self.senders[channel].send(message).map_err(|_| closed());
                self.metrics.add_backpressured(blocked.elapsed());
                sent
            }
            Err(TrySendError::Disconnected(_)) => Err(closed()),
        }
    }

    fn send_batch(&mut self, channel: usize) -> Result<()> {
        if self.buffers[channel].is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.buffers[channel], Vec::with_capacity(BATCH_SIZE));
        self.send(channel, Message::Data(batch))
    }

    fn broadcast(&mut self, message: impl Fn() -> Message<T>) -> Result<()> {
        self.flush()?;
        for channel in 0..self.senders.len() {
            self.send(channel, message())?;
        }
        Ok(())
    }

    /// The per-record path of keyed streams: the batch's key groups from one call, then one loop
    /// that sends each record to the owner of its key group.
    #[inline]
    fn route_keyed(&mut self, key_groups: &BatchKeyGroups<T>, batch: Vec<T>) -> Result<()> {
        let mut groups = std::mem::take(&mut self.key_groups);
        groups.clear();
        key_groups(&batch, &mut groups);
        if groups.len() != batch.len() {
            // A record without its key group would be dropped by the loop below.
            return Err(RuntimeError::Internal(format!(
                "{}: the hash partitioner gave {} key groups for a batch of {} records",
                self.task,
                groups.len(),
                batch.len()
            )));
        }
        let (n, max_parallelism) = (self.senders.len(), self.max_parallelism);
        for (record, group) in batch.into_iter().zip(&groups) {
            let channel = subtask_for_key_group(*group, max_parallelism, n);
            self.buffers[channel].push(record);
            if self.buffers[channel].len() >= BATCH_SIZE {
                self.send_batch(channel)?;
            }
        }
        self.key_groups = groups;
        Ok(())
    }

    #[inline]
    fn route(&mut self, record: T) -> Result<()> {
        let n = self.senders.len();
        let channel = match &self.partitioner {
            Partitioner::Forward if n == 1 => 0,
            Partitioner::Forward => {
                if self.subtask < n {
                    self.subtask
                } else {
                    self.subtask % n
                }
            }
            // Not reached from `push`, which routes keyed batches whole.
            Partitioner::Hash(key_groups) => {
                let key_groups = key_groups.clone();
                return self.route_keyed(&key_groups, vec![record]);
            }
            Partitioner::Rebalance => {
                self.next_round_robin = (self.next_round_robin + 1) % n;
                self.next_round_robin
            }
            Partitioner::Broadcast(clone) => {
                let clone = clone.clone();
                for channel in 0..n {
                    let copy = clone(&record);
                    self.buffers[channel].push(copy);
                    if self.buffers[channel].len() >= BATCH_SIZE {
                        self.send_batch(channel)?;
                    }
                }
                return Ok(());
            }
        };
        self.buffers[channel].push(record);
        if self.buffers[channel].len() >= BATCH_SIZE {
            self.send_batch(channel)?;
        }
        Ok(())
    }
}

impl<T: Send + 'static> Emitter<T> for Exchange<T> {
    fn push(&mut self, batch: Vec<T>, _: &mut TaskState) -> Result<()> {
        self.idle = false;
        self.metrics.add_records_out(batch.len() as u64);
        if let Partitioner::Hash(key_groups) = &self.partitioner {
            let key_groups = key_groups.clone();
            return self.route_keyed(&key_groups, batch);
        }
        for record in batch {
            self.route(record)?;
        }
        Ok(())
    }

    fn watermark(&mut self, watermark: Watermark, _: &mut TaskState) -> Result<()> {
        self.idle = false;
        self.broadcast(|| Message::Watermark(watermark))
    }

    fn idle(&mut self, _: &mut TaskState) -> Result<()> {
        if self.idle {
            return Ok(());
        }
        self.idle = true;
        self.broadcast(|| Message::Idle)
    }

    fn tick(&mut self, _: i64, _: &mut TaskState) -> Result<()> {
        Ok(())
    }

    fn prepare_barrier(&mut self, _: Barrier, _: &mut TaskState) -> Result<()> {
        self.flush()
    }

    fn forward_barrier(&mut self, barrier: Barrier, _: &mut TaskState) -> Result<()> {
        self.broadcast(|| Message::Barrier(barrier))
    }

    fn commit(&mut self, _: u64, _: &mut TaskState) -> Result<()> {
        Ok(())
    }

    fn end_of_input(&mut self, _: &mut TaskState) -> Result<()> {
        self.broadcast(|| Message::EndOfInput)
    }

    fn flush(&mut self) -> Result<()> {
        for channel in 0..self.buffers.len() {
            self.send_batch(channel)?;
        }
        Ok(())
    }

    fn close(&mut self, _: &mut TaskState) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobMonitor, ProcessingClock, TaskInfo};
    use rill_state::OperatorStateSnapshot;

    fn info() -> TaskInfo {
        TaskInfo {
            job: "job".into(),
            vertex: "source".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            run_id: "run".into(),
        }
    }

    /// An exchange to two channels with `partitioner`, its receivers, and a task state to push with.
    fn exchange(
        partitioner: Partitioner<u64>,
    ) -> (Exchange<u64>, Vec<crossbeam_channel::Receiver<Message<u64>>>, TaskState) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| crossbeam_channel::unbounded()).unzip();
        let exchange = Exchange::new(senders, partitioner, &info(), Arc::new(SubtaskMetrics::default()));
        let state = TaskState::new(
            info(),
            None,
            None,
            OperatorStateSnapshot::default(),
            ProcessingClock::system(),
            JobMonitor::new("job"),
        );
        (exchange, receivers, state)
    }

    fn received(receivers: &[crossbeam_channel::Receiver<Message<u64>>]) -> Vec<Vec<u64>> {
        receivers
            .iter()
            .map(|r| r.try_iter().flat_map(|m| if let Message::Data(batch) = m { batch } else { Vec::new() }).collect())
            .collect()
    }

    #[test]
    fn a_keyed_batch_goes_to_the_owners_of_its_key_groups() {
        let groups: BatchKeyGroups<u64> = Arc::new(|batch: &[u64], out: &mut Vec<u16>| {
            out.extend(batch.iter().map(|k| rill_state::key_group_of(k, 128)))
        });
        let (mut exchange, receivers, mut state) = exchange(Partitioner::Hash(groups));
        exchange.push((0..1000).collect(), &mut state).unwrap();
        exchange.flush().unwrap();
        for (subtask, records) in received(&receivers).into_iter().enumerate() {
            assert!(!records.is_empty(), "subtask {subtask} got nothing");
            for k in records {
                assert_eq!(subtask_for_key_group(rill_state::key_group_of(&k, 128), 128, 2), subtask, "key {k}");
            }
        }
    }

    #[test]
    fn a_hash_partitioner_that_skips_a_record_fails_the_task_instead_of_dropping_it() {
        let short: BatchKeyGroups<u64> =
            Arc::new(|batch: &[u64], out: &mut Vec<u16>| out.extend(batch.iter().skip(1).map(|_| 0)));
        let (mut exchange, _receivers, mut state) = exchange(Partitioner::Hash(short));
        let error = exchange.push(vec![1, 2, 3], &mut state).unwrap_err().to_string();
        assert!(error.contains("gave 2 key groups for a batch of 3 records"), "{error}");
    }
}
