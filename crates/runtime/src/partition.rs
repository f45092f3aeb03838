//! Partitioning: which downstream subtask gets each record, and the exchange that sends batches.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};
use rill_observe::SubtaskMetrics;
use rill_state::subtask_for_key_group;

use crate::chain::Emitter;
use crate::context::TaskState;
use crate::key_selector::KeyGroups;
use crate::{Barrier, Message, Result, RuntimeError, Watermark};

/// Records per batch on a channel.
pub(crate) const BATCH_SIZE: usize = 1024;

/// How records are spread over the subtasks of the next vertex.
pub(crate) enum Partitioner<T> {
    /// Subtask i sends to subtask i (round robin if the parallelisms differ).
    Forward,
    /// By the key group of the record's key; each batch goes with its records' key groups.
    Hash(KeyGroups<T>),
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
    /// On a keyed stream, the key groups of each channel's buffered records (sent with them).
    key_group_buffers: Vec<Vec<u16>>,
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
        let keyed = matches!(partitioner, Partitioner::Hash(_));
        Exchange {
            buffers: (0..n).map(|_| Vec::with_capacity(BATCH_SIZE)).collect(),
            key_group_buffers: (0..n)
                .map(|_| if keyed { Vec::with_capacity(BATCH_SIZE) } else { Vec::new() })
                .collect(),
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
        let records = std::mem::replace(&mut self.buffers[channel], Vec::with_capacity(BATCH_SIZE));
        let key_groups = match self.partitioner {
            Partitioner::Hash(_) => {
                Some(std::mem::replace(&mut self.key_group_buffers[channel], Vec::with_capacity(BATCH_SIZE)))
            }
            _ => None,
        };
        self.send(channel, Message::Data { records, key_groups })
    }

    /// Buffers `record` for `channel`, sending the buffer once it holds a batch.
    #[inline]
    fn push_to(&mut self, channel: usize, record: T) -> Result<()> {
        self.buffers[channel].push(record);
        if self.buffers[channel].len() >= BATCH_SIZE {
            self.send_batch(channel)?;
        }
        Ok(())
    }

    fn broadcast(&mut self, message: impl Fn() -> Message<T>) -> Result<()> {
        self.flush()?;
        for channel in 0..self.senders.len() {
            self.send(channel, message())?;
        }
        Ok(())
    }

    /// The path of keyed streams: the batch's key groups from one call, then one loop that sends
    /// each record, with its key group, to the owner of that key group.
    #[inline]
    fn route_keyed(&mut self, key_groups: &KeyGroups<T>, batch: Vec<T>) -> Result<()> {
        let mut groups = std::mem::take(&mut self.key_groups);
        groups.clear();
        key_groups(&batch, &mut groups);
        debug_assert_eq!(groups.len(), batch.len(), "one key group per record");
        let (n, max_parallelism) = (self.senders.len(), self.max_parallelism);
        for (record, &group) in batch.into_iter().zip(&groups) {
            let channel = subtask_for_key_group(group, max_parallelism, n);
            self.key_group_buffers[channel].push(group);
            self.push_to(channel, record)?;
        }
        self.key_groups = groups;
        Ok(())
    }
}

impl<T: Send + 'static> Emitter<T> for Exchange<T> {
    fn push(&mut self, batch: Vec<T>, _: Option<&[u16]>, _: &mut TaskState) -> Result<()> {
        self.idle = false;
        self.metrics.add_records_out(batch.len() as u64);
        let n = self.senders.len();
        match &self.partitioner {
            Partitioner::Hash(key_groups) => {
                let key_groups = key_groups.clone();
                self.route_keyed(&key_groups, batch)
            }
            Partitioner::Forward => {
                let channel = if self.subtask < n { self.subtask } else { self.subtask % n };
                batch.into_iter().try_for_each(|record| self.push_to(channel, record))
            }
            Partitioner::Rebalance => batch.into_iter().try_for_each(|record| {
                self.next_round_robin = (self.next_round_robin + 1) % n;
                self.push_to(self.next_round_robin, record)
            }),
            Partitioner::Broadcast(clone) => {
                let clone = clone.clone();
                for record in batch {
                    for channel in 0..n {
                        self.push_to(channel, clone(&record))?;
                    }
                }
                Ok(())
            }
        }
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

    fn prepare_barrier(&mut self, _: Barrier, _: &mut TaskState) -> Result<()> {
        self.flush()
    }

    fn forward_barrier(&mut self, barrier: Barrier, _: &mut TaskState) -> Result<()> {
        self.broadcast(|| Message::Barrier(barrier))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySelector;
    use crate::{JobMonitor, ProcessingClock, TaskInfo};
    use rill_state::OperatorStateSnapshot;

    fn info() -> TaskInfo {
        TaskInfo {
            job: "job".into(),
            vertex: "source".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            job_id: "job".into(),
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
            .map(|r| {
                r.try_iter()
                    .flat_map(|m| if let Message::Data { records, .. } = m { records } else { Vec::new() })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_keyed_batch_goes_to_the_owners_of_its_key_groups_with_those_key_groups() {
        let selector = KeySelector::new(|k: &u64| *k, 128);
        let (mut exchange, receivers, mut state) = exchange(Partitioner::Hash(selector.key_groups()));
        exchange.push((0..1000).collect(), None, &mut state).unwrap();
        exchange.flush().unwrap();
        for (subtask, receiver) in receivers.iter().enumerate() {
            let mut seen = 0;
            for message in receiver.try_iter() {
                let Message::Data { records, key_groups: Some(groups) } = message else {
                    panic!("a keyed batch without its key groups");
                };
                assert_eq!(groups.len(), records.len());
                for (k, group) in records.iter().zip(groups) {
                    assert_eq!(group, rill_state::key_group_of(k, 128), "key {k}");
                    assert_eq!(subtask_for_key_group(group, 128, 2), subtask, "key {k}");
                    seen += 1;
                }
            }
            assert!(seen > 0, "subtask {subtask} got nothing");
        }
    }

    #[test]
    fn a_rebalanced_batch_is_spread_round_robin_without_key_groups() {
        let (mut exchange, receivers, mut state) = exchange(Partitioner::Rebalance);
        exchange.push((0..10).collect(), None, &mut state).unwrap();
        exchange.flush().unwrap();
        let got = received(&receivers);
        assert_eq!(got[0].len() + got[1].len(), 10);
        assert_eq!(got[0].len(), 5);
    }
}
