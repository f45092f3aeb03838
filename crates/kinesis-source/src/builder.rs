//! [`KinesisSourceBuilder`]: the typed way to configure a [`KinesisSource`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rill_kinesis_common::KinesisConnection;

use crate::assigner::SharedAssigner;
use crate::config::{InitialPosition, MalformedRecordPolicy, RetrySettings, MAX_GET_RECORDS_INTERVAL};
use crate::listing::SharedListing;
use crate::shared::Shared;
use crate::{
    properties, ConsumerSettings, KinesisDeserializer, KinesisSource, KinesisSourceError, Result, ShardAssigner,
    TimestampAssigner,
};

/// Builds a [`KinesisSource`]. Start with [`KinesisSource::builder`].
///
/// ```
/// use std::time::Duration;
/// use rill_kinesis_common::KinesisConnection;
/// use rill_kinesis_source::{InitialPosition, KinesisSource, Utf8Deserializer};
///
/// let source = KinesisSource::builder(Utf8Deserializer)
///     .connection(KinesisConnection::builder().region("us-east-1").endpoint("http://127.0.0.1:4567").build().unwrap())
///     .stream("orders")
///     .initial_position(InitialPosition::TrimHorizon)
///     .discovery_interval(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// # let _ = source;
/// ```
pub struct KinesisSourceBuilder<T> {
    connection: Option<KinesisConnection>,
    streams: Vec<String>,
    settings: ConsumerSettings,
    deserializer: Arc<dyn KinesisDeserializer<T>>,
    timestamps: Option<Arc<dyn crate::TimestampAssigner<T>>>,
    watermarks: bool,
    assigner: Option<Arc<dyn ShardAssigner>>,
}

