//! [`KinesisSinkBuilder::from_properties`]: Flink's connection keys plus Flink's async-sink keys.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use rill_kinesis_common::{is_connection_key, KinesisConnection};

use crate::{ErrorPolicy, KinesisSinkBuilder, Partitioner, SinkError};

/// `stream`: the default target stream (Flink table option name).
pub const STREAM: &str = "stream";
/// `sink.batch.max-size`: records per request (Flink; default 500).
pub const BATCH_MAX_SIZE: &str = "sink.batch.max-size";
/// `sink.flush-buffer.size`: bytes per request (Flink; default 5 MiB).
pub const FLUSH_BUFFER_SIZE: &str = "sink.flush-buffer.size";
/// `sink.flush-buffer.timeout`: linger time in milliseconds (Flink; here default 100).
pub const FLUSH_BUFFER_TIMEOUT: &str = "sink.flush-buffer.timeout";
/// `sink.requests.max-inflight`: concurrent requests per subtask (Flink; here default 8).
pub const REQUESTS_MAX_INFLIGHT: &str = "sink.requests.max-inflight";
/// `sink.requests.max-buffered`: records held per subtask before back-pressure (Flink; default 10000).
pub const REQUESTS_MAX_BUFFERED: &str = "sink.requests.max-buffered";
/// `sink.fail-on-error`: as in Flink, `true` fails the task on records that cannot be delivered,
/// `false` re-queues failed records and retries them without giving up
/// ([`ErrorPolicy::RetryForever`]). Without the key rill fails after bounded retries
/// ([`ErrorPolicy::Fail`]).
pub const FAIL_ON_ERROR: &str = "sink.fail-on-error";
/// `sink.error-policy`: `fail`, `retry-forever` or `drop-and-count` (takes precedence over
/// `sink.fail-on-error`).
pub const ERROR_POLICY: &str = "sink.error-policy";
/// `sink.throttle-retry.timeout`: how long throttled records are retried, in milliseconds
/// (default: for ever).
pub const THROTTLE_RETRY_TIMEOUT: &str = "sink.throttle-retry.timeout";
/// `sink.ordering`: `true` keeps per-partition-key order across retries (default false).
pub const ORDERING: &str = "sink.ordering";
/// `sink.partitioner`: `random` (default) or `fixed` (subtask index).
pub const PARTITIONER: &str = "sink.partitioner";
/// `sink.buffer.max-bytes`: bytes held per subtask before back-pressure (default 64 MiB).
pub const BUFFER_MAX_BYTES: &str = "sink.buffer.max-bytes";
/// `sink.retries.max`: retries per record (default 10).
pub const RETRIES_MAX: &str = "sink.retries.max";
/// `sink.retries.backoff.base`: first backoff ceiling in milliseconds (default 100).
pub const RETRIES_BACKOFF_BASE: &str = "sink.retries.backoff.base";
/// `sink.retries.backoff.max`: largest backoff in milliseconds (default 5000).
pub const RETRIES_BACKOFF_MAX: &str = "sink.retries.backoff.max";
/// `sink.request.timeout`: timeout of one PutRecords attempt in milliseconds (default 30000).
pub const REQUEST_TIMEOUT: &str = "sink.request.timeout";

/// Every non-connection key the sink reads.
pub const SINK_PROPERTY_KEYS: &[&str] = &[
    STREAM,
    BATCH_MAX_SIZE,
    FLUSH_BUFFER_SIZE,
    FLUSH_BUFFER_TIMEOUT,
    REQUESTS_MAX_INFLIGHT,
    REQUESTS_MAX_BUFFERED,
    FAIL_ON_ERROR,
    PARTITIONER,
    BUFFER_MAX_BYTES,
    RETRIES_MAX,
    RETRIES_BACKOFF_BASE,
    RETRIES_BACKOFF_MAX,
    REQUEST_TIMEOUT,
    ERROR_POLICY,
    THROTTLE_RETRY_TIMEOUT,
    ORDERING,
];

