//! Barrier alignment and watermark merging for subtasks with several input channels.
//!
//! [`BarrierAligner`] and [`WatermarkMerger`] are pure and deterministic; [`InputGate`] puts them
//! in front of the channels, so operators only ever see aligned input and merged event time.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

use crate::watermark_merger::WatermarkMerger;
use crate::{Barrier, Message, Result, RuntimeError, Watermark};

/// Tracks which inputs delivered the barrier being aligned.
#[derive(Debug, Clone)]
pub(crate) struct BarrierAligner {
    blocked: Vec<bool>,
    pending: Option<Barrier>,
}

impl BarrierAligner {
    /// An aligner for `inputs` channels.
    pub(crate) fn new(inputs: usize) -> Self {
        BarrierAligner { blocked: vec![false; inputs], pending: None }
    }

    /// Whether `input` delivered the current barrier and must not be read until alignment ends.
    pub(crate) fn is_blocked(&self, input: usize) -> bool {
        self.blocked[input]
    }

    /// `input` delivered `barrier`. Returns it once every input has; the inputs are then unblocked.
    pub(crate) fn on_barrier(&mut self, input: usize, barrier: Barrier) -> Result<Option<Barrier>> {
        match self.pending {
            Some(p) if p.epoch != barrier.epoch => {
                return Err(RuntimeError::BarrierMismatch { expected: p.epoch, got: barrier.epoch, input })
            }
            Some(_) if self.blocked[input] => {
                return Err(RuntimeError::BarrierMismatch { expected: barrier.epoch + 1, got: barrier.epoch, input })
            }
            _ => {}
        }
        self.pending = Some(barrier);
        self.blocked[input] = true;
        if self.blocked.iter().all(|b| *b) {
            self.blocked.iter_mut().for_each(|b| *b = false);
            return Ok(self.pending.take());
        }
        Ok(None)
    }
}

/// What a subtask with inputs handles next.
#[derive(Debug)]
pub(crate) enum GateEvent<T, C> {
    /// Records, with their key groups on a keyed channel (see [`Message::Data`]).
    Data(Vec<T>, Option<Vec<u16>>),
    Watermark(Watermark),
    /// Every input that has not ended is idle.
    Idle,
    Barrier(Barrier),
    EndOfInput,
    Control(C),
}

/// How long [`InputGate::next`] may wait for an event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Return `None` at once when nothing is ready.
    No,
    /// Return `None` when nothing arrived by then.
    Until(Instant),
    /// Wait for the next event.
    Forever,
}

/// The input side of a subtask: its channels, aligned, plus the control channel.
pub(crate) struct InputGate<T, C> {
    inputs: Vec<Receiver<Message<T>>>,
    control: Receiver<C>,
    aligner: BarrierAligner,
    watermarks: WatermarkMerger,
    ended: Vec<bool>,
    closed: Vec<bool>,
    end_reported: bool,
    idle_pending: bool,
    /// Watermark alignment: inputs further ahead of the merged watermark are not read.
    max_drift_ms: Option<i64>,
    task: String,
    /// When the first input delivered the barrier being aligned.
    aligning_since: Option<Instant>,
    /// How long the last completed alignment took.
    last_alignment: Duration,
    /// The last barrier of the run passed: upstream subtasks may now end and close their
    /// channels without sending end of input (a stopped job).
    after_last_barrier: bool,
}

impl<T, C> InputGate<T, C> {
    pub(crate) fn new(inputs: Vec<Receiver<Message<T>>>, control: Receiver<C>, task: String) -> Self {
        let n = inputs.len();
        InputGate {
            inputs,
            control,
            aligner: BarrierAligner::new(n),
            watermarks: WatermarkMerger::new(n),
            ended: vec![false; n],
            closed: vec![false; n],
            end_reported: false,
            idle_pending: false,
            max_drift_ms: None,
            task,
            aligning_since: None,
            last_alignment: Duration::ZERO,
            after_last_barrier: false,
        }
    }

    /// Enables watermark alignment: an input whose watermark is more than `max_drift_ms` ahead of
    /// the merged one is not read (so its sender is back-pressured) until the others catch up.
    /// Never during barrier alignment, which needs every input read.
    pub(crate) fn with_max_drift(mut self, max_drift_ms: Option<i64>) -> Self {
        self.max_drift_ms = max_drift_ms;
        self
    }

    /// How long the last barrier alignment took (first input's barrier to the last one's).
    pub(crate) fn last_alignment(&self) -> Duration {
        self.last_alignment
    }

    /// Batches waiting in the input channels, and how many they can hold.
    pub(crate) fn queued(&self) -> (u64, u64) {
        self.inputs.iter().fold((0, 0), |(q, c), rx| (q + rx.len() as u64, c + rx.capacity().unwrap_or(0) as u64))
    }

    /// Whether `input` may be read now.
    fn readable(&self, input: usize, aligning: bool) -> bool {
        if self.closed[input] || self.aligner.is_blocked(input) {
            return false;
        }
        match self.max_drift_ms {
            Some(drift) if !aligning => !self.watermarks.is_ahead(input, drift),
            _ => true,
        }
    }

