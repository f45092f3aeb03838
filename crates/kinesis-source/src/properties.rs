//! Flink's consumer property keys (`flink.*`), read into [`ConsumerSettings`]; the `aws.*` keys
//! go to [`KinesisConnection::from_properties`].

use std::collections::HashMap;
use std::time::Duration;

use rill_kinesis_common::{is_connection_key, KinesisConnection};

use crate::config::{InitialPosition, RetrySettings, MAX_GET_RECORDS_INTERVAL};
use crate::date_format::{parse_unix_seconds, parse_with_pattern, DEFAULT_TIMESTAMP_FORMAT};
use crate::{ConsumerSettings, KinesisSourceError, Result};

/// `flink.stream.initpos`: LATEST (default), TRIM_HORIZON or AT_TIMESTAMP.
pub(crate) const STREAM_INITIAL_POSITION: &str = "flink.stream.initpos";
/// `flink.stream.initpos.timestamp`: unix seconds or a date (for AT_TIMESTAMP).
pub(crate) const STREAM_INITIAL_TIMESTAMP: &str = "flink.stream.initpos.timestamp";
/// `flink.stream.initpos.timestamp.format`: pattern of the date (`yyyy-MM-dd'T'HH:mm:ss.SSSXXX`).
pub(crate) const STREAM_TIMESTAMP_DATE_FORMAT: &str = "flink.stream.initpos.timestamp.format";
/// `flink.shard.getrecords.maxrecordcount` (10000).
pub(crate) const SHARD_GETRECORDS_MAX: &str = "flink.shard.getrecords.maxrecordcount";
/// `flink.shard.getrecords.intervalmillis` (200).
pub(crate) const SHARD_GETRECORDS_INTERVAL_MILLIS: &str = "flink.shard.getrecords.intervalmillis";
/// `flink.shard.getrecords.maxretries` (3).
pub(crate) const SHARD_GETRECORDS_RETRIES: &str = "flink.shard.getrecords.maxretries";
/// `flink.shard.getrecords.backoff.base` (300).
pub(crate) const SHARD_GETRECORDS_BACKOFF_BASE: &str = "flink.shard.getrecords.backoff.base";
/// `flink.shard.getrecords.backoff.max` (1000).
pub(crate) const SHARD_GETRECORDS_BACKOFF_MAX: &str = "flink.shard.getrecords.backoff.max";
/// `flink.shard.getrecords.backoff.expconst` (1.5).
pub(crate) const SHARD_GETRECORDS_BACKOFF_EXPONENTIAL_CONSTANT: &str = "flink.shard.getrecords.backoff.expconst";
/// `flink.shard.getiterator.maxretries` (3).
pub(crate) const SHARD_GETITERATOR_RETRIES: &str = "flink.shard.getiterator.maxretries";
/// `flink.shard.getiterator.backoff.base` (300).
pub(crate) const SHARD_GETITERATOR_BACKOFF_BASE: &str = "flink.shard.getiterator.backoff.base";
/// `flink.shard.getiterator.backoff.max` (1000).
pub(crate) const SHARD_GETITERATOR_BACKOFF_MAX: &str = "flink.shard.getiterator.backoff.max";
/// `flink.shard.getiterator.backoff.expconst` (1.5).
pub(crate) const SHARD_GETITERATOR_BACKOFF_EXPONENTIAL_CONSTANT: &str = "flink.shard.getiterator.backoff.expconst";
/// `flink.shard.discovery.intervalmillis` (10000).
pub(crate) const SHARD_DISCOVERY_INTERVAL_MILLIS: &str = "flink.shard.discovery.intervalmillis";
/// `flink.list.shards.maxretries` (10).
pub(crate) const LIST_SHARDS_RETRIES: &str = "flink.list.shards.maxretries";
/// `flink.list.shards.backoff.base` (1000).
pub(crate) const LIST_SHARDS_BACKOFF_BASE: &str = "flink.list.shards.backoff.base";
/// `flink.list.shards.backoff.max` (5000).
pub(crate) const LIST_SHARDS_BACKOFF_MAX: &str = "flink.list.shards.backoff.max";
/// `flink.list.shards.backoff.expconst` (1.5).
pub(crate) const LIST_SHARDS_BACKOFF_EXPONENTIAL_CONSTANT: &str = "flink.list.shards.backoff.expconst";
/// `flink.shard.idle.interval`: milliseconds (30000), -1 for never.
pub(crate) const SHARD_IDLE_INTERVAL_MILLIS: &str = "flink.shard.idle.interval";
/// `flink.shard.adaptivereads`: true (rill's default) or false.
pub(crate) const SHARD_USE_ADAPTIVE_READS: &str = "flink.shard.adaptivereads";
/// `rill.shard.getrecords.empty.intervalmillis` (1000).
pub(crate) const SHARD_GETRECORDS_EMPTY_INTERVAL_MILLIS: &str = "rill.shard.getrecords.empty.intervalmillis";
/// `rill.shard.read.bytes-per-second` (2097152).
pub(crate) const SHARD_READ_BYTES_PER_SECOND: &str = "rill.shard.read.bytes-per-second";
/// `rill.throttle.retry.timeout.millis` (600000; -1 for ever).
pub(crate) const THROTTLE_RETRY_TIMEOUT_MILLIS: &str = "rill.throttle.retry.timeout.millis";

