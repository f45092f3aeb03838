//! Merging the watermarks of a subtask's inputs, with idle inputs (Flink's `StatusWatermarkValve`).
//!
//! The merged watermark is the minimum over the inputs that count: not ended, not idle, and
//! *aligned*. An input that goes idle stops counting, so it no longer holds event time back. An
//! input that becomes active again (it delivers records or a watermark) counts again only once its
//! watermark has caught up with the merged one, so rejoining never moves event time backwards and
//! a stale watermark does not stall it either. When every input that has not ended is idle, the
//! subtask's own output is idle; at that moment the largest watermark of any input is emitted, as
//! Flink does, because no input will advance it anymore. When every input has ended, event time is
//! over: [`Watermark::MAX`].
//!
//! Everything here is pure and deterministic; a subtask's input gate feeds it the channel events
//! in order.

use crate::Watermark;

/// What the merged output of a subtask's inputs did after an input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MergedProgress {
    /// The merged watermark advanced to this value.
    pub watermark: Option<Watermark>,
    /// Every input that has not ended is now idle (reported once per idle period, after
    /// `watermark`).
    pub became_idle: bool,
}

impl MergedProgress {
    const NONE: MergedProgress = MergedProgress { watermark: None, became_idle: false };
}

#[derive(Debug, Clone, Copy, Default)]
struct InputStatus {
    watermark: Option<Watermark>,
    idle: bool,
    ended: bool,
    /// Counts towards the minimum: its watermark is at or above the merged one (or it has been
    /// active since before the merged watermark first advanced).
    aligned: bool,
}

/// Merges per-input watermarks: the output is the minimum over active, aligned inputs that have
/// not ended, and it never moves backwards.
#[derive(Debug, Clone)]
pub(crate) struct WatermarkMerger {
    inputs: Vec<InputStatus>,
    emitted: Option<Watermark>,
    output_idle: bool,
}

impl WatermarkMerger {
    /// A merger for `inputs` channels, all active and without a watermark yet.
    pub(crate) fn new(inputs: usize) -> Self {
        let input = InputStatus { aligned: true, ..InputStatus::default() };
        WatermarkMerger { inputs: vec![input; inputs], emitted: None, output_idle: false }
    }

    /// The merged watermark emitted so far.
    #[cfg(test)]
    pub(crate) fn current(&self) -> Option<Watermark> {
        self.emitted
    }

