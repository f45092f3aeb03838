//! **rill-kinesis-source**: an exactly-once, parallel Amazon Kinesis source for rill jobs, the
//! Rust counterpart of Flink's `FlinkKinesisConsumer` without its known gaps.
//!
//! - [`KinesisSource`] implements [`rill_runtime::Source`]: configure it with
//!   [`KinesisSource::builder`] or Flink's property keys ([`KinesisSource::from_properties`]).
//! - Discovery: ListShards with paging every discovery interval, by every subtask; new shards are
//!   picked up without a restart, also by a subtask that had none. Assignment is deterministic
//!   and pluggable ([`ShardAssigner`]; by default balanced by open shards per subtask, replaying
//!   the shard lineage, see `balance.rs`).
//! - Ordering: a child shard is read only after all its parents were read to their end, even on
//!   other subtasks and after a crash (a parent's end must be part of a completed checkpoint).
//! - Reading: one tokio task per shard, GetRecords with max records and interval, full-jitter
//!   backoff on throttling and transient failures, expired iterators renewed, a bounded queue
//!   to the subtask; KPL aggregates are de-aggregated ([`kpl`]).
//! - State: per shard the last emitted sequence (and sub-sequence) number, or not-started /
//!   finished, as union state: restores work at any parallelism.
//! - Records: a [`KinesisDeserializer`] sees payload, partition key, sequence numbers, arrival
//!   time, stream and shard ([`BytesDeserializer`], [`Utf8Deserializer`], [`JsonDeserializer`]);
//!   malformed records fail the job or are skipped and counted ([`MalformedRecordPolicy`]).
//! - Event time: per-shard watermarks from arrival time or a [`TimestampAssigner`], minimum over
//!   active shards, idle shards ignored. Metrics go through `tracing` and the `metrics` crate.
//!
//! Depends on `rill-runtime` (the `Source` trait), `rill-kinesis-common` (connection, client,
//! error classes, backoff), `aws-sdk-kinesis`, `tokio`, `prost` and `md-5` (KPL), `metrics`.

mod assigner;
mod balance;
mod builder;
mod config;
mod date_format;
mod deserializer;
mod discovery;
mod error;
pub mod kpl;
mod lineage;
mod listing;
mod metrics;
mod pacing;
mod position;
mod properties;
mod reader;
mod record;
mod registry;
mod report;
mod retry;
mod shard;
mod shared;
mod source;
mod subtask;
mod watermarks;

pub use assigner::{ShardAssigner, UniformShardAssigner};
pub use builder::KinesisSourceBuilder;
pub use config::{
    ConsumerSettings, InitialPosition, MalformedRecordPolicy, RetrySettings, DEFAULT_GET_ITERATOR_RETRY,
    DEFAULT_GET_RECORDS_RETRY, DEFAULT_LIST_SHARDS_RETRY, DEFAULT_READ_BYTES_PER_SECOND, DEFAULT_SHARD_IDLE_INTERVAL,
};
pub use date_format::DEFAULT_TIMESTAMP_FORMAT;
pub use deserializer::{
    BytesDeserializer, DeserializeError, JsonDeserializer, KinesisDeserializer, TimestampAssigner, Utf8Deserializer,
};
pub use error::{KinesisSourceError, Result};
pub use metrics::SourceStats;
pub use position::{ShardPosition, StartingPoint, StateEntry};
pub use properties::{consumer_settings_from_properties, CONSUMER_PROPERTY_KEYS};
pub use record::KinesisRecord;
pub use shard::{ShardInfo, ShardKey};
pub use source::{KinesisSource, KinesisSourceReader};
