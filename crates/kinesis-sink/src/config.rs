//! The sink's settings and their limits.

use std::time::Duration;

use rill_kinesis_common::FullJitter;

use crate::SinkError;

/// Kinesis limit: records per PutRecords request.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Kinesis limit: bytes (data plus partition keys) per PutRecords request, 5 MiB.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Kinesis limit: bytes (data plus partition key) per record, 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// What to do with records that cannot be delivered: too large, bad partition key, no target
/// stream, serializer failure, or still failing when their retries ran out (transient failures
/// after `max_retries` attempts, throttling after `throttle_retry_timeout`).
///
/// Fatal errors from Kinesis (missing stream, access denied, validation, KMS, credentials) always
/// fail the task, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Fail the task (the default; Flink's `sink.fail-on-error=true`). The job restarts from its
    /// last checkpoint and loses nothing.
    #[default]
    Fail,
    /// Re-queue failed records and retry them without giving up, neither by count nor by time
    /// (Flink's `sink.fail-on-error=false`). Records that can never be sent (too large, bad
    /// partition key, serializer failure) still fail the task.
    RetryForever,
    /// Drop the records, count them in the `dropped` metric, and log one warning per dropped batch.
    DropAndCount,
}

/// Everything that shapes batching, buffering, retries and rate control.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Records per PutRecords request (1..=500; default 500).
    pub max_batch_records: usize,
    /// Bytes (data plus partition keys) per request (up to 5 MiB; default 5 MiB).
    pub max_batch_bytes: usize,
    /// How long a record may wait for its batch to fill before the batch is sent (default 100 ms).
    pub linger: Duration,
    /// Concurrent PutRecords requests per subtask (default 8).
    pub max_in_flight_requests: usize,
    /// Records held per subtask, buffered, in flight or waiting for a retry; `process` blocks
    /// when it is reached (default 10,000).
    pub max_buffered_records: usize,
    /// Bytes held per subtask, likewise (default 64 MiB; at least 1 MiB).
    pub max_buffered_bytes: usize,
    /// Retries per record after transient errors (default 10). Throttling does not count: it is
    /// bounded by `throttle_retry_timeout`.
    pub max_retries: u32,
    /// How long a throttled record is retried (default `None`: for as long as it takes;
    /// throttling is the stream saying "slower", not "never").
    pub throttle_retry_timeout: Option<Duration>,
    /// Keep the order of the records of each partition key, also across partial failures and
    /// retries: at most one record per key is in flight or waiting for a retry, so each key
    /// moves one record per round trip (default off: records of a key may be reordered by
    /// concurrent requests and by retries).
    pub ordering: bool,
    /// Backoff before retry n: random in `[0, min(backoff_max, backoff_base * 2^n)]`.
    pub backoff_base: Duration,
    /// Upper bound of the backoff (default 5 s).
    pub backoff_max: Duration,
    /// Timeout of one PutRecords attempt (default 30 s); a hung call then counts as transient.
    pub request_timeout: Duration,
    /// Records added to an in-flight limit after each successful request (default 10, Flink's
    /// async sink). Whole-request failures act on the subtask's limit, throttled entries on
    /// their shard's.
    pub rate_increase: usize,
    /// Factor applied to an in-flight limit after throttling or failures (default 0.5; Flink's
    /// 0.99 reached 0.52 of an enforced write limit with six times the throttled entries in
    /// `benches/kinesis_limits.sh`, 0.5 reached the limit).
    pub rate_decrease_factor: f64,
    /// What to do with undeliverable records.
    pub error_policy: ErrorPolicy,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            max_batch_records: MAX_BATCH_RECORDS,
            max_batch_bytes: MAX_BATCH_BYTES,
            linger: Duration::from_millis(100),
            max_in_flight_requests: 8,
            max_buffered_records: 10_000,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_retries: 10,
            throttle_retry_timeout: None,
            ordering: false,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            rate_increase: 10,
            rate_decrease_factor: 0.5,
            error_policy: ErrorPolicy::Fail,
        }
    }
}

impl SinkConfig {
    /// The retry backoff.
    pub(crate) fn backoff(&self) -> FullJitter {
        FullJitter::new(self.backoff_base, self.backoff_max)
    }

    /// Checks every setting against its range.
    pub(crate) fn validate(&self) -> Result<(), SinkError> {
        let bad = |setting: &'static str, value: String, reason: &str| {
            Err(SinkError::InvalidSetting { setting, value, reason: reason.to_string() })
        };
        if !(1..=MAX_BATCH_RECORDS).contains(&self.max_batch_records) {
            return bad("max_batch_records", self.max_batch_records.to_string(), "must be 1 to 500 (Kinesis limit)");
        }
        if !(1..=MAX_BATCH_BYTES).contains(&self.max_batch_bytes) {
            return bad("max_batch_bytes", self.max_batch_bytes.to_string(), "must be 1 to 5 MiB (Kinesis limit)");
        }
        if self.max_in_flight_requests == 0 {
            return bad("max_in_flight_requests", "0".into(), "must be at least 1");
        }
        if self.max_buffered_records == 0 {
            return bad("max_buffered_records", "0".into(), "must be at least 1");
        }
        if self.max_buffered_bytes < MAX_RECORD_BYTES {
            return bad(
                "max_buffered_bytes",
                self.max_buffered_bytes.to_string(),
                "must be at least 1 MiB so a record of maximum size fits",
            );
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "0".into(), "must be positive");
        }
        if !(self.rate_decrease_factor > 0.0 && self.rate_decrease_factor < 1.0) {
            return bad(
                "rate_decrease_factor",
                self.rate_decrease_factor.to_string(),
                "must be between 0 and 1 (exclusive)",
            );
        }
        if self.rate_increase == 0 {
            return bad("rate_increase", "0".into(), "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SinkConfig::default().validate().unwrap();
    }

    #[test]
    fn a_batch_over_the_kinesis_limit_is_rejected_naming_the_setting() {
        let config = SinkConfig { max_batch_records: 501, ..SinkConfig::default() };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_batch_records") && err.contains("501"), "{err}");
    }
}
