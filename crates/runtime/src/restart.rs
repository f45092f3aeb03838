//! Restart strategies (Flink's): what to do when a task fails with a retryable error. The
//! decision is pure — [`RestartTracker::on_failure`] takes the time of the failure and says how
//! long to wait before the restart, or to give up — so it is tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a job restarts after a retryable task failure (fatal errors never restart).
///
/// The default is Flink's since 1.19: exponential delay, 1 s growing by 1.5x up to 1 min, with
/// 10 % jitter, reset to 1 s once the job has run an hour without failing — a job that meets one
/// transient fault a week runs for years.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartStrategy {
    /// Never restart: the first failure fails the job.
    None,
    /// At most `max_restarts` restarts over the life of the job, `delay` apart.
    FixedDelay {
        /// Restarts allowed before the job fails.
        max_restarts: usize,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart unless more than `max_failures` failures happened within the last `interval`.
    FailureRate {
        /// Failures tolerated within any `interval`.
        max_failures: usize,
        /// The sliding window failures are counted in.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart after a delay that grows with each failure and resets after a healthy period.
    ExponentialDelay {
        /// The first delay, and the delay after a reset.
        initial: Duration,
        /// The largest delay.
        max: Duration,
        /// Each failure multiplies the delay by this.
        multiplier: f64,
        /// Each delay is randomized by up to this fraction either way (0.1: ±10 %).
        jitter: f64,
        /// A failure this long after the previous one starts again from `initial`.
        reset_after: Duration,
    },
}

impl Default for RestartStrategy {
    fn default() -> Self {
        RestartStrategy::exponential_delay(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl RestartStrategy {
    /// Fixed delay between at most `max_restarts` restarts.
    pub fn fixed_delay(max_restarts: usize, delay: Duration) -> Self {
        RestartStrategy::FixedDelay { max_restarts, delay }
    }

    /// Never restart.
    pub fn none() -> Self {
        RestartStrategy::None
    }

    /// At most `max_failures` failures per `interval`, `delay` before each restart.
    pub fn failure_rate(max_failures: usize, interval: Duration, delay: Duration) -> Self {
        RestartStrategy::FailureRate { max_failures, interval, delay }
    }

    /// Exponential delay from `initial` to `max` with Flink's other defaults (multiplier 1.5,
    /// jitter 10 %, reset after an hour without failure).
    pub fn exponential_delay(initial: Duration, max: Duration) -> Self {
        RestartStrategy::ExponentialDelay {
            initial,
            max,
            multiplier: 1.5,
            jitter: 0.1,
            reset_after: Duration::from_secs(3600),
        }
    }

    /// The same strategy with another healthy period after which an exponential delay resets.
    pub fn with_reset_after(self, healthy: Duration) -> Self {
        match self {
            RestartStrategy::ExponentialDelay { initial, max, multiplier, jitter, .. } => {
                RestartStrategy::ExponentialDelay { initial, max, multiplier, jitter, reset_after: healthy }
            }
            other => other,
        }
    }
}

impl std::str::FromStr for RestartStrategy {
    type Err = String;

    /// Parses a command-line spelling: `none`, `fixed-delay:RESTARTS:DELAY_MS`,
    /// `failure-rate:FAILURES:INTERVAL_MS:DELAY_MS`, `exponential-delay:INITIAL_MS:MAX_MS[:RESET_MS]`
    /// or `default`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let number = |i: usize| -> Result<u64, String> {
            let part = parts.get(i).ok_or_else(|| format!("restart strategy '{text}': missing field {i}"))?;
            part.parse().map_err(|_| format!("restart strategy '{text}': '{part}' is not a number"))
        };
        let ms = |i: usize| number(i).map(Duration::from_millis);
        let strategy = match (parts[0], parts.len()) {
            ("none", 1) => RestartStrategy::None,
            ("default", 1) => RestartStrategy::default(),
            ("fixed-delay", 3) => RestartStrategy::fixed_delay(number(1)? as usize, ms(2)?),
            ("failure-rate", 4) => RestartStrategy::failure_rate(number(1)? as usize, ms(2)?, ms(3)?),
            ("exponential-delay", 3) => RestartStrategy::exponential_delay(ms(1)?, ms(2)?),
            ("exponential-delay", 4) => RestartStrategy::exponential_delay(ms(1)?, ms(2)?).with_reset_after(ms(3)?),
            _ => {
                return Err(format!(
                    "unknown restart strategy '{text}': expected none, default, fixed-delay:RESTARTS:DELAY_MS, \
                     failure-rate:FAILURES:INTERVAL_MS:DELAY_MS or exponential-delay:INITIAL_MS:MAX_MS[:RESET_MS]"
                ))
            }
        };
        Ok(strategy)
    }
}

/// What a failure leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RestartDecision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// The strategy gives up: the job fails.
    GiveUp,
}

/// The failure history of one job run, as far as its strategy needs it.
#[derive(Debug, Clone)]
pub(crate) struct RestartTracker {
    strategy: RestartStrategy,
    restarts: usize,
    recent: VecDeque<Instant>,
    last_failure: Option<Instant>,
    backoff: Option<Duration>,
}

impl RestartTracker {
    pub(crate) fn new(strategy: RestartStrategy) -> Self {
        RestartTracker { strategy, restarts: 0, recent: VecDeque::new(), last_failure: None, backoff: None }
    }

    /// A retryable failure happened at `now`; `random` is uniform in [0, 1) (for the jitter).
    pub(crate) fn on_failure(&mut self, now: Instant, random: f64) -> RestartDecision {
        let decision = match self.strategy {
            RestartStrategy::None => RestartDecision::GiveUp,
            RestartStrategy::FixedDelay { max_restarts, delay } => {
                if self.restarts >= max_restarts {
                    RestartDecision::GiveUp
                } else {
                    RestartDecision::RestartAfter(delay)
                }
            }
            RestartStrategy::FailureRate { max_failures, interval, delay } => {
                self.recent.push_back(now);
                while self.recent.front().is_some_and(|t| now.duration_since(*t) > interval) {
                    self.recent.pop_front();
                }
                if self.recent.len() > max_failures {
                    RestartDecision::GiveUp
                } else {
                    RestartDecision::RestartAfter(delay)
                }
            }
            RestartStrategy::ExponentialDelay { initial, max, multiplier, jitter, reset_after } => {
                let healthy = self.last_failure.is_none_or(|last| now.duration_since(last) >= reset_after);
                let base = match self.backoff {
                    Some(previous) if !healthy => previous.mul_f64(multiplier.max(1.0)).min(max),
                    _ => initial.min(max),
                };
                self.backoff = Some(base);
                let spread = jitter.clamp(0.0, 1.0) * (2.0 * random.clamp(0.0, 1.0) - 1.0);
                RestartDecision::RestartAfter(base.mul_f64(1.0 + spread))
            }
        };
        self.last_failure = Some(now);
        if matches!(decision, RestartDecision::RestartAfter(_)) {
            self.restarts += 1;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    fn delays(tracker: &mut RestartTracker, start: Instant, at_secs: &[u64]) -> Vec<RestartDecision> {
        at_secs.iter().map(|s| tracker.on_failure(after(start, *s), 0.5)).collect()
    }

    #[test]
    fn fixed_delay_gives_up_after_its_restarts_over_the_whole_run() {
        let mut t = RestartTracker::new(RestartStrategy::fixed_delay(2, Duration::from_millis(5)));
        let d = delays(&mut t, Instant::now(), &[0, 100_000, 200_000]);
        let five = RestartDecision::RestartAfter(Duration::from_millis(5));
        assert_eq!(d, vec![five, five, RestartDecision::GiveUp]);
    }

    #[test]
    fn failure_rate_forgives_failures_that_left_the_interval() {
        let s = RestartStrategy::failure_rate(2, Duration::from_secs(60), Duration::ZERO);
        let mut t = RestartTracker::new(s);
        let start = Instant::now();
        let restart = RestartDecision::RestartAfter(Duration::ZERO);
        assert_eq!(delays(&mut t, start, &[0, 10]), vec![restart, restart]);
        assert_eq!(t.on_failure(after(start, 20), 0.5), RestartDecision::GiveUp, "three within a minute");
        let mut t = RestartTracker::new(s);
        // One failure a week, for a hundred weeks: never more than one per minute.
        let weekly: Vec<u64> = (0..100).map(|w| w * 7 * 24 * 3600).collect();
        assert!(delays(&mut t, start, &weekly).iter().all(|d| *d == restart));
    }

    #[test]
    fn exponential_delay_grows_to_its_maximum_and_resets_after_a_healthy_period() {
        let s = RestartStrategy::exponential_delay(Duration::from_secs(1), Duration::from_secs(4))
            .with_reset_after(Duration::from_secs(600));
        let mut t = RestartTracker::new(s);
        let start = Instant::now();
        let got = delays(&mut t, start, &[0, 10, 20, 30, 40, 50, 50 + 600]);
        let secs = |f: f64| RestartDecision::RestartAfter(Duration::from_secs_f64(f));
        assert_eq!(got, vec![secs(1.0), secs(1.5), secs(2.25), secs(3.375), secs(4.0), secs(4.0), secs(1.0)]);
    }

    #[test]
    fn the_default_strategy_survives_a_transient_fault_every_week_for_years() {
        let mut t = RestartTracker::new(RestartStrategy::default());
        let start = Instant::now();
        let weekly: Vec<u64> = (0..200).map(|w| w * 7 * 24 * 3600).collect();
        let got = delays(&mut t, start, &weekly);
        assert!(got.iter().all(|d| *d == RestartDecision::RestartAfter(Duration::from_secs(1))), "{got:?}");
    }

    #[test]
    fn strategies_parse_from_their_command_line_spelling() {
        assert_eq!("none".parse::<RestartStrategy>().unwrap(), RestartStrategy::None);
        assert_eq!(
            "fixed-delay:3:500".parse::<RestartStrategy>().unwrap(),
            RestartStrategy::fixed_delay(3, Duration::from_millis(500))
        );
        assert_eq!(
            "exponential-delay:100:2000:10000".parse::<RestartStrategy>().unwrap(),
            RestartStrategy::exponential_delay(Duration::from_millis(100), Duration::from_secs(2))
                .with_reset_after(Duration::from_secs(10))
        );
        let err = "fixed-delay:x:1".parse::<RestartStrategy>().unwrap_err();
        assert!(err.contains("'x' is not a number"), "{err}");
        assert!("sometimes".parse::<RestartStrategy>().unwrap_err().contains("unknown restart strategy"));
    }

    #[test]
    fn jitter_spreads_the_delay_both_ways() {
        let s = RestartStrategy::exponential_delay(Duration::from_secs(10), Duration::from_secs(10));
        let low = RestartTracker::new(s).on_failure(Instant::now(), 0.0);
        let high = RestartTracker::new(s).on_failure(Instant::now(), 0.999_999);
        assert_eq!(low, RestartDecision::RestartAfter(Duration::from_secs(9)));
        assert!(matches!(high, RestartDecision::RestartAfter(d) if d > Duration::from_millis(10_999)));
    }
}