/// Every `flink.*` key [`consumer_settings_from_properties`] reads.
pub const CONSUMER_PROPERTY_KEYS: &[&str] = &[
    STREAM_INITIAL_POSITION,
    STREAM_INITIAL_TIMESTAMP,
    STREAM_TIMESTAMP_DATE_FORMAT,
    SHARD_GETRECORDS_MAX,
    SHARD_GETRECORDS_INTERVAL_MILLIS,
    SHARD_GETRECORDS_RETRIES,
    SHARD_GETRECORDS_BACKOFF_BASE,
    SHARD_GETRECORDS_BACKOFF_MAX,
    SHARD_GETRECORDS_BACKOFF_EXPONENTIAL_CONSTANT,
    SHARD_GETITERATOR_RETRIES,
    SHARD_GETITERATOR_BACKOFF_BASE,
    SHARD_GETITERATOR_BACKOFF_MAX,
    SHARD_GETITERATOR_BACKOFF_EXPONENTIAL_CONSTANT,
    SHARD_DISCOVERY_INTERVAL_MILLIS,
    LIST_SHARDS_RETRIES,
    LIST_SHARDS_BACKOFF_BASE,
    LIST_SHARDS_BACKOFF_MAX,
    LIST_SHARDS_BACKOFF_EXPONENTIAL_CONSTANT,
    SHARD_IDLE_INTERVAL_MILLIS,
    SHARD_USE_ADAPTIVE_READS,
    SHARD_GETRECORDS_EMPTY_INTERVAL_MILLIS,
    SHARD_READ_BYTES_PER_SECOND,
    THROTTLE_RETRY_TIMEOUT_MILLIS,
];

struct Props<'a> {
    map: &'a HashMap<String, String>,
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> KinesisSourceError {
    KinesisSourceError::InvalidProperty { key: key.to_string(), value: value.to_string(), expected: expected.into() }
}

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(|v| v.trim())
    }

    fn integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        let value: i64 = raw.parse().map_err(|_| invalid(key, raw, format!("an integer from {min} to {max}")))?;
        if value < min || value > max {
            return Err(invalid(key, raw, format!("an integer from {min} to {max}")));
        }
        Ok(Some(value))
    }

    fn millis(&self, key: &str, min: i64, max: i64) -> Result<Option<Duration>> {
        Ok(self.integer(key, min, max)?.map(|v| Duration::from_millis(v as u64)))
    }

    fn float(&self, key: &str, min: f64) -> Result<Option<f64>> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min => Ok(Some(v)),
            _ => Err(invalid(key, raw, format!("a number of at least {min}"))),
        }
    }

    fn retry(&self, keys: [&str; 4], default: RetrySettings) -> Result<RetrySettings> {
        let [retries, base, max, exp] = keys;
        let mut r = default;
        if let Some(v) = self.integer(retries, 0, i64::from(u32::MAX))? {
            r.max_retries = v as u32;
        }
        if let Some(v) = self.millis(base, 0, 3_600_000)? {
            r.base = v;
        }
        if let Some(v) = self.millis(max, 0, 3_600_000)? {
            r.max = v;
        }
        if let Some(v) = self.float(exp, 1.0)? {
            r.exponent = v;
        }
        if r.max < r.base {
            let raw = self.get(max).unwrap_or_default();
            return Err(invalid(max, raw, format!("at least {base} ({} ms)", r.base.as_millis())));
        }
        Ok(r)
    }
}

