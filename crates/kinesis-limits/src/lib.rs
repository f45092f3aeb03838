//! An HTTP proxy between the AWS SDK and a local Kinesis emulator (kinesalite, kinesis-local)
//! that enforces the limits AWS publishes, so that code tested against an emulator meets
//! throttling as it would in AWS.
//!
//! Every call is forwarded to the emulator unchanged, except where a limit is exceeded; then
//! the proxy answers as AWS does (HTTP 400 with `x-amzn-ErrorType`, `__type` and `message`):
//!
//! - GetRecords: 5 calls per second per shard, and 2 MiB of returned data per second per shard,
//!   charged after the answer (a 10 MiB answer blocks the shard for about 5 s). A GetRecords
//!   call names only an iterator: the proxy remembers the shard of every iterator it passes
//!   on (from GetShardIterator, and each `NextShardIterator`), for 6 minutes.
//! - GetShardIterator: 5 calls per second per shard.
//! - PutRecords and PutRecord: 1,000 records and 1 MiB per second per shard. Each entry is
//!   mapped to its shard (MD5 of the partition key, or the explicit hash key, against the
//!   open shards' hash key ranges, listed upstream and cached for a second); only the admitted
//!   entries are forwarded, the others are answered `ProvisionedThroughputExceededException`
//!   in place.
//! - Control-plane calls (ListShards, DescribeStream, DescribeStreamSummary, ListStreams,
//!   consumers, SubscribeToShard): their published rates, answered `LimitExceededException`.
//!
//! Each per-shard value is a field of [`Limits`] (emulators are slower than AWS, so tests scale
//! them down); [`LimitsProxy::start`] runs the proxy in-process and the `kinesis-limits` binary
//! runs it standalone. [`LimitsProxy::stats`] (or `GET /_limits/stats`) tells what was
//! throttled, per shard.
//!
//! The proxy changes PutRecords bodies, so request signatures no longer match: it is meant for
//! emulators, which do not check them. It speaks plain HTTP/1.1 and awsJson 1.1 (calls in CBOR
//! are forwarded without limits).
//!
//! Depends on `hyper`/`hyper-util` (server and upstream client), `tokio`, `serde_json`, `md-5`
//! (partition key hashing), `tracing` and `thiserror`; the binary adds `clap` and
//! `tracing-subscriber`. Nothing of rill itself.

mod bucket;
mod budgets;
mod control_plane;
mod error;
mod get_records;
mod hash_range;
mod iterators;
mod limits;
mod proxy;
mod put_records;
mod request;
mod response;
mod shard_map;
mod stats;
mod upstream;

pub use error::LimitsError;
pub use limits::Limits;
pub use proxy::{LimitsProxy, STATS_PATH};
pub use stats::{ShardStats, Stats};