impl<T> std::fmt::Debug for KinesisSourceBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSourceBuilder")
            .field("connection", &self.connection)
            .field("streams", &self.streams)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> KinesisSourceBuilder<T> {
    pub(crate) fn new(deserializer: impl KinesisDeserializer<T>) -> Self {
        KinesisSourceBuilder {
            connection: None,
            streams: Vec::new(),
            settings: ConsumerSettings::default(),
            deserializer: Arc::new(deserializer),
            timestamps: None,
            watermarks: false,
            assigner: None,
        }
    }

    /// Region, endpoint and credentials (default: the aws-config default chain).
    pub fn connection(mut self, connection: KinesisConnection) -> Self {
        self.connection = Some(connection);
        self
    }

    /// Adds a stream to read (several streams must be in the same region).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.streams.push(name.into());
        self
    }

    /// Adds several streams.
    pub fn streams<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.streams.extend(names.into_iter().map(Into::into));
        self
    }

    /// Reads Flink's property keys: `aws.*` into the connection and `flink.*` into the
    /// settings (replacing both). Unknown keys and bad values are errors naming key and value.
    pub fn properties(mut self, properties: &HashMap<String, String>) -> Result<Self> {
        let (connection, settings) = properties::from_properties(properties)?;
        self.connection = Some(connection);
        self.settings = settings;
        Ok(self)
    }

    /// All settings at once.
    pub fn settings(mut self, settings: ConsumerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Where shards without a checkpointed position start (default LATEST).
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.settings.initial_position = position;
        self
    }

    /// Records per GetRecords call, 1..=10000 (default 10000).
    pub fn get_records_max(mut self, records: i32) -> Self {
        self.settings.get_records_max = records;
        self
    }

    /// Time from the end of one GetRecords call on a shard to the next (default 200 ms, at
    /// most 300 s).
    pub fn get_records_interval(mut self, interval: Duration) -> Self {
        self.settings.get_records_interval = interval;
        self
    }

    /// Wait after a GetRecords call that returned nothing (default 1 s).
    pub fn get_records_empty_interval(mut self, interval: Duration) -> Self {
        self.settings.get_records_empty_interval = interval;
        self
    }

    /// Size GetRecords calls to read at most `bytes_per_second` per shard (adaptive reads; on
    /// by default at 2 MiB/s, the Kinesis limit). `None` turns adaptive reads off.
    pub fn adaptive_reads(mut self, bytes_per_second: Option<u64>) -> Self {
        self.settings.adaptive_reads = bytes_per_second.is_some();
        if let Some(rate) = bytes_per_second {
            self.settings.read_bytes_per_second = rate.max(1);
        }
        self
    }

    /// How long throttled calls are retried before the task fails (default 10 minutes; `None`
    /// for ever).
    pub fn throttle_retry_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.throttle_retry_timeout = timeout;
        self
    }

    /// Retries of GetRecords (default 3 / 300 ms / 1000 ms / 1.5).
    pub fn get_records_retry(mut self, retry: RetrySettings) -> Self {
        self.settings.get_records_retry = retry;
        self
    }

    /// Retries of GetShardIterator (default 3 / 300 ms / 1000 ms / 1.5).
    pub fn get_iterator_retry(mut self, retry: RetrySettings) -> Self {
        self.settings.get_iterator_retry = retry;
        self
    }

    /// Retries of ListShards and DescribeStreamSummary (default 10 / 1000 ms / 5000 ms / 1.5).
    pub fn list_shards_retry(mut self, retry: RetrySettings) -> Self {
        self.settings.list_shards_retry = retry;
        self
    }

    /// Time between shard discoveries (default 10 s).
    pub fn discovery_interval(mut self, interval: Duration) -> Self {
        self.settings.discovery_interval = interval;
        self
    }

    /// ListShards page size, 1..=10000 (default 1000).
    pub fn list_shards_page_size(mut self, size: i32) -> Self {
        self.settings.list_shards_page_size = size;
        self
    }

    /// A shard without records for this long stops holding the watermark back (default 30 s;
    /// `None`: never).
    pub fn shard_idle_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.settings.shard_idle_interval = interval.into();
        self
    }

    /// GetRecords answers buffered per subtask (default 8).
    pub fn queue_capacity(mut self, batches: usize) -> Self {
        self.settings.queue_capacity = batches;
        self
    }

    /// How long to wait at start for a CREATING stream to become ACTIVE (default 30 s).
    pub fn stream_active_timeout(mut self, timeout: Duration) -> Self {
        self.settings.stream_active_timeout = timeout;
        self
    }

    /// What to do with records the deserializer rejects (default: fail).
    pub fn malformed_records(mut self, policy: MalformedRecordPolicy) -> Self {
        self.settings.malformed_records = policy;
        self
    }

    /// Watermarks trail the largest timestamp of each shard by this much (default 0).
    pub fn max_out_of_orderness(mut self, lag: Duration) -> Self {
        self.settings.max_out_of_orderness = lag;
        self
    }

    /// Finish once no record has arrived anywhere for `idle` (bounded runs); default: never.
    pub fn stop_when_idle(mut self, idle: Duration) -> Self {
        self.settings.stop_when_idle = Some(idle);
        self
    }

    /// Which subtask reads which shard. By default shards are balanced by the number of open
    /// shards per subtask, replaying the shard lineage (initial shards by hash-key midpoint, as
    /// [`crate::UniformShardAssigner`]; each child of a split or merge to the subtask with the fewest
    /// open shards).
    pub fn assigner(mut self, assigner: impl ShardAssigner) -> Self {
        self.assigner = Some(Arc::new(assigner));
        self
    }

    /// Emits per-shard watermarks on event timestamps taken from each record by `assigner`
    /// (`max - lag - 1 ms` per shard, see [`Self::max_out_of_orderness`]; the subtask's watermark
    /// is the minimum over its active shards).
    pub fn timestamp_assigner(mut self, assigner: impl TimestampAssigner<T>) -> Self {
        self.timestamps = Some(Arc::new(assigner));
        self.watermarks = true;
        self
    }

    /// Emits per-shard watermarks on the records' approximate arrival timestamps.
    ///
    /// By default the source emits no watermarks (as Flink's sources without a watermark
    /// strategy): a job that windows on event time either calls this (or
    /// [`Self::timestamp_assigner`]), or assigns timestamps and watermarks after the source with
    /// `assign_timestamps_and_watermarks`, which replaces upstream watermarks.
    pub fn arrival_time_watermarks(mut self) -> Self {
        self.watermarks = true;
        self
    }

    /// Checks the settings and builds the source. LATEST is pinned to now.
    pub fn build(self) -> Result<KinesisSource<T>> {
        let s = &self.settings;
        let invalid = |setting: &'static str, value: String, reason: &str| KinesisSourceError::InvalidSetting {
            setting,
            value,
            reason: reason.to_string(),
        };
        if self.streams.is_empty() {
            return Err(invalid("stream", String::new(), "at least one stream is needed"));
        }
        for stream in &self.streams {
            let ok = !stream.is_empty()
                && stream.len() <= 128
                && stream.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(invalid("stream", stream.clone(), "1 to 128 characters of a-z, A-Z, 0-9, '_', '.', '-'"));
            }
        }
        if !(1..=10_000).contains(&s.get_records_max) {
            return Err(invalid("get_records_max", s.get_records_max.to_string(), "from 1 to 10000"));
        }
        if s.get_records_interval > MAX_GET_RECORDS_INTERVAL {
            return Err(invalid(
                "get_records_interval",
                format!("{:?}", s.get_records_interval),
                "at most 300 s (shard iterators expire after 5 minutes)",
            ));
        }
        if s.discovery_interval.is_zero() {
            return Err(invalid("discovery_interval", "0".into(), "must be positive"));
        }
        if !(1..=10_000).contains(&s.list_shards_page_size) {
            return Err(invalid("list_shards_page_size", s.list_shards_page_size.to_string(), "from 1 to 10000"));
        }
        if s.queue_capacity == 0 {
            return Err(invalid("queue_capacity", "0".into(), "at least 1"));
        }
        let connection = match self.connection {
            Some(c) => c,
            None => KinesisConnection::builder().build()?,
        };
        let now_ms = rill_runtime::ProcessingClock::system().now_ms();
        let listing = Arc::new(SharedListing::new(self.streams.clone(), connection.describe()));
        Ok(KinesisSource::from_shared(Shared {
            connection,
            streams: self.streams,
            settings: Arc::new(self.settings),
            deserializer: self.deserializer,
            timestamps: self.timestamps,
            watermarks: self.watermarks,
            assigner: SharedAssigner::new(self.assigner),
            registry: Default::default(),
            listing,
            stats: Default::default(),
            latest_pinned_ms: now_ms,
        }))
    }
}