/// Reads Flink's `flink.*` consumer keys over the defaults. Keys starting with `aws.` are left to
/// [`KinesisConnection::from_properties`]; any other key is an error naming it.
pub fn consumer_settings_from_properties(properties: &HashMap<String, String>) -> Result<ConsumerSettings> {
    let mut keys: Vec<&String> = properties.keys().collect();
    keys.sort();
    for key in keys {
        if !is_connection_key(key) && !CONSUMER_PROPERTY_KEYS.contains(&key.as_str()) {
            return Err(KinesisSourceError::UnknownProperty {
                key: key.clone(),
                value: properties.get(key).cloned().unwrap_or_default(),
                known: CONSUMER_PROPERTY_KEYS.join(", "),
            });
        }
    }
    let p = Props { map: properties };
    let mut s = ConsumerSettings::default();
    if let Some(raw) = p.get(STREAM_INITIAL_POSITION) {
        s.initial_position = match raw.to_ascii_uppercase().as_str() {
            "LATEST" => InitialPosition::Latest,
            "TRIM_HORIZON" => InitialPosition::TrimHorizon,
            "AT_TIMESTAMP" => {
                let ts = p.get(STREAM_INITIAL_TIMESTAMP).ok_or_else(|| KinesisSourceError::MissingProperty {
                    key: STREAM_INITIAL_TIMESTAMP.into(),
                    reason: format!("when {STREAM_INITIAL_POSITION} is AT_TIMESTAMP"),
                })?;
                let format = p.get(STREAM_TIMESTAMP_DATE_FORMAT).unwrap_or(DEFAULT_TIMESTAMP_FORMAT);
                let millis = match parse_unix_seconds(ts) {
                    Some(m) => m,
                    None => parse_with_pattern(ts, format).map_err(|reason| {
                        invalid(
                            STREAM_INITIAL_TIMESTAMP,
                            ts,
                            format!(
                                "unix seconds such as 1459799926.480 or a date in the format '{format}' ({reason})"
                            ),
                        )
                    })?,
                };
                InitialPosition::AtTimestamp { millis }
            }
            _ => return Err(invalid(STREAM_INITIAL_POSITION, raw, "LATEST, TRIM_HORIZON or AT_TIMESTAMP")),
        };
    }
    if let Some(v) = p.integer(SHARD_GETRECORDS_MAX, 1, 10_000)? {
        s.get_records_max = v as i32;
    }
    if let Some(v) = p.millis(SHARD_GETRECORDS_INTERVAL_MILLIS, 0, MAX_GET_RECORDS_INTERVAL.as_millis() as i64)? {
        s.get_records_interval = v;
    }
    s.get_records_retry = p.retry(
        [
            SHARD_GETRECORDS_RETRIES,
            SHARD_GETRECORDS_BACKOFF_BASE,
            SHARD_GETRECORDS_BACKOFF_MAX,
            SHARD_GETRECORDS_BACKOFF_EXPONENTIAL_CONSTANT,
        ],
        s.get_records_retry,
    )?;
    s.get_iterator_retry = p.retry(
        [
            SHARD_GETITERATOR_RETRIES,
            SHARD_GETITERATOR_BACKOFF_BASE,
            SHARD_GETITERATOR_BACKOFF_MAX,
            SHARD_GETITERATOR_BACKOFF_EXPONENTIAL_CONSTANT,
        ],
        s.get_iterator_retry,
    )?;
    s.list_shards_retry = p.retry(
        [
            LIST_SHARDS_RETRIES,
            LIST_SHARDS_BACKOFF_BASE,
            LIST_SHARDS_BACKOFF_MAX,
            LIST_SHARDS_BACKOFF_EXPONENTIAL_CONSTANT,
        ],
        s.list_shards_retry,
    )?;
    if let Some(v) = p.millis(SHARD_DISCOVERY_INTERVAL_MILLIS, 1, i64::MAX / 2)? {
        s.discovery_interval = v;
    }
    if let Some(v) = p.integer(SHARD_IDLE_INTERVAL_MILLIS, -1, i64::MAX / 2)? {
        s.shard_idle_interval = (v >= 0).then(|| Duration::from_millis(v as u64));
    }
    if let Some(raw) = p.get(SHARD_USE_ADAPTIVE_READS) {
        s.adaptive_reads = match raw.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(invalid(SHARD_USE_ADAPTIVE_READS, raw, "true or false")),
        };
    }
    if let Some(v) = p.millis(SHARD_GETRECORDS_EMPTY_INTERVAL_MILLIS, 0, MAX_GET_RECORDS_INTERVAL.as_millis() as i64)? {
        s.get_records_empty_interval = v;
    }
    if let Some(v) = p.integer(SHARD_READ_BYTES_PER_SECOND, 1, i64::MAX / 2)? {
        s.read_bytes_per_second = v as u64;
    }
    if let Some(v) = p.integer(THROTTLE_RETRY_TIMEOUT_MILLIS, -1, i64::MAX / 2)? {
        s.throttle_retry_timeout = (v >= 0).then(|| Duration::from_millis(v as u64));
    }
    Ok(s)
}

