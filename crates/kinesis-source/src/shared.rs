//! What every subtask of one [`crate::KinesisSource`] shares: connection, settings, the
//! deserializer, the assigner, the in-process registry and the statistics.

use std::sync::Arc;

use rill_kinesis_common::KinesisConnection;

use crate::assigner::SharedAssigner;
use crate::listing::SharedListing;
use crate::metrics::Stats;
use crate::registry::Registry;
use crate::{ConsumerSettings, KinesisDeserializer, TimestampAssigner};

/// What every subtask of one source shares.
pub(crate) struct Shared<T> {
    pub(crate) connection: KinesisConnection,
    pub(crate) streams: Vec<String>,
    pub(crate) settings: Arc<ConsumerSettings>,
    pub(crate) deserializer: Arc<dyn KinesisDeserializer<T>>,
    pub(crate) timestamps: Option<Arc<dyn TimestampAssigner<T>>>,
    /// Whether the source emits watermarks (off unless asked for).
    pub(crate) watermarks: bool,
    pub(crate) assigner: SharedAssigner,
    pub(crate) registry: Registry,
    /// One shard discovery for all subtasks in this process.
    pub(crate) listing: Arc<SharedListing>,
    pub(crate) stats: Arc<Stats>,
    /// When the source was built: the timestamp LATEST is pinned to.
    pub(crate) latest_pinned_ms: i64,
}