    /// The next event. With `block == false`, returns `None` when nothing is ready.
    pub(crate) fn next(&mut self, block: bool) -> Result<Option<GateEvent<T, C>>> {
        self.next_within(if block { Wait::Forever } else { Wait::No })
    }

    /// The next event, or `None` if none arrived within `wait`.
    pub(crate) fn next_within(&mut self, wait: Wait) -> Result<Option<GateEvent<T, C>>> {
        loop {
            if self.idle_pending {
                self.idle_pending = false;
                return Ok(Some(GateEvent::Idle));
            }
            // Control first, so commits and aborts are not starved by a busy input.
            if let Ok(c) = self.control.try_recv() {
                return Ok(Some(GateEvent::Control(c)));
            }
            if self.ended.iter().all(|e| *e) && !self.end_reported {
                self.end_reported = true;
                return Ok(Some(GateEvent::EndOfInput));
            }
            let mut select = Select::new();
            let mut map = Vec::with_capacity(self.inputs.len());
            select.recv(&self.control);
            let aligning = (0..self.inputs.len()).any(|i| self.aligner.is_blocked(i));
            // Should every open input be ahead (it cannot be: the slowest defines the merged
            // watermark), read them all rather than wait forever.
            let pause = (0..self.inputs.len()).any(|i| self.readable(i, aligning));
            for (i, rx) in self.inputs.iter().enumerate() {
                if self.readable(i, aligning || !pause) {
                    select.recv(rx);
                    map.push(i);
                }
            }
            let op = match wait {
                Wait::Forever => select.select(),
                Wait::No => match select.try_select() {
                    Ok(op) => op,
                    Err(_) => return Ok(None),
                },
                Wait::Until(deadline) => match select.select_deadline(deadline) {
                    Ok(op) => op,
                    Err(_) => return Ok(None),
                },
            };
            let index = op.index();
            if index == 0 {
                return match op.recv(&self.control) {
                    Ok(c) => Ok(Some(GateEvent::Control(c))),
                    Err(_) => Err(RuntimeError::Aborted),
                };
            }
            let input = map[index - 1];
            let message = match op.recv(&self.inputs[input]) {
                Ok(m) => m,
                Err(_) => {
                    self.closed[input] = true;
                    if !self.ended[input] && !self.after_last_barrier {
                        return Err(RuntimeError::ChannelClosed { task: self.task.clone() });
                    }
                    continue;
                }
            };
            match message {
                Message::Data { records, key_groups } => {
                    self.watermarks.on_records(input);
                    return Ok(Some(GateEvent::Data(records, key_groups)));
                }
                Message::Watermark(w) => {
                    if let Some(w) = self.watermarks.on_watermark(input, w) {
                        return Ok(Some(GateEvent::Watermark(w)));
                    }
                }
                Message::Idle => {
                    let progress = self.watermarks.on_idle(input);
                    self.idle_pending = progress.became_idle;
                    if let Some(w) = progress.watermark {
                        return Ok(Some(GateEvent::Watermark(w)));
                    }
                }
                Message::Barrier(b) => {
                    let since = *self.aligning_since.get_or_insert_with(Instant::now);
                    if let Some(b) = self.aligner.on_barrier(input, b)? {
                        self.last_alignment = since.elapsed();
                        self.aligning_since = None;
                        self.after_last_barrier |= b.then_stop;
                        return Ok(Some(GateEvent::Barrier(b)));
                    }
                }
                Message::EndOfInput => {
                    self.ended[input] = true;
                    if let Some(w) = self.watermarks.on_end(input) {
                        return Ok(Some(GateEvent::Watermark(w)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier(epoch: u64) -> Barrier {
        Barrier { epoch, then_stop: false }
    }

    #[test]
    fn barrier_is_released_only_after_every_input_delivered_it() {
        let mut a = BarrierAligner::new(3);
        assert_eq!(a.on_barrier(2, barrier(4)).unwrap(), None);
        assert_eq!(a.on_barrier(0, barrier(4)).unwrap(), None);
        assert!(a.is_blocked(0) && a.is_blocked(2) && !a.is_blocked(1));
        assert_eq!(a.on_barrier(1, barrier(4)).unwrap(), Some(barrier(4)));
        assert!(!a.is_blocked(0) && !a.is_blocked(1) && !a.is_blocked(2));
    }

    #[test]
    fn barrier_of_another_epoch_during_alignment_is_an_error() {
        let mut a = BarrierAligner::new(2);
        a.on_barrier(0, barrier(1)).unwrap();
        let err = a.on_barrier(1, barrier(2)).unwrap_err();
        assert!(err.to_string().contains("expected epoch 1"), "{err}");
    }

    #[test]
    fn a_barrier_is_released_once_every_input_delivered_it_and_blocks_until_then() {
        let mut a = BarrierAligner::new(2);
        let b = Barrier { epoch: 1, then_stop: false };
        assert_eq!(a.on_barrier(0, b).unwrap(), None);
        assert!(a.is_blocked(0));
        assert_eq!(a.on_barrier(1, b).unwrap(), Some(b));
        assert!(!a.is_blocked(0));
    }

    #[test]
    fn single_input_barrier_passes_straight_through() {
        let mut a = BarrierAligner::new(1);
        assert_eq!(a.on_barrier(0, barrier(9)).unwrap(), Some(barrier(9)));
    }

    #[test]
    fn gate_holds_back_a_blocked_input_until_alignment_completes() {
        let (tx0, rx0) = crossbeam_channel::unbounded();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into());
        tx0.send(Message::Barrier(barrier(1))).unwrap();
        tx0.send(Message::records(vec![100])).unwrap(); // after the barrier: must wait
        tx1.send(Message::records(vec![1])).unwrap();
        // Input 0's barrier blocks it; only input 1's pre-barrier record can come out.
        let first = gate.next(false).unwrap();
        let second = gate.next(false).unwrap();
        let got: Vec<String> = [first, second].into_iter().map(|e| format!("{e:?}")).collect();
        assert!(got.iter().any(|e| e.contains("Data([1], None)")), "{got:?}");
        assert!(!got.iter().any(|e| e.contains("100")), "{got:?}");
        assert!(gate.next(false).unwrap().is_none());
        tx1.send(Message::Barrier(barrier(1))).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Barrier(b)) if b.epoch == 1));
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Data(d, _)) if d == vec![100]));
    }

