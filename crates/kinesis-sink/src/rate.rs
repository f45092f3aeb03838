//! AIMD rate control: how many records may be in flight at once.
//!
//! As in Flink's async sink: the limit grows by a fixed number of records after each fully
//! successful request (additive increase) and is multiplied by a factor below one after a
//! throttled or failed request (multiplicative decrease). Requests already in flight when the
//! limit was lowered do not lower it again, so a burst of throttled answers to one window of
//! requests counts as one congestion signal, as in TCP.

/// The in-flight record limit and its adjustment.
#[derive(Debug, Clone)]
pub(crate) struct Aimd {
    limit: usize,
    min: usize,
    max: usize,
    increase: usize,
    decrease_factor: f64,
    /// Bumped at each decrease; requests carry the epoch they were sent in.
    epoch: u64,
}

impl Aimd {
    /// Starts at `max` (optimistic: the first congestion signal lowers it).
    pub(crate) fn new(max: usize, increase: usize, decrease_factor: f64) -> Self {
        let max = max.max(1);
        Aimd { limit: max, min: 1, max, increase, decrease_factor, epoch: 0 }
    }

    /// Records allowed in flight now.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The epoch to stamp on a request sent now.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A request succeeded completely.
    pub(crate) fn on_success(&mut self) {
        self.limit = (self.limit + self.increase).min(self.max);
    }

    /// A request sent in `sent_epoch` was throttled or failed. Returns whether the limit was lowered.
    pub(crate) fn on_congestion(&mut self, sent_epoch: u64) -> bool {
        if sent_epoch != self.epoch {
            return false;
        }
        let lowered = ((self.limit as f64) * self.decrease_factor).floor() as usize;
        self.limit = lowered.clamp(self.min, self.max);
        self.epoch += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn congestion_halves_the_limit_once_per_window_and_success_raises_it() {
        let mut rate = Aimd::new(2000, 50, 0.5);
        let window = rate.epoch();
        assert!(rate.on_congestion(window));
        assert!(!rate.on_congestion(window), "a second answer from the same window must not lower again");
        assert_eq!(rate.limit(), 1000);
        rate.on_success();
        assert_eq!(rate.limit(), 1050);
        for _ in 0..100 {
            rate.on_success();
        }
        assert_eq!(rate.limit(), 2000);
    }

    #[test]
    fn the_limit_never_drops_below_one_record() {
        let mut rate = Aimd::new(4, 1, 0.1);
        for _ in 0..10 {
            let e = rate.epoch();
            rate.on_congestion(e);
        }
        assert_eq!(rate.limit(), 1);
    }
}
