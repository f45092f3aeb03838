//! An Amazon Kinesis sink for rill jobs: [`KinesisSink`], an `Operator<T, ()>` that writes each
//! record with batched `PutRecords` calls.
//!
//! # Guarantee: at-least-once
//!
//! When a checkpoint barrier reaches the sink, it sends everything it holds and waits until
//! Kinesis has acknowledged **every record received before the barrier**; only then does it
//! acknowledge the barrier. So every record covered by a completed checkpoint is in Kinesis.
//! After a failure the job restarts from that checkpoint and replays what came after it, and
//! records that had already been written before the failure are written **again**: expect
//! duplicates after a failure (never losses), and none in a run without failures. Kinesis has
//! no transactions, so exactly-once output needs idempotent consumers (e.g. deduplicating on a
//! key carried in the data). Order: by default records of one partition key may arrive out of
//! order: several requests are in flight at once (a later request can be stored before an
//! earlier one, even without failures), and a retried entry lands after entries sent after it.
//! With `.ordering(true)` (`sink.ordering=true`) each partition key has at most one record in
//! flight or awaiting a retry, so per-key order holds across partial failures and retries; the
//! cost is one record per key per round trip (measured in BENCHMARKS.md).
//!
//! # Behaviour
//!
//! - **Records**: a serializer turns `T` into bytes; a stream selector may pick a target stream
//!   per record (else the default stream); a [`Partitioner`] picks the partition key (fixed =
//!   subtask index, random, from the record) and optionally an explicit hash key. A record over
//!   1 MiB (data plus partition key) is an error naming it and is never sent.
//! - **Batching**: up to 500 records and 5 MiB per request, sent when full or after the linger
//!   time; several requests in flight; a bounded buffer per subtask (records and bytes handed
//!   over, queued, in flight or awaiting retry): `process` blocks when it is full, so a slow
//!   stream back-pressures the job instead of growing memory.
//! - **Failures**: after a partial failure only the failed entries are retried, after a
//!   full-jitter backoff; throttled and transient request failures retry the whole request.
//!   Throttling is retried for as long as it takes (bounded only by the optional
//!   `throttle_retry_timeout`), transient failures `max_retries` times.
//! - **Rate control per shard**: records are mapped to their shard (MD5 of the partition key
//!   against the shard map, listed at start and every 30 s). Throttled entries hold back their
//!   shard only, for a full-jitter backoff, and lower its in-flight limit (AIMD: +10 per success
//!   as Flink's async sink, x0.5 per throttle where Flink uses 0.99, measured in BENCHMARKS.md);
//!   other shards keep full batches. Whole-request
//!   failures act on the subtask's limit.
//! - **Errors**: fatal errors (missing stream, access denied, validation, KMS, credentials) fail
//!   the task at once. Records still failing when their retries ran out, oversize records, bad
//!   partition keys and serializer errors follow the [`ErrorPolicy`]: fail the task (default; the
//!   job restarts from its checkpoint and loses nothing), retry for ever (Flink's
//!   `sink.fail-on-error=false`), or drop and count, with a log line per dropped batch.
//! - **Start**: the default stream is checked at open: a missing stream is a clear error.
//! - **Metrics**: records and bytes sent, requests, retries, throttles, dropped records,
//!   back-pressure waits, in-flight requests and records, buffer fill and the rate limit, through
//!   the `metrics` crate (see [`metrics`]) and [`SinkStats`]; events through `tracing`.
//!
//! ```no_run
//! use rill_kinesis_common::KinesisConnection;
//! use rill_kinesis_sink::{KinesisSink, Partitioner};
//! use rill_operators::{GeneratorSource, StreamExt};
//! use rill_runtime::StreamEnv;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let connection = KinesisConnection::builder().region("us-east-1").endpoint("http://127.0.0.1:4567").build()?;
//! let sink = KinesisSink::<u64>::builder()
//!     .connection(connection)
//!     .stream("numbers")
//!     .serializer(|n| n.to_string().into_bytes())
//!     .partitioner(Partitioner::from_record(|n: &u64| (n % 16).to_string()))
//!     .build()?;
//! let env = StreamEnv::builder().parallelism(2).checkpoint_dir("/tmp/numbers-job").build()?;
//! env.source("numbers", GeneratorSource::new(0..10_000)).sink_to(sink);
//! env.execute("numbers-to-kinesis")?;
//! # Ok(()) }
//! ```
//!
//! Depends on `rill-runtime` (the operator trait), `rill-kinesis-common` (connection, error
//! classes, backoff), `aws-sdk-kinesis`, `tokio` (one single-worker runtime per subtask),
//! `metrics` and `tracing`.

mod batch;
mod budget;
mod builder;
mod config;
mod error;
pub mod metrics;
mod partitioner;
mod properties;
mod rate;
mod request;
mod shard_map;
mod shard_rates;
mod sink;
mod stream_check;
mod writer;

pub use builder::KinesisSinkBuilder;
pub use config::{ErrorPolicy, SinkConfig, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES};
pub use error::SinkError;
pub use metrics::{SinkStats, SinkStatsSnapshot};
pub use partitioner::Partitioner;
pub use properties::{
    BATCH_MAX_SIZE, BUFFER_MAX_BYTES, ERROR_POLICY, FAIL_ON_ERROR, FLUSH_BUFFER_SIZE, FLUSH_BUFFER_TIMEOUT, ORDERING,
    PARTITIONER, REQUESTS_MAX_BUFFERED, REQUESTS_MAX_INFLIGHT, REQUEST_TIMEOUT, RETRIES_BACKOFF_BASE,
    RETRIES_BACKOFF_MAX, RETRIES_MAX, SINK_PROPERTY_KEYS, STREAM, THROTTLE_RETRY_TIMEOUT,
};
pub use sink::{KinesisSink, KinesisSinkOperator, Serializer, StreamSelector};
