//! Full-jitter exponential backoff, as AWS recommends and Flink's Kinesis connector uses.
//!
//! The delay before retry `n` (0-based) is `random(0, min(max, base * exponent^n))`.
//! [`FullJitter`] computes single delays (for code that schedules retries itself) and is a
//! [`backon::BackoffBuilder`], so it plugs into [`backon::Retryable`] for ordinary retry loops:
//!
//! ```
//! use std::time::Duration;
//! use backon::Retryable;
//! use rill_kinesis_common::FullJitter;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let policy = FullJitter::new(Duration::from_millis(1), Duration::from_millis(4)).max_retries(3);
//! let mut calls = 0;
//! let result: Result<u32, &str> = (|| {
//!     calls += 1;
//!     let attempt = calls;
//!     async move { if attempt < 3 { Err("not yet") } else { Ok(attempt) } }
//! })
//! .retry(policy)
//! .await;
//! assert_eq!(result, Ok(3));
//! # }
//! ```

use std::time::Duration;

/// Full-jitter exponential backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FullJitter {
    base: Duration,
    max: Duration,
    exponent: f64,
    max_retries: Option<usize>,
}

impl FullJitter {
    /// Delays capped at `base * 2^n`, never above `max`, with unlimited retries.
    pub fn new(base: Duration, max: Duration) -> Self {
        FullJitter { base, max: max.max(base), exponent: 2.0, max_retries: None }
    }

    /// The growth factor per retry (default 2.0; Flink's `...backoff.expconst` default is 1.5).
    /// Values below 1.0 are treated as 1.0.
    pub fn exponent(mut self, exponent: f64) -> Self {
        self.exponent = if exponent.is_finite() { exponent.max(1.0) } else { 1.0 };
        self
    }

    /// Stop after this many retries when used as a [`backon::BackoffBuilder`].
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// The configured retry limit, if any.
    pub fn retry_limit(&self) -> Option<usize> {
        self.max_retries
    }

    /// The upper bound of the delay before retry `attempt` (0-based): `min(max, base * exponent^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self.exponent.powi(attempt.min(1024) as i32);
        let secs = self.base.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// A random delay in `[0, ceiling(attempt)]` for retry `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(fastrand::f64())
    }
}

impl backon::BackoffBuilder for FullJitter {
    type Backoff = FullJitterBackoff;

    fn build(self) -> FullJitterBackoff {
        FullJitterBackoff { policy: self, attempt: 0 }
    }
}

/// The iterator of delays made by [`FullJitter`] (a [`backon::Backoff`]).
#[derive(Debug, Clone)]
pub struct FullJitterBackoff {
    policy: FullJitter,
    attempt: u32,
}

impl Iterator for FullJitterBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.policy.max_retries.is_some_and(|max| self.attempt as usize >= max) {
            return None;
        }
        let delay = self.policy.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_grows_by_the_exponent_and_stops_at_max() {
        let p = FullJitter::new(Duration::from_millis(100), Duration::from_millis(1000)).exponent(2.0);
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(4), Duration::from_millis(1000));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling() {
        let p = FullJitter::new(Duration::from_millis(10), Duration::from_millis(50));
        for attempt in 0..20 {
            assert!(p.delay(attempt) <= p.ceiling(attempt));
        }
    }

    #[test]
    fn the_backoff_iterator_ends_after_max_retries() {
        let p = FullJitter::new(Duration::from_millis(1), Duration::from_millis(2)).max_retries(3);
        assert_eq!(backon::BackoffBuilder::build(p).count(), 3);
    }
}
