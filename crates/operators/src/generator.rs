//! A deterministic sequence source with checkpointed position and an optional rate limit.

use std::ops::Range;
use std::time::{Duration, Instant};

use rill_runtime::{
    Barrier, Collector, OpenContext, OperatorContext, OperatorResult, Source, SourceFactory, SourcePoll,
};
use serde::{Deserialize, Serialize};

/// Records emitted per poll.
const POLL_BATCH: u64 = 1024;

/// Emits every number of a range exactly once across all subtasks and restarts.
///
/// The range is cut into a fixed number of splits; split `s` belongs to subtask `s % parallelism`,
/// and each split's next offset is union state, so a restore at another parallelism reassigns
/// splits without losing or repeating a number.
///
/// By default splits are contiguous slices of the range, read in turns. With
/// [`GeneratorSource::ordered`], split `s` holds the numbers `start + s + k * splits` and each
/// subtask emits its numbers in increasing order — also after a restore at another parallelism,
/// when the splits it gets were left at different positions — so that an event time derived from
/// the number stays (almost) ordered within every subtask.
///
/// ```
/// let source = rill_operators::GeneratorSource::new(0..1_000).rate_per_second(500);
/// # let _ = source;
/// ```
#[derive(Debug, Clone)]
pub struct GeneratorSource {
    range: Range<u64>,
    splits: u64,
    rate: Option<u64>,
    ordered: bool,
}

/// The running [`GeneratorSource`] of one subtask.
#[derive(Debug)]
pub struct GeneratorSourceReader {
    spec: GeneratorSource,
    owned: Vec<GeneratorSplit>,
    cursor: usize,
    started: Option<Instant>,
    emitted: u64,
    /// Ordered mode: for each split, its index in `owned` if this subtask owns it.
    owned_index: Vec<Option<usize>>,
    /// Ordered mode: the next number to consider (no owned split is behind it).
    next_number: u64,
}

/// The checkpointed position of one split of a [`GeneratorSource`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GeneratorSplit {
    split: u64,
    next: u64,
    end: u64,
}

impl GeneratorSource {
    /// A source of every number in `range`, in 128 splits.
    pub fn new(range: Range<u64>) -> Self {
        GeneratorSource { range, splits: 128, rate: None, ordered: false }
    }

    /// Interleaved splits, each subtask emitting its numbers in increasing order (see the type's
    /// documentation). Must stay the same across restores.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// At most `rate` records per second over all subtasks.
    pub fn rate_per_second(mut self, rate: u64) -> Self {
        self.rate = (rate > 0).then_some(rate);
        self
    }

    /// Number of splits (default 128; must stay the same across restores).
    pub fn splits(mut self, splits: u64) -> Self {
        self.splits = splits.max(1);
        self
    }

    fn split_bounds(&self, split: u64) -> (u64, u64) {
        if self.ordered {
            return (self.range.start.saturating_add(split).min(self.range.end), self.range.end);
        }
        let len = self.range.end.saturating_sub(self.range.start);
        let start = self.range.start + (u128::from(len) * u128::from(split) / u128::from(self.splits)) as u64;
        let end = self.range.start + (u128::from(len) * u128::from(split + 1) / u128::from(self.splits)) as u64;
        (start, end)
    }
}

impl SourceFactory<u64> for GeneratorSource {
    type Source = GeneratorSourceReader;

    fn open(&self, ctx: &mut OpenContext<'_>, restored: Vec<GeneratorSplit>) -> OperatorResult<GeneratorSourceReader> {
        let (subtask, parallelism) = (ctx.info().subtask as u64, ctx.info().parallelism as u64);
        let owned = if restored.is_empty() {
            (0..self.splits)
                .filter(|s| s % parallelism == subtask)
                .map(|split| {
                    let (next, end) = self.split_bounds(split);
                    GeneratorSplit { split, next, end }
                })
                .collect()
        } else {
            restored.into_iter().filter(|state| state.split % parallelism == subtask).collect()
        };
        let mut reader = GeneratorSourceReader {
            spec: self.clone(),
            owned,
            cursor: 0,
            started: None,
            emitted: 0,
            owned_index: Vec::new(),
            next_number: 0,
        };
        if self.ordered {
            reader.owned_index = vec![None; self.splits as usize];
            for (i, split) in reader.owned.iter().enumerate() {
                if let Some(slot) = reader.owned_index.get_mut(split.split as usize) {
                    *slot = Some(i);
                }
            }
            reader.next_number = reader.owned.iter().map(|s| s.next).min().unwrap_or(self.range.end);
        }
        Ok(reader)
    }
}

impl GeneratorSourceReader {
    /// Ordered mode: emits up to `budget` numbers of the owned splits in increasing order.
    fn poll_ordered(&mut self, budget: u64, out: &mut Collector<u64>) -> SourcePoll {
        let (start, end, splits) = (self.spec.range.start, self.spec.range.end, self.spec.splits);
        let mut n = self.next_number;
        let mut split = ((n.saturating_sub(start)) % splits) as usize;
        let mut emitted = 0;
        while emitted < budget && n < end {
            if let Some(state) = self.owned_index[split].map(|i| &mut self.owned[i]) {
                if state.next == n {
                    out.emit(n);
                    state.next = n.saturating_add(splits);
                    emitted += 1;
                }
            }
            n += 1;
            split += 1;
            if split == splits as usize {
                split = 0;
            }
        }
        self.next_number = n;
        self.emitted += emitted;
        if emitted == 0 && n >= end {
            SourcePoll::Finished
        } else {
            SourcePoll::Ready
        }
    }
}

impl Source<u64> for GeneratorSourceReader {
    type Position = GeneratorSplit;

    fn poll(&mut self, ctx: &mut OperatorContext<'_>, out: &mut Collector<u64>) -> OperatorResult<SourcePoll> {
        let mut budget = POLL_BATCH;
        if let Some(rate) = self.spec.rate {
            let per_subtask = (rate as f64 / ctx.info().parallelism as f64).max(1.0);
            let started = *self.started.get_or_insert_with(Instant::now);
            let allowed = (started.elapsed().as_secs_f64() * per_subtask) as u64 + 1;
            budget = budget.min(allowed.saturating_sub(self.emitted));
            if budget == 0 {
                return Ok(SourcePoll::Idle(Duration::from_millis(5)));
            }
        }
        if self.spec.ordered {
            return Ok(self.poll_ordered(budget, out));
        }
        let live: Vec<usize> = (0..self.owned.len()).filter(|i| self.owned[*i].next < self.owned[*i].end).collect();
        if live.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        // Take from one split per poll, rotating, so all splits progress together.
        self.cursor = (self.cursor + 1) % live.len();
        let split = &mut self.owned[live[self.cursor]];
        let until = split.end.min(split.next + budget);
        for n in split.next..until {
            out.emit(n);
        }
        self.emitted += until - split.next;
        split.next = until;
        Ok(SourcePoll::Ready)
    }

    fn on_barrier(&mut self, _barrier: Barrier, _ctx: &mut OperatorContext<'_>) -> OperatorResult<Vec<GeneratorSplit>> {
        Ok(self.owned.clone())
    }
}
