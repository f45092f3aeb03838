//! Calling Kinesis with full-jitter backoff. Throttling is expected on a busy stream (the shard's
//! read budget is shared by every consumer): it is retried for as long as the throttle timeout
//! allows, never bounded by a count. Transient and network failures are retried up to the
//! configured count; fatal ones, exhausted retries and a throttle outlasting its timeout become
//! errors.

use std::future::Future;
use std::time::{Duration, Instant};

use rill_kinesis_common::{AwsErrorKind, Error as CommonError};

use crate::config::RetrySettings;
use crate::metrics::Stats;
use crate::KinesisSourceError;

/// Why a call with retries did not succeed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The shard iterator expired: the caller renews it.
    ExpiredIterator,
    /// Fatal, or retries exhausted.
    Failed(KinesisSourceError),
}

/// How long throttled calls are retried before the failure is reported (`None`: forever).
pub(crate) type ThrottleTimeout = Option<Duration>;

/// Runs `call` until it succeeds, retrying retryable failures with the backoff of `retry`:
/// transient failures `retry.max_retries` times, throttling until `throttle_timeout` has passed
/// since the first throttle of an unbroken run of them.
pub(crate) async fn with_retries<T, F, Fut>(
    operation: &'static str,
    target: &str,
    retry: &RetrySettings,
    throttle_timeout: ThrottleTimeout,
    stats: &Stats,
    mut call: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CommonError>>,
{
    let backoff = retry.backoff();
    let mut attempt: u32 = 0;
    let mut transient_failures: u32 = 0;
    let mut throttled_since: Option<Instant> = None;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let class = error.class();
        match class {
            AwsErrorKind::ExpiredIterator => return Err(CallError::ExpiredIterator),
            AwsErrorKind::Fatal => {
                return Err(CallError::Failed(KinesisSourceError::Api {
                    operation,
                    target: target.to_string(),
                    source: Box::new(error),
                }))
            }
            AwsErrorKind::Throttled => {
                let since = *throttled_since.get_or_insert_with(Instant::now);
                if throttle_timeout.is_some_and(|t| since.elapsed() >= t) {
                    return Err(CallError::Failed(KinesisSourceError::ThrottledTooLong {
                        operation,
                        target: target.to_string(),
                        waited: since.elapsed(),
                        last: Box::new(error),
                    }));
                }
            }
            AwsErrorKind::Transient => {
                throttled_since = None;
                if transient_failures >= retry.max_retries {
                    return Err(CallError::Failed(KinesisSourceError::RetriesExhausted {
                        operation,
                        target: target.to_string(),
                        attempts: attempt + 1,
                        last: Box::new(error),
                    }));
                }
                transient_failures += 1;
            }
        }
        let delay = backoff.delay(attempt);
        stats.retry(operation, class == AwsErrorKind::Throttled);
        tracing::debug!(operation, target, attempt, %class, ?delay, error = %error, "retrying Kinesis call");
        tokio::time::sleep(delay).await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn api(code: &str, class: AwsErrorKind) -> CommonError {
        CommonError::Api {
            operation: "GetRecords",
            stream: Some("s".into()),
            class,
            code: Some(code.into()),
            message: code.into(),
            source: code.to_string().into(),
        }
    }

    fn fast(retries: u32) -> RetrySettings {
        RetrySettings {
            max_retries: retries,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
            exponent: 1.5,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn throttling_is_retried_and_counted_until_success() {
        let stats = Stats::default();
        let mut calls = 0;
        let out = with_retries("GetRecords", "s/0", &fast(3), None, &stats, || {
            calls += 1;
            let n = calls;
            async move {
                if n <= 2 {
                    Err(api("ProvisionedThroughputExceededException", AwsErrorKind::Throttled))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(out, Ok(3)));
        assert_eq!(stats.snapshot().retries, 2);
        assert_eq!(stats.snapshot().throttles, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn exhausted_retries_name_the_operation_and_attempts() {
        let stats = Stats::default();
        let out: Result<(), _> = with_retries("GetRecords", "s/0", &fast(2), None, &stats, || async {
            Err(api("InternalFailure", AwsErrorKind::Transient))
        })
        .await;
        let Err(CallError::Failed(e)) = out else { panic!("expected failure") };
        let text = e.to_string();
        assert!(text.contains("GetRecords") && text.contains("3 attempt"), "{text}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fatal_errors_and_expired_iterators_are_not_retried() {
        let stats = Stats::default();
        let out: Result<(), _> = with_retries("ListShards", "s", &fast(5), None, &stats, || async {
            Err(api("AccessDeniedException", AwsErrorKind::Fatal))
        })
        .await;
        assert!(matches!(out, Err(CallError::Failed(KinesisSourceError::Api { .. }))));
        let out: Result<(), _> = with_retries("GetRecords", "s/0", &fast(5), None, &stats, || async {
            Err(api("ExpiredIteratorException", AwsErrorKind::ExpiredIterator))
        })
        .await;
        assert!(matches!(out, Err(CallError::ExpiredIterator)));
        assert_eq!(stats.snapshot().retries, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn throttling_is_retried_past_the_retry_count_for_as_long_as_the_timeout_allows() {
        let stats = Stats::default();
        let mut calls = 0;
        let out = with_retries("GetRecords", "s/0", &fast(3), Some(Duration::from_secs(60)), &stats, || {
            calls += 1;
            let n = calls;
            async move {
                if n <= 20 {
                    Err(api("ProvisionedThroughputExceededException", AwsErrorKind::Throttled))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(out, Ok(21)), "20 throttles with 3 retries allowed must still succeed: {out:?}");
        assert_eq!(stats.snapshot().throttles, 20);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_throttle_outlasting_its_timeout_fails_naming_the_wait() {
        let stats = Stats::default();
        let out: Result<(), _> =
            with_retries("GetRecords", "s/0", &fast(3), Some(Duration::from_millis(30)), &stats, || async {
                Err(api("ProvisionedThroughputExceededException", AwsErrorKind::Throttled))
            })
            .await;
        let Err(CallError::Failed(e)) = out else { panic!("expected failure") };
        let text = e.to_string();
        assert!(text.contains("GetRecords") && text.contains("throttled for"), "{text}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn throttles_do_not_use_up_the_transient_retries() {
        let stats = Stats::default();
        let mut calls = 0;
        let out = with_retries("GetRecords", "s/0", &fast(2), None, &stats, || {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 | 3 => Err(api("InternalFailure", AwsErrorKind::Transient)),
                    n if n < 8 => Err(api("ProvisionedThroughputExceededException", AwsErrorKind::Throttled)),
                    n => Ok(n),
                }
            }
        })
        .await;
        assert!(matches!(out, Ok(8)), "{out:?}");
    }
}
