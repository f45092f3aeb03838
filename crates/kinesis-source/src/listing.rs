//! One shard discovery per process for a source, shared by all its subtasks (FLINK-8944: one
//! ListShards per subtask multiplies control-plane calls by the parallelism).
//!
//! Subtasks ask for a listing no older than they need; the first to ask while the cached one is
//! too old lists (holding the lock, so concurrent askers wait for that one call and share its
//! answer). Streams are checked (DescribeStreamSummary) once per source. When ListShards answers
//! `ResourceInUseException` or `ExpiredNextTokenException`, the previous listing is kept for that
//! round, as Flink does, instead of failing the task.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_sdk_kinesis::Client;

use crate::config::ConsumerSettings;
use crate::discovery::{check_stream, list_shards};
use crate::metrics::Stats;
use crate::{KinesisSourceError, Result, ShardInfo};

/// A listing of every stream of a source.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// When the listing calls started: every shard created before this is in it.
    pub(crate) started: Instant,
    /// The shards, in stream and shard-id order.
    pub(crate) shards: Vec<ShardInfo>,
}

#[derive(Debug, Default)]
struct State {
    checked: BTreeSet<String>,
    /// Stream → shard id → shard, from the last complete listing.
    shards: BTreeMap<String, BTreeMap<String, ShardInfo>>,
    started: Option<Instant>,
}

/// The listing cache of one source, shared by its subtasks in this process.
#[derive(Debug)]
pub(crate) struct SharedListing {
    streams: Vec<String>,
    /// Region and endpoint, for the error naming a missing stream.
    connection: String,
    state: tokio::sync::Mutex<State>,
}

/// Whether a ListShards failure keeps the previous listing for this round (as Flink).
pub(crate) fn keeps_previous_listing(error: &KinesisSourceError) -> bool {
    let code = match error {
        KinesisSourceError::Api { source, .. } | KinesisSourceError::RetriesExhausted { last: source, .. } => {
            source.code()
        }
        _ => None,
    };
    matches!(code, Some("ResourceInUseException" | "ExpiredNextTokenException"))
}

impl SharedListing {
    /// The listing of `streams`; `connection` describes region and endpoint for errors.
    pub(crate) fn new(streams: Vec<String>, connection: String) -> Self {
        SharedListing { streams, connection, state: tokio::sync::Mutex::default() }
    }

    /// The shards of the source's streams, from a listing that started at or after
    /// `not_before` (a cached one if it qualifies). Checks each stream once first.
    pub(crate) async fn shards(
        &self,
        client: &Client,
        settings: &ConsumerSettings,
        stats: &Stats,
        not_before: Instant,
    ) -> Result<Listing> {
        let (streams, connection) = (&self.streams, &self.connection);
        let mut state = self.state.lock().await;
        for stream in streams {
            if !state.checked.contains(stream) {
                check_stream(client, stream, settings, stats, connection).await?;
                state.checked.insert(stream.clone());
            }
        }
        if let Some(started) = state.started.filter(|s| *s >= not_before) {
            return Ok(Listing { started, shards: state.flatten(streams) });
        }
        let started = Instant::now();
        let mut fresh = BTreeMap::new();
        for stream in streams {
            match list_shards(client, stream, None, settings, stats).await {
                Ok(shards) => {
                    fresh.insert(stream.clone(), shards.into_iter().map(|s| (s.key.shard_id.clone(), s)).collect());
                }
                Err(e) if keeps_previous_listing(&e) && state.shards.contains_key(stream) => {
                    tracing::warn!(stream, error = %e, "ListShards unavailable this round; keeping the previous shard list");
                    stats.listing_kept();
                    let previous = state.started.unwrap_or(started);
                    return Ok(Listing { started: previous, shards: state.flatten(streams) });
                }
                Err(e) => return Err(e),
            }
        }
        stats.listed();
        state.shards = fresh;
        state.started = Some(started);
        Ok(Listing { started, shards: state.flatten(streams) })
    }
}

impl State {
    fn flatten(&self, streams: &[String]) -> Vec<ShardInfo> {
        streams.iter().filter_map(|s| self.shards.get(s)).flat_map(|m| m.values().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_kinesis_common::{AwsErrorKind, Error as CommonError};

    fn api(code: &str) -> KinesisSourceError {
        KinesisSourceError::Api {
            operation: "ListShards",
            target: "s".into(),
            source: Box::new(CommonError::Api {
                operation: "ListShards",
                stream: Some("s".into()),
                class: AwsErrorKind::Fatal,
                code: Some(code.into()),
                message: code.into(),
                source: code.to_string().into(),
            }),
        }
    }

    #[test]
    fn resource_in_use_and_expired_tokens_keep_the_previous_listing_and_nothing_else_does() {
        assert!(keeps_previous_listing(&api("ResourceInUseException")));
        assert!(keeps_previous_listing(&api("ExpiredNextTokenException")));
        assert!(!keeps_previous_listing(&api("ResourceNotFoundException")));
        assert!(!keeps_previous_listing(&api("AccessDeniedException")));
    }
}