    #[test]
    fn gate_reports_end_of_input_once_all_inputs_ended() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into());
        tx0.send(Message::EndOfInput).unwrap();
        assert!(gate.next(false).unwrap().is_none());
        tx1.send(Message::EndOfInput).unwrap();
        // Event time is over once every input ended: the final watermark comes first.
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Watermark(Watermark::MAX))));
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::EndOfInput)));
        assert!(gate.next(false).unwrap().is_none());
    }

    #[test]
    fn after_the_last_barrier_of_a_stopped_job_inputs_may_close_without_ending() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into());
        let last = Barrier { epoch: 3, then_stop: true };
        tx0.send(Message::Barrier(last)).unwrap();
        tx1.send(Message::Barrier(last)).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Barrier(b)) if b == last));
        drop((tx0, tx1));
        assert!(gate.next(false).unwrap().is_none(), "closing after the last barrier is no failure");
    }

    #[test]
    fn an_input_closing_before_it_ended_is_a_failure() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0], ctl_rx, "t".into());
        tx0.send(Message::Barrier(Barrier { epoch: 3, then_stop: false })).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Barrier(_))));
        drop(tx0);
        assert!(matches!(gate.next(false), Err(RuntimeError::ChannelClosed { .. })));
    }

    #[test]
    fn gate_passes_on_idleness_once_every_input_is_idle() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into());
        let w = |t| Watermark { timestamp_ms: t };
        tx0.send(Message::Watermark(w(10))).unwrap();
        tx1.send(Message::Watermark(w(30))).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Watermark(x)) if x == w(10)));
        tx0.send(Message::Idle).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Watermark(x)) if x == w(30)));
        tx1.send(Message::Idle).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Idle)));
        assert!(gate.next(false).unwrap().is_none());
        tx0.send(Message::records(vec![1])).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Data(..))));
    }

    #[test]
    fn gate_does_not_read_an_input_too_far_ahead_until_the_others_catch_up() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into()).with_max_drift(Some(100));
        let w = |t| Watermark { timestamp_ms: t };
        tx0.send(Message::Watermark(w(1_000))).unwrap();
        tx1.send(Message::Watermark(w(10))).unwrap();
        while !matches!(gate.next(false).unwrap(), Some(GateEvent::Watermark(_))) {}
        tx0.send(Message::records(vec![7])).unwrap();
        assert!(gate.next(false).unwrap().is_none(), "input 0 is 990 ms ahead: paused");
        tx1.send(Message::Watermark(w(950))).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Watermark(x)) if x == w(950)));
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Data(d, _)) if d == vec![7]));
    }

    #[test]
    fn gate_reads_an_input_ahead_while_aligning_a_barrier() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into()).with_max_drift(Some(100));
        let w = |t| Watermark { timestamp_ms: t };
        tx0.send(Message::Watermark(w(1_000))).unwrap();
        tx1.send(Message::Watermark(w(10))).unwrap();
        while !matches!(gate.next(false).unwrap(), Some(GateEvent::Watermark(_))) {}
        tx1.send(Message::Barrier(barrier(1))).unwrap();
        tx0.send(Message::Barrier(barrier(1))).unwrap();
        // Input 0 is paused until input 1's barrier starts the alignment, which needs input 0.
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Barrier(b)) if b.epoch == 1));
    }

    #[test]
    fn gate_waits_no_longer_than_the_deadline() {
        let (_tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0], ctl_rx, "t".into());
        let deadline = Instant::now() + std::time::Duration::from_millis(5);
        assert!(gate.next_within(Wait::Until(deadline)).unwrap().is_none());
        assert!(Instant::now() >= deadline);
    }
}
