//! Barrier alignment and watermark merging for subtasks with several input channels.
//!
//! [`BarrierAligner`] and [`WatermarkMerger`] are pure and deterministic; [`InputGate`] puts them
//! in front of the channels, so operators only ever see aligned input.

use crossbeam_channel::{Receiver, Select};

use crate::{Barrier, Message, Result, RuntimeError, Watermark};

/// Tracks which inputs delivered the barrier being aligned.
#[derive(Debug, Clone)]
pub struct BarrierAligner {
    blocked: Vec<bool>,
    pending: Option<Barrier>,
}

impl BarrierAligner {
    /// An aligner for `inputs` channels.
    pub fn new(inputs: usize) -> Self {
        BarrierAligner { blocked: vec![false; inputs], pending: None }
    }

    /// Whether `input` delivered the current barrier and must not be read until alignment ends.
    pub fn is_blocked(&self, input: usize) -> bool {
        self.blocked[input]
    }

    /// `input` delivered `barrier`. Returns it once every input has; the inputs are then unblocked.
    ///
    /// ```
    /// use rill_runtime::{Barrier, BarrierAligner};
    /// let mut a = BarrierAligner::new(2);
    /// let b = Barrier { epoch: 1, then_stop: false };
    /// assert_eq!(a.on_barrier(0, b).unwrap(), None);
    /// assert!(a.is_blocked(0));
    /// assert_eq!(a.on_barrier(1, b).unwrap(), Some(b));
    /// assert!(!a.is_blocked(0));
    /// ```
    pub fn on_barrier(&mut self, input: usize, barrier: Barrier) -> Result<Option<Barrier>> {
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

/// Merges per-input watermarks: the output is the minimum over inputs that have not ended, and
/// it never moves backwards.
#[derive(Debug, Clone)]
pub struct WatermarkMerger {
    inputs: Vec<Option<Watermark>>,
    ended: Vec<bool>,
    emitted: Option<Watermark>,
}

impl WatermarkMerger {
    /// A merger for `inputs` channels.
    pub fn new(inputs: usize) -> Self {
        WatermarkMerger { inputs: vec![None; inputs], ended: vec![false; inputs], emitted: None }
    }

    /// `input` reported `watermark`; returns the merged watermark if it advanced.
    pub fn on_watermark(&mut self, input: usize, watermark: Watermark) -> Option<Watermark> {
        let slot = &mut self.inputs[input];
        *slot = Some(slot.map_or(watermark, |w| w.max(watermark)));
        self.advance()
    }

    /// `input` ended: it no longer holds the watermark back.
    pub fn on_end(&mut self, input: usize) -> Option<Watermark> {
        self.ended[input] = true;
        self.advance()
    }

    fn advance(&mut self) -> Option<Watermark> {
        let mut min: Option<Watermark> = None;
        for (wm, ended) in self.inputs.iter().zip(&self.ended) {
            if *ended {
                continue;
            }
            match wm {
                None => return None,
                Some(w) => min = Some(min.map_or(*w, |m| m.min(*w))),
            }
        }
        let min = min?;
        if self.emitted.is_some_and(|e| e >= min) {
            return None;
        }
        self.emitted = Some(min);
        Some(min)
    }
}

/// What a subtask with inputs handles next.
#[derive(Debug)]
pub(crate) enum GateEvent<T, C> {
    Data(Vec<T>),
    Watermark(Watermark),
    Barrier(Barrier),
    EndOfInput,
    Control(C),
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
    task: String,
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
            task,
        }
    }

    /// The next event. With `block == false`, returns `None` when nothing is ready.
    pub(crate) fn next(&mut self, block: bool) -> Result<Option<GateEvent<T, C>>> {
        loop {
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
            for (i, rx) in self.inputs.iter().enumerate() {
                if !self.aligner.is_blocked(i) && !self.closed[i] {
                    select.recv(rx);
                    map.push(i);
                }
            }
            let op = if block {
                select.select()
            } else {
                match select.try_select() {
                    Ok(op) => op,
                    Err(_) => return Ok(None),
                }
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
                    if !self.ended[input] {
                        return Err(RuntimeError::ChannelClosed { task: self.task.clone() });
                    }
                    continue;
                }
            };
            match message {
                Message::Data(batch) => return Ok(Some(GateEvent::Data(batch))),
                Message::Watermark(w) => {
                    if let Some(w) = self.watermarks.on_watermark(input, w) {
                        return Ok(Some(GateEvent::Watermark(w)));
                    }
                }
                Message::Barrier(b) => {
                    if let Some(b) = self.aligner.on_barrier(input, b)? {
                        return Ok(Some(GateEvent::Barrier(b)));
                    }
                }
                Message::EndOfStream => {
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
    fn single_input_barrier_passes_straight_through() {
        let mut a = BarrierAligner::new(1);
        assert_eq!(a.on_barrier(0, barrier(9)).unwrap(), Some(barrier(9)));
    }

    #[test]
    fn watermark_is_the_minimum_over_inputs_and_never_regresses() {
        let mut m = WatermarkMerger::new(2);
        let w = |t| Watermark { timestamp_ms: t };
        assert_eq!(m.on_watermark(0, w(10)), None);
        assert_eq!(m.on_watermark(1, w(5)), Some(w(5)));
        assert_eq!(m.on_watermark(1, w(20)), Some(w(10)));
        assert_eq!(m.on_watermark(0, w(8)), None, "input 0 went back; output must not");
        assert_eq!(m.on_end(0), Some(w(20)));
    }

    #[test]
    fn gate_holds_back_a_blocked_input_until_alignment_completes() {
        let (tx0, rx0) = crossbeam_channel::unbounded();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into());
        tx0.send(Message::Barrier(barrier(1))).unwrap();
        tx0.send(Message::Data(vec![100])).unwrap(); // after the barrier: must wait
        tx1.send(Message::Data(vec![1])).unwrap();
        // Input 0's barrier blocks it; only input 1's pre-barrier record can come out.
        let first = gate.next(false).unwrap();
        let second = gate.next(false).unwrap();
        let got: Vec<String> = [first, second].into_iter().map(|e| format!("{e:?}")).collect();
        assert!(got.iter().any(|e| e.contains("Data([1])")), "{got:?}");
        assert!(!got.iter().any(|e| e.contains("100")), "{got:?}");
        assert!(gate.next(false).unwrap().is_none());
        tx1.send(Message::Barrier(barrier(1))).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Barrier(b)) if b.epoch == 1));
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::Data(d)) if d == vec![100]));
    }

    #[test]
    fn gate_reports_end_of_input_once_all_inputs_ended() {
        let (tx0, rx0) = crossbeam_channel::unbounded::<Message<u8>>();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let (_ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<()>();
        let mut gate = InputGate::new(vec![rx0, rx1], ctl_rx, "t".into());
        tx0.send(Message::EndOfStream).unwrap();
        assert!(gate.next(false).unwrap().is_none());
        tx1.send(Message::EndOfStream).unwrap();
        assert!(matches!(gate.next(false).unwrap(), Some(GateEvent::EndOfInput)));
        assert!(gate.next(false).unwrap().is_none());
    }
}
