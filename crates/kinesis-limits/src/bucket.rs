//! Token buckets that take the current time as an argument, so tests control the clock.

use std::time::{Duration, Instant};

/// A token bucket: holds at most `capacity` tokens, refilled at `rate` tokens per second.
///
/// The balance may go negative with [`TokenBucket::charge`] (a cost known only afterwards,
/// such as the bytes of a GetRecords answer); callers then refuse work until it is positive
/// again.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(capacity: f64, rate: f64, now: Instant) -> Self {
        TokenBucket { capacity, rate, tokens: capacity, last: now }
    }

    /// A full bucket holding one second of `rate`, and at least one token (so that a scaled-down
    /// limit still admits a call now and then).
    pub(crate) fn per_second(rate: f64, now: Instant) -> Self {
        Self::new(rate.max(1.0), rate, now)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
    }

    /// The balance at `now` (negative while in debt).
    pub(crate) fn balance(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// True if `amount` tokens could be taken at `now`. An amount larger than the capacity
    /// fits when the bucket is full (it then leaves the bucket in debt), so that it is never
    /// refused forever.
    pub(crate) fn can_take(&mut self, amount: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= amount.min(self.capacity)
    }

    /// Takes `amount` tokens if [`TokenBucket::can_take`]; returns whether it did.
    pub(crate) fn try_take(&mut self, amount: f64, now: Instant) -> bool {
        if self.can_take(amount, now) {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }

    /// Takes `amount` tokens unconditionally; the balance may go negative.
    pub(crate) fn charge(&mut self, amount: f64, now: Instant) {
        self.refill(now);
        self.tokens -= amount;
    }

    /// How long from `now` until the balance is positive again (zero if it is).
    pub(crate) fn time_until_positive(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens > 0.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn at(start: Instant, seconds: f64) -> Instant {
        start + Duration::from_secs_f64(seconds)
    }

    /// The GetRecords byte rule: refused while the balance is not positive.
    fn reads_allowed(bucket: &mut TokenBucket, now: Instant) -> bool {
        bucket.balance(now) > 0.0
    }

    #[test]
    fn a_sixth_get_records_call_in_one_second_is_throttled() {
        let start = Instant::now();
        let mut calls = TokenBucket::per_second(5.0, start);
        for i in 0..5 {
            assert!(calls.try_take(1.0, at(start, 0.01 * f64::from(i))), "call {} refused", i + 1);
        }
        assert!(!calls.try_take(1.0, at(start, 0.05)), "the sixth call was admitted");
    }

    #[test]
    fn a_refused_call_takes_no_token() {
        let start = Instant::now();
        let mut calls = TokenBucket::per_second(5.0, start);
        for _ in 0..5 {
            assert!(calls.try_take(1.0, start));
        }
        for _ in 0..10 {
            assert!(!calls.try_take(1.0, start));
        }
        assert!(calls.try_take(1.0, at(start, 0.2)), "one token is back after 200 ms despite the refusals");
    }

    #[test]
    fn calls_spread_at_the_rate_are_never_throttled() {
        let start = Instant::now();
        let mut calls = TokenBucket::per_second(5.0, start);
        for i in 0..100 {
            assert!(calls.try_take(1.0, at(start, 0.2 * f64::from(i))), "call {i} refused");
        }
    }

    #[test]
    fn a_10_mib_response_on_an_idle_shard_blocks_it_4_seconds_at_2_mib_per_second() {
        let start = Instant::now();
        let mut bytes = TokenBucket::per_second(2.0 * MIB, start);
        assert!(reads_allowed(&mut bytes, start));
        bytes.charge(10.0 * MIB, start);
        assert_eq!(bytes.time_until_positive(start), Duration::from_secs(4));
        for t in [0.0, 1.0, 2.0, 3.0, 3.9] {
            assert!(!reads_allowed(&mut bytes, at(start, t)), "admitted {t} s after a 10 MiB answer");
        }
        assert!(reads_allowed(&mut bytes, at(start, 4.1)));
        assert_eq!(bytes.time_until_positive(at(start, 4.1)), Duration::ZERO);
    }

    #[test]
    fn a_10_mib_response_on_a_busy_shard_blocks_it_about_5_seconds_then_admits() {
        let start = Instant::now();
        let mut bytes = TokenBucket::per_second(2.0 * MIB, start);
        // The shard has been read at its full rate: the balance is (almost) used up.
        bytes.charge(2.0 * MIB - 1.0, start);
        assert!(reads_allowed(&mut bytes, start));
        bytes.charge(10.0 * MIB, start);
        let wait = bytes.time_until_positive(start);
        assert!((4.99..=5.01).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(!reads_allowed(&mut bytes, at(start, 4.9)));
        assert!(reads_allowed(&mut bytes, at(start, 5.01)));
    }

    #[test]
    fn the_balance_never_exceeds_one_second_of_rate() {
        let start = Instant::now();
        let mut bytes = TokenBucket::per_second(2.0 * MIB, start);
        assert_eq!(bytes.balance(at(start, 60.0)), 2.0 * MIB);
    }

    #[test]
    fn an_entry_larger_than_the_capacity_fits_only_a_full_bucket() {
        let start = Instant::now();
        let mut bytes = TokenBucket::per_second(1000.0, start);
        assert!(bytes.try_take(5000.0, start), "a full bucket admits an oversize amount");
        assert!(!bytes.try_take(1.0, at(start, 3.9)), "the debt of 4000 lasts 4 s");
        assert!(bytes.try_take(1.0, at(start, 4.1)));
    }

    #[test]
    fn a_scaled_down_rate_below_one_still_admits_one_call() {
        let start = Instant::now();
        let mut calls = TokenBucket::per_second(0.2, start);
        assert!(calls.try_take(1.0, start));
        assert!(!calls.try_take(1.0, at(start, 4.9)));
        assert!(calls.try_take(1.0, at(start, 5.1)));
    }

    #[test]
    fn time_going_backwards_changes_nothing() {
        let start = Instant::now();
        let later = at(start, 1.0);
        let mut calls = TokenBucket::per_second(5.0, later);
        assert!(calls.try_take(5.0, later));
        assert!(!calls.try_take(1.0, start));
        assert!(calls.try_take(1.0, at(start, 1.2)));
    }
}