    /// Whether every input that has not ended is idle.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.output_idle
    }

    /// Whether `input` runs more than `max_drift_ms` ahead of the merged watermark (watermark
    /// alignment: such an input is not read until the others catch up). An idle or ended input,
    /// or any input before the merged watermark exists, is never ahead.
    #[inline]
    pub(crate) fn is_ahead(&self, input: usize, max_drift_ms: i64) -> bool {
        let (Some(merged), Some(w)) = (self.emitted, self.inputs[input].watermark) else { return false };
        let slot = &self.inputs[input];
        !slot.idle && !slot.ended && w.timestamp_ms > merged.timestamp_ms.saturating_add(max_drift_ms)
    }

    /// `input` reported `watermark` (which also makes it active); returns the merged watermark if
    /// it advanced.
    pub(crate) fn on_watermark(&mut self, input: usize, watermark: Watermark) -> Option<Watermark> {
        let emitted = self.emitted;
        let slot = &mut self.inputs[input];
        let w = slot.watermark.map_or(watermark, |old| old.max(watermark));
        slot.watermark = Some(w);
        if slot.idle || !slot.aligned {
            // Back from idleness, or behind: it counts only once at or above the merged watermark.
            slot.aligned = emitted.is_none_or(|e| w >= e);
        }
        slot.idle = false;
        self.output_idle = false;
        self.advance()
    }

    /// `input` delivered records: it is active again. Its watermark counts once it catches up.
    #[inline]
    pub(crate) fn on_records(&mut self, input: usize) {
        let slot = &mut self.inputs[input];
        if slot.idle {
            slot.idle = false;
            slot.aligned = match (slot.watermark, self.emitted) {
                (_, None) => true,
                (Some(w), Some(e)) => w >= e,
                (None, Some(_)) => false,
            };
        }
        self.output_idle = false;
    }

    /// `input` is idle: it does not hold the merged watermark back until it is active again.
    pub(crate) fn on_idle(&mut self, input: usize) -> MergedProgress {
        let slot = &mut self.inputs[input];
        if slot.idle || slot.ended {
            return MergedProgress::NONE;
        }
        slot.idle = true;
        let mut progress = MergedProgress { watermark: self.advance(), became_idle: false };
        if !self.output_idle && self.inputs.iter().all(|i| i.ended || i.idle) {
            // Nobody will advance event time anymore: flush to the largest watermark seen.
            let max = self.inputs.iter().filter(|i| !i.ended).filter_map(|i| i.watermark).max();
            if let Some(max) = max.filter(|m| self.emitted.is_none_or(|e| *m > e)) {
                self.emitted = Some(max);
                progress.watermark = Some(max);
            }
            self.output_idle = true;
            progress.became_idle = true;
        }
        progress
    }

    /// `input` ended: it no longer holds the watermark back. Once every input has ended the
    /// merged watermark is [`Watermark::MAX`].
    pub(crate) fn on_end(&mut self, input: usize) -> Option<Watermark> {
        self.inputs[input].ended = true;
        if self.inputs.iter().all(|i| i.ended) {
            if self.emitted == Some(Watermark::MAX) {
                return None;
            }
            self.emitted = Some(Watermark::MAX);
            return self.emitted;
        }
        self.advance()
    }

    fn advance(&mut self) -> Option<Watermark> {
        let mut min: Option<Watermark> = None;
        for input in self.inputs.iter().filter(|i| !i.ended && !i.idle && i.aligned) {
            match input.watermark {
                None => return None,
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
            }
        }
        let min = min?;
        if self.emitted.is_some_and(|e| e >= min) {
            return None;
        }
        self.emitted = Some(min);
        // Inputs that were active but behind (they rejoined late) count again once caught up.
        for input in self.inputs.iter_mut().filter(|i| !i.aligned) {
            input.aligned = input.watermark.is_some_and(|w| w >= min);
        }
        Some(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t: i64) -> Watermark {
        Watermark { timestamp_ms: t }
    }

    #[test]
    fn watermark_is_the_minimum_over_inputs_and_never_regresses() {
        let mut m = WatermarkMerger::new(2);
        assert_eq!(m.on_watermark(0, w(10)), None);
        assert_eq!(m.on_watermark(1, w(5)), Some(w(5)));
        assert_eq!(m.on_watermark(1, w(20)), Some(w(10)));
        assert_eq!(m.on_watermark(0, w(8)), None, "input 0 went back; output must not");
        assert_eq!(m.on_end(0), Some(w(20)));
    }

    #[test]
    fn an_idle_input_does_not_hold_the_watermark_back() {
        let mut m = WatermarkMerger::new(3);
        m.on_watermark(0, w(100));
        m.on_watermark(1, w(200));
        assert_eq!(m.on_idle(2), MergedProgress { watermark: Some(w(100)), became_idle: false });
        assert_eq!(m.on_watermark(0, w(150)), Some(w(150)));
    }

    #[test]
    fn an_input_idle_from_the_start_never_holds_the_watermark_back() {
        let mut m = WatermarkMerger::new(2);
        assert_eq!(m.on_idle(1).watermark, None);
        assert_eq!(m.on_watermark(0, w(7)), Some(w(7)));
    }

    #[test]
    fn an_input_rejoining_behind_does_not_move_the_watermark_backwards() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(50));
        m.on_watermark(1, w(60));
        m.on_idle(0);
        assert_eq!(m.on_watermark(1, w(300)), Some(w(300)));
        // Input 0 comes back with a stale watermark: it neither lowers nor stalls the output.
        assert_eq!(m.on_watermark(0, w(120)), None);
        assert_eq!(m.current(), Some(w(300)));
        assert_eq!(m.on_watermark(1, w(400)), Some(w(400)), "a rejoined input still behind does not hold back");
        // Once it catches up it counts again.
        assert_eq!(m.on_watermark(0, w(450)), None);
        assert_eq!(m.on_watermark(1, w(500)), Some(w(450)));
    }

    #[test]
    fn records_from_an_idle_input_make_it_active_but_not_aligned_until_it_catches_up() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(10));
        m.on_watermark(1, w(10));
        m.on_idle(1);
        m.on_watermark(0, w(90));
        m.on_records(1);
        assert!(!m.is_idle());
        assert_eq!(m.on_watermark(0, w(95)), Some(w(95)), "behind, so it does not hold back yet");
        assert_eq!(m.on_watermark(1, w(100)), None);
        assert_eq!(m.on_watermark(0, w(120)), Some(w(100)), "caught up: it counts again");
    }

    #[test]
    fn when_every_input_is_idle_the_output_is_idle_at_the_largest_watermark() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(10));
        m.on_watermark(1, w(40));
        assert_eq!(m.on_idle(0), MergedProgress { watermark: Some(w(40)), became_idle: false });
        assert_eq!(m.on_watermark(0, w(30)), None, "back from idleness behind the output: not counted");
        assert_eq!(m.on_idle(0), MergedProgress::NONE);
        assert_eq!(m.on_idle(1), MergedProgress { watermark: None, became_idle: true });
        assert!(m.is_idle());
        assert_eq!(m.on_idle(1), MergedProgress::NONE, "idleness is reported once");
        assert_eq!(m.on_watermark(1, w(41)), Some(w(41)));
        assert!(!m.is_idle());
    }

    #[test]
    fn all_idle_flushes_to_the_largest_watermark_of_any_input() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(10));
        m.on_watermark(1, w(40));
        assert_eq!(m.current(), Some(w(10)));
        m.on_idle(1);
        assert_eq!(m.current(), Some(w(10)));
        assert_eq!(m.on_idle(0), MergedProgress { watermark: Some(w(40)), became_idle: true });
    }

    #[test]
    fn once_every_input_ended_the_watermark_is_max_exactly_once() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(5));
        assert_eq!(m.on_end(1), Some(w(5)));
        assert_eq!(m.on_end(0), Some(Watermark::MAX));
        let mut m = WatermarkMerger::new(1);
        assert_eq!(m.on_watermark(0, Watermark::MAX), Some(Watermark::MAX));
        assert_eq!(m.on_end(0), None);
    }

    #[test]
    fn an_input_is_ahead_only_beyond_the_drift_and_while_active() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(1_000));
        assert!(!m.is_ahead(0, 100), "no merged watermark yet");
        m.on_watermark(1, w(100));
        assert!(m.is_ahead(0, 100) && !m.is_ahead(1, 100));
        assert!(!m.is_ahead(0, 900));
        m.on_idle(1);
        assert!(!m.is_ahead(0, 100), "the slow input went idle: the merged watermark caught up");
    }

    #[test]
    fn an_ended_input_going_idle_changes_nothing() {
        let mut m = WatermarkMerger::new(2);
        m.on_watermark(0, w(5));
        m.on_end(0);
        assert_eq!(m.on_idle(0), MergedProgress::NONE);
    }
}