/// Reads both the connection (`aws.*`) and the consumer settings (`flink.*`).
pub(crate) fn from_properties(properties: &HashMap<String, String>) -> Result<(KinesisConnection, ConsumerSettings)> {
    let settings = consumer_settings_from_properties(properties)?;
    let connection = KinesisConnection::from_properties(properties)?;
    Ok((connection, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_properties_give_flinks_defaults() {
        let s = consumer_settings_from_properties(&props(&[])).unwrap();
        assert_eq!(s, ConsumerSettings::default());
        assert_eq!(s.get_records_max, 10_000);
        assert_eq!(s.get_records_interval, Duration::from_millis(200));
        assert_eq!(s.get_records_retry, RetrySettings::new(3, 300, 1000, 1.5));
        assert_eq!(s.get_iterator_retry, RetrySettings::new(3, 300, 1000, 1.5));
        assert_eq!(s.list_shards_retry, RetrySettings::new(10, 1000, 5000, 1.5));
        assert_eq!(s.discovery_interval, Duration::from_secs(10));
        assert_eq!(s.shard_idle_interval, Some(Duration::from_secs(30)));
        assert_eq!(s.initial_position, InitialPosition::Latest);
    }

    #[test]
    fn every_flink_key_is_read() {
        let s = consumer_settings_from_properties(&props(&[
            (STREAM_INITIAL_POSITION, "trim_horizon"),
            (SHARD_GETRECORDS_MAX, "500"),
            (SHARD_GETRECORDS_INTERVAL_MILLIS, "0"),
            (SHARD_GETRECORDS_RETRIES, "7"),
            (SHARD_GETRECORDS_BACKOFF_BASE, "10"),
            (SHARD_GETRECORDS_BACKOFF_MAX, "20"),
            (SHARD_GETRECORDS_BACKOFF_EXPONENTIAL_CONSTANT, "2"),
            (SHARD_GETITERATOR_RETRIES, "4"),
            (SHARD_GETITERATOR_BACKOFF_BASE, "11"),
            (SHARD_GETITERATOR_BACKOFF_MAX, "21"),
            (SHARD_GETITERATOR_BACKOFF_EXPONENTIAL_CONSTANT, "1.1"),
            (SHARD_DISCOVERY_INTERVAL_MILLIS, "250"),
            (LIST_SHARDS_RETRIES, "2"),
            (LIST_SHARDS_BACKOFF_BASE, "5"),
            (LIST_SHARDS_BACKOFF_MAX, "6"),
            (LIST_SHARDS_BACKOFF_EXPONENTIAL_CONSTANT, "1.25"),
            (SHARD_IDLE_INTERVAL_MILLIS, "3000"),
            (SHARD_USE_ADAPTIVE_READS, "false"),
            (SHARD_GETRECORDS_EMPTY_INTERVAL_MILLIS, "700"),
            (SHARD_READ_BYTES_PER_SECOND, "204800"),
            (THROTTLE_RETRY_TIMEOUT_MILLIS, "-1"),
            ("aws.region", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(s.initial_position, InitialPosition::TrimHorizon);
        assert_eq!(s.get_records_max, 500);
        assert_eq!(s.get_records_interval, Duration::ZERO);
        assert_eq!(s.get_records_retry, RetrySettings::new(7, 10, 20, 2.0));
        assert_eq!(s.get_iterator_retry, RetrySettings::new(4, 11, 21, 1.1));
        assert_eq!(s.list_shards_retry, RetrySettings::new(2, 5, 6, 1.25));
        assert_eq!(s.discovery_interval, Duration::from_millis(250));
        assert_eq!(s.shard_idle_interval, Some(Duration::from_secs(3)));
        assert!(!s.adaptive_reads);
        assert_eq!(s.get_records_empty_interval, Duration::from_millis(700));
        assert_eq!(s.read_bytes_per_second, 204_800);
        assert_eq!(s.throttle_retry_timeout, None);
    }

    #[test]
    fn at_timestamp_reads_unix_seconds_and_formatted_dates() {
        let unix = consumer_settings_from_properties(&props(&[
            (STREAM_INITIAL_POSITION, "AT_TIMESTAMP"),
            (STREAM_INITIAL_TIMESTAMP, "1459799926.480"),
        ]))
        .unwrap();
        assert_eq!(unix.initial_position, InitialPosition::AtTimestamp { millis: 1_459_799_926_480 });
        let formatted = consumer_settings_from_properties(&props(&[
            (STREAM_INITIAL_POSITION, "AT_TIMESTAMP"),
            (STREAM_INITIAL_TIMESTAMP, "04.04.2016 19:58"),
            (STREAM_TIMESTAMP_DATE_FORMAT, "dd.MM.yyyy HH:mm"),
        ]))
        .unwrap();
        assert_eq!(formatted.initial_position, InitialPosition::AtTimestamp { millis: 1_459_799_880_000 });
    }

    #[test]
    fn at_timestamp_without_a_timestamp_names_the_missing_key() {
        let err = consumer_settings_from_properties(&props(&[(STREAM_INITIAL_POSITION, "AT_TIMESTAMP")])).unwrap_err();
        assert!(err.to_string().contains(STREAM_INITIAL_TIMESTAMP), "{err}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_key_and_value() {
        let err = consumer_settings_from_properties(&props(&[("flink.shard.getrecords.maxrecords", "5")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("flink.shard.getrecords.maxrecords") && text.contains("'5'"), "{text}");
        let err = consumer_settings_from_properties(&props(&[("stream", "orders")])).unwrap_err();
        assert!(err.to_string().contains("'stream'"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_naming_key_and_value() {
        for (key, value) in [
            (SHARD_GETRECORDS_MAX, "0"),
            (SHARD_GETRECORDS_MAX, "10001"),
            (SHARD_GETRECORDS_MAX, "many"),
            (SHARD_GETRECORDS_INTERVAL_MILLIS, "300001"),
            (SHARD_GETRECORDS_BACKOFF_EXPONENTIAL_CONSTANT, "0.5"),
            (SHARD_IDLE_INTERVAL_MILLIS, "-2"),
            (STREAM_INITIAL_POSITION, "EARLIEST"),
            (LIST_SHARDS_RETRIES, "-1"),
        ] {
            let err = consumer_settings_from_properties(&props(&[(key, value)])).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(key) && text.contains(&format!("'{value}'")), "{key}={value}: {text}");
        }
        let err = consumer_settings_from_properties(&props(&[
            (STREAM_INITIAL_POSITION, "AT_TIMESTAMP"),
            (STREAM_INITIAL_TIMESTAMP, "yesterday"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn a_backoff_max_below_its_base_is_rejected() {
        let err = consumer_settings_from_properties(&props(&[
            (SHARD_GETRECORDS_BACKOFF_BASE, "500"),
            (SHARD_GETRECORDS_BACKOFF_MAX, "100"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains(SHARD_GETRECORDS_BACKOFF_MAX), "{err}");
    }

    #[test]
    fn connection_keys_are_passed_to_the_shared_parser() {
        let (conn, _) =
            from_properties(&props(&[("aws.region", "eu-west-1"), ("aws.endpoint", "http://127.0.0.1:4567")])).unwrap();
        assert_eq!(conn.region(), Some("eu-west-1"));
        let err = from_properties(&props(&[("aws.regoin", "eu-west-1")])).unwrap_err();
        assert!(err.to_string().contains("aws.regoin"), "{err}");
    }
}
