//! Connection code shared by rill's Kinesis source (`rill-kinesis-source`) and sink
//! (`rill-kinesis-sink`).
//!
//! - [`KinesisConnection`]: region, endpoint override (also `AWS_ENDPOINT_URL` and
//!   `AWS_ENDPOINT_URL_KINESIS`, which aws-config honours) and credentials (default chain, named
//!   profile with an optional credentials file, environment variables, static keys), with a
//!   typed builder and [`KinesisConnection::from_properties`] for Flink's `aws.*` keys. `Debug`
//!   output never shows secrets.
//! - [`KinesisConnection::client`] builds an `aws_sdk_kinesis::Client`; [`ClientHook`]s can
//!   install SDK interceptors or wrap the HTTP client (fault injection in tests).
//! - [`AwsErrorKind`], [`classify_code`] and [`classify_sdk_error`]: throttled, transient, expired
//!   iterator or fatal, for deciding between backing off and failing.
//! - [`list_all_shards`]: every shard of a stream, ListShards paged by hand; a record's hash key
//!   ([`hash_key_of_partition_key`]) and the shard that takes it ([`ShardRanges`]).
//! - [`FullJitter`]: full-jitter exponential backoff, usable with the `backon` crate.
//! - With the `test-utils` feature, `test_utils`: emulator endpoints from the environment,
//!   stream creation and read-back, and a fault-injecting HTTP client.
//!
//! Depends on `aws-config`, `aws-sdk-kinesis` (and the smithy runtime crates under them),
//! `backon`, `tokio`, `tracing`, `thiserror` and `md-5`; nothing of rill itself.

mod backoff;
mod classify;
mod client;
mod connection;
mod error;
mod hash_key;
mod list_shards;
mod properties;

#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use backoff::{FullJitter, FullJitterBackoff};
pub use classify::{api_error, classify_code, classify_sdk_error, AwsErrorKind};
pub use client::FALLBACK_REGION;
pub use connection::{ClientHook, CredentialsSource, KinesisConnection, KinesisConnectionBuilder, Secret};
pub use error::{Error, Result};
pub use hash_key::{hash_key_of_partition_key, parse_explicit_hash_key, ShardRanges};
pub use list_shards::list_all_shards;
pub use properties::{
    is_connection_key, AWS_ACCESS_KEY_ID, AWS_CREDENTIALS_PROVIDER, AWS_ENDPOINT, AWS_PROFILE_NAME, AWS_PROFILE_PATH,
    AWS_REGION, AWS_SECRET_ACCESS_KEY, CONNECTION_PROPERTY_KEYS,
};

/// The `backon` crate, re-exported so users of [`FullJitter`] need not depend on it.
pub use backon;