impl<T: Send + 'static> KinesisSinkBuilder<T> {
    /// A builder configured from properties: the `aws.*` connection keys of
    /// [`KinesisConnection::from_properties`] (`aws.region`, `aws.endpoint`,
    /// `aws.credentials.provider` and its sub-keys) and the sink keys in [`SINK_PROPERTY_KEYS`].
    /// Set the serializer (and anything else) on the returned builder.
    ///
    /// # Errors
    ///
    /// An unknown key or a bad value, naming both.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use rill_kinesis_sink::KinesisSinkBuilder;
    /// let props: HashMap<String, String> = [
    ///     ("aws.region", "us-east-1"),
    ///     ("aws.endpoint", "http://127.0.0.1:4567"),
    ///     ("stream", "orders"),
    ///     ("sink.batch.max-size", "200"),
    ///     ("sink.fail-on-error", "true"),
    /// ]
    /// .into_iter()
    /// .map(|(k, v)| (k.to_string(), v.to_string()))
    /// .collect();
    /// let sink = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props).unwrap().serializer(|r| r).build().unwrap();
    /// assert_eq!(sink.config().max_batch_records, 200);
    ///
    /// let bad: HashMap<String, String> = [("sink.batch.max-size".to_string(), "lots".to_string())].into();
    /// let err = KinesisSinkBuilder::<Vec<u8>>::from_properties(&bad).unwrap_err().to_string();
    /// assert!(err.contains("sink.batch.max-size") && err.contains("lots"));
    /// ```
    pub fn from_properties(properties: &HashMap<String, String>) -> Result<Self, SinkError> {
        let mut keys: Vec<&String> = properties.keys().filter(|k| !is_connection_key(k)).collect();
        keys.sort();
        for key in keys {
            if !SINK_PROPERTY_KEYS.contains(&key.as_str()) {
                return Err(SinkError::UnknownProperty { key: key.clone(), known: SINK_PROPERTY_KEYS.join(", ") });
            }
        }
        let mut builder = KinesisSinkBuilder::default().connection(KinesisConnection::from_properties(properties)?);
        let get = |key: &str| properties.get(key).map(|v| v.trim());
        if let Some(stream) = get(STREAM) {
            builder = builder.stream(stream);
        }
        if let Some(v) = get(BATCH_MAX_SIZE) {
            builder = builder.max_batch_records(parse(BATCH_MAX_SIZE, v, "a number of records from 1 to 500")?);
        }
        if let Some(v) = get(FLUSH_BUFFER_SIZE) {
            builder = builder.max_batch_bytes(parse(FLUSH_BUFFER_SIZE, v, "a number of bytes up to 5242880")?);
        }
        if let Some(v) = get(FLUSH_BUFFER_TIMEOUT) {
            builder = builder.linger(millis(FLUSH_BUFFER_TIMEOUT, v)?);
        }
        if let Some(v) = get(REQUESTS_MAX_INFLIGHT) {
            builder = builder.max_in_flight_requests(parse(REQUESTS_MAX_INFLIGHT, v, "a positive number of requests")?);
        }
        if let Some(v) = get(REQUESTS_MAX_BUFFERED) {
            builder = builder.max_buffered_records(parse(REQUESTS_MAX_BUFFERED, v, "a positive number of records")?);
        }
        if let Some(v) = get(BUFFER_MAX_BYTES) {
            builder = builder.max_buffered_bytes(parse(BUFFER_MAX_BYTES, v, "a number of bytes, at least 1048576")?);
        }
        if let Some(v) = get(FAIL_ON_ERROR) {
            let fail: bool = parse(FAIL_ON_ERROR, &v.to_ascii_lowercase(), "true or false")?;
            builder = builder.error_policy(if fail { ErrorPolicy::Fail } else { ErrorPolicy::RetryForever });
        }
        if let Some(v) = get(ERROR_POLICY) {
            builder = builder.error_policy(match v.to_ascii_lowercase().as_str() {
                "fail" => ErrorPolicy::Fail,
                "retry-forever" => ErrorPolicy::RetryForever,
                "drop-and-count" => ErrorPolicy::DropAndCount,
                _ => return Err(invalid(ERROR_POLICY, v, "fail, retry-forever or drop-and-count")),
            });
        }
        if let Some(v) = get(THROTTLE_RETRY_TIMEOUT) {
            builder = builder.throttle_retry_timeout(Some(millis(THROTTLE_RETRY_TIMEOUT, v)?));
        }
        if let Some(v) = get(ORDERING) {
            builder = builder.ordering(parse(ORDERING, &v.to_ascii_lowercase(), "true or false")?);
        }
        if let Some(v) = get(PARTITIONER) {
            builder = builder.partitioner(match v.to_ascii_lowercase().as_str() {
                "random" => Partitioner::random(),
                "fixed" => Partitioner::fixed(),
                _ => return Err(invalid(PARTITIONER, v, "random or fixed")),
            });
        }
        if let Some(v) = get(RETRIES_MAX) {
            builder = builder.max_retries(parse(RETRIES_MAX, v, "a number of retries")?);
        }
        let base = get(RETRIES_BACKOFF_BASE).map(|v| millis(RETRIES_BACKOFF_BASE, v)).transpose()?;
        let max = get(RETRIES_BACKOFF_MAX).map(|v| millis(RETRIES_BACKOFF_MAX, v)).transpose()?;
        if base.is_some() || max.is_some() {
            let base = base.unwrap_or(builder.config.backoff_base);
            let max = max.unwrap_or(builder.config.backoff_max);
            builder = builder.backoff(base, max);
        }
        if let Some(v) = get(REQUEST_TIMEOUT) {
            builder = builder.request_timeout(millis(REQUEST_TIMEOUT, v)?);
        }
        Ok(builder)
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> SinkError {
    SinkError::InvalidProperty { key: key.to_string(), value: value.to_string(), expected: expected.to_string() }
}

fn parse<N: FromStr>(key: &str, value: &str, expected: &str) -> Result<N, SinkError> {
    value.parse().map_err(|_| invalid(key, value, expected))
}

fn millis(key: &str, value: &str) -> Result<Duration, SinkError> {
    parse::<u64>(key, value, "a number of milliseconds").map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn sink_keys_set_the_matching_settings() {
        let b = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props(&[
            ("aws.region", "us-east-1"),
            (STREAM, "out"),
            (FLUSH_BUFFER_TIMEOUT, "250"),
            (REQUESTS_MAX_INFLIGHT, "3"),
            (REQUESTS_MAX_BUFFERED, "777"),
            (FAIL_ON_ERROR, "false"),
            (RETRIES_BACKOFF_MAX, "900"),
        ]))
        .unwrap();
        assert_eq!(b.default_stream.as_deref(), Some("out"));
        assert_eq!(b.config.linger, Duration::from_millis(250));
        assert_eq!(b.config.max_in_flight_requests, 3);
        assert_eq!(b.config.max_buffered_records, 777);
        assert_eq!(
            b.config.error_policy,
            ErrorPolicy::RetryForever,
            "false means retry without giving up, as in Flink"
        );
        assert_eq!(b.config.backoff_max, Duration::from_millis(900));
    }

    #[test]
    fn drop_and_count_has_its_own_name_and_throttle_timeout_and_ordering_are_read() {
        let b = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props(&[
            (FAIL_ON_ERROR, "false"),
            (ERROR_POLICY, "drop-and-count"),
            (THROTTLE_RETRY_TIMEOUT, "60000"),
            (ORDERING, "true"),
        ]))
        .unwrap();
        assert_eq!(b.config.error_policy, ErrorPolicy::DropAndCount);
        assert_eq!(b.config.throttle_retry_timeout, Some(Duration::from_secs(60)));
        assert!(b.config.ordering);
        let fail = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props(&[(FAIL_ON_ERROR, "true")])).unwrap();
        assert_eq!(fail.config.error_policy, ErrorPolicy::Fail);
    }

    #[test]
    fn an_unknown_sink_key_is_an_error_naming_it() {
        let err = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props(&[("sink.batch.maxsize", "5")])).unwrap_err();
        assert!(err.to_string().contains("sink.batch.maxsize"), "{err}");
    }

    #[test]
    fn a_bad_connection_key_is_reported_by_the_connection() {
        let err = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props(&[("aws.credentials.provider", "MAGIC")]))
            .unwrap_err();
        assert!(err.to_string().contains("MAGIC"), "{err}");
    }

    #[test]
    fn a_bad_partitioner_names_key_and_value() {
        let err = KinesisSinkBuilder::<Vec<u8>>::from_properties(&props(&[(PARTITIONER, "round-robin")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(PARTITIONER) && text.contains("round-robin"), "{text}");
    }
}
