//! Consumer settings: start position, GetRecords pacing, retry policies, discovery and idleness.
//! Defaults are Flink's (`ConsumerConfigConstants`).

use std::time::Duration;

use rill_kinesis_common::FullJitter;

/// Where a shard is read from when the job has no checkpointed position for it.
///
/// Applies to the shards found at the first start of a job; shards that appear later (children
/// of a reshard) and shards unknown to a restored checkpoint are read from TRIM_HORIZON, so
/// nothing written to them is missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// Records written after the job started. Pinned to `AT_TIMESTAMP(job start)` when the
    /// source is built, so a failure before the first checkpoint loses nothing.
    Latest,
    /// The oldest records still in the stream.
    TrimHorizon,
    /// Records that arrived at or after this time (milliseconds since the Unix epoch).
    AtTimestamp {
        /// Milliseconds since the Unix epoch.
        millis: i64,
    },
}

/// What to do with a record the deserializer rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MalformedRecordPolicy {
    /// Fail the task (the job restarts from its last checkpoint and meets the record again).
    #[default]
    Fail,
    /// Log stream, shard and sequence number, count it, and go on (its position still advances).
    SkipAndCount,
}

/// Full-jitter exponential backoff for one kind of call: `max_retries` retries, the delay
/// before retry `n` being `random(0, min(max, base * exponent^n))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySettings {
    /// Retries after the first call (Flink's `...maxretries`).
    pub max_retries: u32,
    /// Base delay (`...backoff.base`).
    pub base: Duration,
    /// Largest delay (`...backoff.max`).
    pub max: Duration,
    /// Growth per retry (`...backoff.expconst`).
    pub exponent: f64,
}

impl RetrySettings {
    /// Settings from Flink's four values.
    pub const fn new(max_retries: u32, base_ms: u64, max_ms: u64, exponent: f64) -> Self {
        RetrySettings {
            max_retries,
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
            exponent,
        }
    }

    /// The delays, as the shared full-jitter helper.
    pub fn backoff(&self) -> FullJitter {
        FullJitter::new(self.base, self.max).exponent(self.exponent)
    }
}

/// Flink's `flink.shard.getrecords.*` retry defaults: 3 retries, 300 ms, 1000 ms, 1.5.
pub const DEFAULT_GET_RECORDS_RETRY: RetrySettings = RetrySettings::new(3, 300, 1000, 1.5);
/// Flink's `flink.shard.getiterator.*` retry defaults: 3 retries, 300 ms, 1000 ms, 1.5.
pub const DEFAULT_GET_ITERATOR_RETRY: RetrySettings = RetrySettings::new(3, 300, 1000, 1.5);
/// Flink's `flink.list.shards.*` retry defaults: 10 retries, 1000 ms, 5000 ms, 1.5.
pub const DEFAULT_LIST_SHARDS_RETRY: RetrySettings = RetrySettings::new(10, 1000, 5000, 1.5);

/// Everything that shapes how the source reads, besides connection, streams and user hooks.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSettings {
    /// Start position of the shards found at a fresh start (`flink.stream.initpos`, LATEST).
    pub initial_position: InitialPosition,
    /// Records per GetRecords call (`flink.shard.getrecords.maxrecordcount`, 10000; 1..=10000).
    pub get_records_max: i32,
    /// Time from the end of one GetRecords call on a shard to the start of the next
    /// (`flink.shard.getrecords.intervalmillis`, 200 ms; at most 300 s): at most 5 calls a
    /// second, the per-shard limit.
    pub get_records_interval: Duration,
    /// Wait after a GetRecords call that returned nothing, before the next one on that shard
    /// (`rill.shard.getrecords.empty.intervalmillis`, 1 s; at least the interval): an idle shard
    /// does not spend the read budget its other consumers share.
    pub get_records_empty_interval: Duration,
    /// Size each GetRecords call from the average record size so a shard is read at no more
    /// than `read_bytes_per_second` (`flink.shard.adaptivereads`; on by default in rill, off in
    /// Flink).
    pub adaptive_reads: bool,
    /// The read rate adaptive reads aim at, per shard (`rill.shard.read.bytes-per-second`;
    /// 2 MiB/s, the Kinesis limit shared by all polling consumers of a shard).
    pub read_bytes_per_second: u64,
    /// How long a throttled call is retried before the task fails
    /// (`rill.throttle.retry.timeout.millis`, 10 minutes; `None`, -1, for ever). Throttling
    /// never counts against the retry counts, which bound transient failures only.
    pub throttle_retry_timeout: Option<Duration>,
    /// Retries of GetRecords.
    pub get_records_retry: RetrySettings,
    /// Retries of GetShardIterator.
    pub get_iterator_retry: RetrySettings,
    /// Retries of ListShards and DescribeStreamSummary.
    pub list_shards_retry: RetrySettings,
    /// Time between shard discoveries (`flink.shard.discovery.intervalmillis`, 10 s).
    pub discovery_interval: Duration,
    /// A shard without records for this long stops holding the watermark back
    /// (`flink.shard.idle.interval`; 30 s in rill, where Flink's default is -1, never: a silent
    /// shard would stall every event-time window; `None` (-1) for never).
    pub shard_idle_interval: Option<Duration>,
    /// ListShards page size (`MaxResults`, 1..=10000; 1000).
    pub list_shards_page_size: i32,
    /// GetRecords answers buffered between the shard readers and the subtask (back-pressure), 8.
    pub queue_capacity: usize,
    /// How long to wait for a CREATING stream to become ACTIVE at start (30 s).
    pub stream_active_timeout: Duration,
    /// What to do with records the deserializer rejects.
    pub malformed_records: MalformedRecordPolicy,
    /// Watermarks trail the largest timestamp of a shard by this much (0).
    pub max_out_of_orderness: Duration,
    /// Finish the source once no record has arrived for this long (bounded runs: tests,
    /// examples, backfills); `None` (default) reads forever.
    pub stop_when_idle: Option<Duration>,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            initial_position: InitialPosition::Latest,
            get_records_max: 10_000,
            get_records_interval: Duration::from_millis(200),
            get_records_empty_interval: Duration::from_secs(1),
            adaptive_reads: true,
            read_bytes_per_second: DEFAULT_READ_BYTES_PER_SECOND,
            throttle_retry_timeout: Some(Duration::from_secs(600)),
            get_records_retry: DEFAULT_GET_RECORDS_RETRY,
            get_iterator_retry: DEFAULT_GET_ITERATOR_RETRY,
            list_shards_retry: DEFAULT_LIST_SHARDS_RETRY,
            discovery_interval: Duration::from_millis(10_000),
            shard_idle_interval: Some(DEFAULT_SHARD_IDLE_INTERVAL),
            list_shards_page_size: 1000,
            queue_capacity: 8,
            stream_active_timeout: Duration::from_secs(30),
            malformed_records: MalformedRecordPolicy::Fail,
            max_out_of_orderness: Duration::ZERO,
            stop_when_idle: None,
        }
    }
}

/// How long a started shard may stay silent before it stops holding event time back: 30 s.
pub const DEFAULT_SHARD_IDLE_INTERVAL: Duration = Duration::from_secs(30);

/// The per-shard read limit of Kinesis, shared by all polling consumers: 2 MiB/s.
pub const DEFAULT_READ_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

/// Longest GetRecords interval: shard iterators expire after five minutes.
pub(crate) const MAX_GET_RECORDS_INTERVAL: Duration = Duration::from_secs(300);
