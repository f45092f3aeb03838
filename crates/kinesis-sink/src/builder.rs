//! [`KinesisSinkBuilder`]: the typed way to configure a [`KinesisSink`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rill_kinesis_common::KinesisConnection;
use rill_runtime::BoxError;

use crate::sink::{RecordFns, Serializer, StreamSelector};
use crate::{ErrorPolicy, KinesisSink, Partitioner, SinkConfig, SinkError};

/// Configures a [`KinesisSink`]. Required: a connection, a serializer, and a default stream
/// or a stream selector.
///
/// ```
/// use std::time::Duration;
/// use rill_kinesis_common::KinesisConnection;
/// use rill_kinesis_sink::{ErrorPolicy, KinesisSink, Partitioner};
///
/// let connection = KinesisConnection::builder().region("eu-west-1").build().unwrap();
/// let sink = KinesisSink::<(String, Vec<u8>)>::builder()
///     .connection(connection)
///     .stream("clicks")
///     .serializer(|(_, payload)| payload)
///     .partitioner(Partitioner::from_record(|(user, _): &(String, Vec<u8>)| user.clone()))
///     .linger(Duration::from_millis(50))
///     .max_in_flight_requests(16)
///     .error_policy(ErrorPolicy::Fail)
///     .build()
///     .unwrap();
/// # let _ = sink;
/// ```
pub struct KinesisSinkBuilder<T> {
    pub(crate) connection: Option<KinesisConnection>,
    pub(crate) default_stream: Option<String>,
    pub(crate) config: SinkConfig,
    pub(crate) serializer: Option<Serializer<T>>,
    pub(crate) selector: Option<StreamSelector<T>>,
    pub(crate) partitioner: Partitioner<T>,
}

impl<T> fmt::Debug for KinesisSinkBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisSinkBuilder")
            .field("connection", &self.connection)
            .field("default_stream", &self.default_stream)
            .field("config", &self.config)
            .field("serializer", &self.serializer.is_some())
            .field("stream_selector", &self.selector.is_some())
            .field("partitioner", &self.partitioner)
            .finish()
    }
}

impl<T> Default for KinesisSinkBuilder<T> {
    fn default() -> Self {
        KinesisSinkBuilder {
            connection: None,
            default_stream: None,
            config: SinkConfig::default(),
            serializer: None,
            selector: None,
            partitioner: Partitioner::random(),
        }
    }
}

impl<T: Send + 'static> KinesisSinkBuilder<T> {
    /// Region, endpoint and credentials (required).
    pub fn connection(mut self, connection: KinesisConnection) -> Self {
        self.connection = Some(connection);
        self
    }

    /// The stream records go to unless the selector names another. Checked at start.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.default_stream = Some(stream.into());
        self
    }

    /// Picks a target stream per record; `None` falls back to the default stream.
    pub fn stream_selector<F>(mut self, selector: F) -> Self
    where
        F: Fn(&T) -> Option<String> + Send + Sync + 'static,
    {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// Turns a record into the bytes stored in Kinesis (required; takes the record by value,
    /// so `|r: Vec<u8>| r` costs no copy).
    pub fn serializer<F>(mut self, serialize: F) -> Self
    where
        F: Fn(T) -> Vec<u8> + Send + Sync + 'static,
    {
        self.serializer = Some(Arc::new(move |record| Ok(serialize(record))));
        self
    }

    /// A serializer that may fail; failures go through the error policy.
    pub fn try_serializer<F, E>(mut self, serialize: F) -> Self
    where
        F: Fn(T) -> Result<Vec<u8>, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.serializer = Some(Arc::new(move |record| serialize(record).map_err(Into::into)));
        self
    }

    /// Serializes records as JSON.
    pub fn json(self) -> Self
    where
        T: serde::Serialize,
    {
        self.try_serializer(|record: T| serde_json::to_vec(&record))
    }

    /// How partition keys (and explicit hash keys) are chosen (default: random).
    pub fn partitioner(mut self, partitioner: Partitioner<T>) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// Records per PutRecords request, 1 to 500 (default 500).
    pub fn max_batch_records(mut self, records: usize) -> Self {
        self.config.max_batch_records = records;
        self
    }

    /// Bytes per request (data plus partition keys), up to 5 MiB (default 5 MiB).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.config.max_batch_bytes = bytes;
        self
    }

    /// How long a record may wait for a fuller batch (default 100 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Concurrent requests per subtask (default 8).
    pub fn max_in_flight_requests(mut self, requests: usize) -> Self {
        self.config.max_in_flight_requests = requests;
        self
    }

    /// Records a subtask holds before `process` blocks (default 10,000).
    pub fn max_buffered_records(mut self, records: usize) -> Self {
        self.config.max_buffered_records = records;
        self
    }

    /// Bytes a subtask holds before `process` blocks (default 64 MiB, at least 1 MiB).
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.config.max_buffered_bytes = bytes;
        self
    }

    /// Retries per record after transient failures (default 10); then the error policy decides.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.max_retries = retries;
        self
    }

    /// How long throttled records are retried before the error policy decides (default `None`:
    /// for as long as it takes).
    pub fn throttle_retry_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.throttle_retry_timeout = timeout;
        self
    }

    /// Keep per-partition-key order across partial failures and retries (default off; costs
    /// throughput: one record per key per round trip).
    pub fn ordering(mut self, ordering: bool) -> Self {
        self.config.ordering = ordering;
        self
    }

    /// Full-jitter backoff bounds for retries (default 100 ms doubling up to 5 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff_base = base;
        self.config.backoff_max = max;
        self
    }

    /// Timeout of one PutRecords attempt (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// AIMD rate control: records added to an in-flight limit per successful request
    /// (default 10, as Flink's async sink), and the factor applied on throttling (default 0.5;
    /// Flink's is 0.99, which measured far worse against enforced limits).
    pub fn rate_control(mut self, increase: usize, decrease_factor: f64) -> Self {
        self.config.rate_increase = increase;
        self.config.rate_decrease_factor = decrease_factor;
        self
    }

    /// What to do with undeliverable records (default [`ErrorPolicy::Fail`]).
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.config.error_policy = policy;
        self
    }

    /// Replaces every batching, buffering, retry and rate setting at once.
    pub fn config(mut self, config: SinkConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks the settings and builds the sink.
    ///
    /// # Errors
    ///
    /// [`SinkError::InvalidSetting`] naming the missing or out-of-range setting.
    pub fn build(self) -> Result<KinesisSink<T>, SinkError> {
        self.config.validate()?;
        let missing = |setting: &'static str, reason: &str| SinkError::InvalidSetting {
            setting,
            value: "(not set)".into(),
            reason: reason.to_string(),
        };
        let connection = self.connection.ok_or_else(|| missing("connection", "a Kinesis connection is required"))?;
        let serializer = self.serializer.ok_or_else(|| missing("serializer", "a serializer is required"))?;
        if self.default_stream.is_none() && self.selector.is_none() {
            return Err(missing("stream", "a default stream or a stream selector is required"));
        }
        if let Some(stream) = &self.default_stream {
            if stream.trim().is_empty() {
                return Err(SinkError::InvalidSetting {
                    setting: "stream",
                    value: stream.clone(),
                    reason: "the stream name is empty".into(),
                });
            }
        }
        Ok(KinesisSink::new(
            connection,
            self.default_stream,
            self.config,
            RecordFns { serializer, selector: self.selector, partitioner: self.partitioner },
        ))
    }
}
