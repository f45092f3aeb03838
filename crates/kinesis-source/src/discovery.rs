//! Finding shards: the stream's status at start, and ListShards with paging.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use rill_kinesis_common::api_error;

use crate::config::ConsumerSettings;
use crate::metrics::Stats;
use crate::retry::{with_retries, CallError};
use crate::shard::parse_hash_key;
use crate::{KinesisSourceError, Result, ShardInfo};

/// Guard against an endpoint that keeps answering with a next token.
const MAX_PAGES: usize = 100_000;

fn failed(e: CallError, operation: &'static str, stream: &str) -> KinesisSourceError {
    match e {
        CallError::Failed(e) => e,
        CallError::ExpiredIterator => {
            KinesisSourceError::State(format!("{operation} on {stream}: unexpected expired iterator"))
        }
    }
}

fn not_found(e: &KinesisSourceError) -> bool {
    match e {
        KinesisSourceError::Api { source, .. } | KinesisSourceError::RetriesExhausted { last: source, .. } => {
            source.code() == Some("ResourceNotFoundException")
        }
        _ => false,
    }
}

/// Checks that `stream` exists and can be read. A CREATING stream is waited for, at most
/// `stream_active_timeout`; ACTIVE and UPDATING (resharding) streams are readable.
pub(crate) async fn check_stream(
    client: &Client,
    stream: &str,
    settings: &ConsumerSettings,
    stats: &Stats,
    connection: &str,
) -> Result<()> {
    let started = Instant::now();
    // The first call to Kinesis: when it cannot connect, the error names where it tried.
    let target = format!("stream '{stream}' at {connection}");
    loop {
        let summary = with_retries(
            "DescribeStreamSummary",
            &target,
            &settings.list_shards_retry,
            settings.throttle_retry_timeout,
            stats,
            || async {
                client
                    .describe_stream_summary()
                    .stream_name(stream)
                    .send()
                    .await
                    .map_err(|e| api_error("DescribeStreamSummary", Some(stream), e))
            },
        )
        .await
        .map_err(|e| failed(e, "DescribeStreamSummary", stream));
        let summary = match summary {
            Ok(s) => s,
            Err(e) if not_found(&e) => {
                return Err(KinesisSourceError::StreamNotFound {
                    stream: stream.to_string(),
                    connection: connection.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        let status = summary.stream_description_summary().map(|s| s.stream_status().clone());
        match status {
            Some(StreamStatus::Active) | Some(StreamStatus::Updating) => return Ok(()),
            Some(StreamStatus::Creating) | None if started.elapsed() < settings.stream_active_timeout => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => {
                let waited = started.elapsed();
                return Err(KinesisSourceError::StreamNotActive {
                    stream: stream.to_string(),
                    status: other.map_or_else(|| "UNKNOWN".to_string(), |s| s.as_str().to_string()),
                    waited: (waited >= settings.stream_active_timeout).then_some(waited),
                });
            }
        }
    }
}

/// Lists the shards of `stream` with ids after `exclusive_start` (all when `None`), paging with
/// NextToken (without the stream name on follow-up calls, as AWS requires). Tolerates endpoints
/// that ignore paging or the start id (kinesalite): duplicates and older shards are filtered.
pub(crate) async fn list_shards(
    client: &Client,
    stream: &str,
    exclusive_start: Option<&str>,
    settings: &ConsumerSettings,
    stats: &Stats,
) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let token = next_token.clone();
        let out = with_retries(
            "ListShards",
            stream,
            &settings.list_shards_retry,
            settings.throttle_retry_timeout,
            stats,
            || {
                let request = match &token {
                    Some(t) => client.list_shards().next_token(t),
                    None => client
                        .list_shards()
                        .stream_name(stream)
                        .max_results(settings.list_shards_page_size)
                        .set_exclusive_start_shard_id(exclusive_start.map(str::to_string)),
                };
                async move { request.send().await.map_err(|e| api_error("ListShards", Some(stream), e)) }
            },
        )
        .await
        .map_err(|e| failed(e, "ListShards", stream));
        let out = match out {
            Ok(o) => o,
            Err(e) if not_found(&e) => {
                return Err(KinesisSourceError::StreamNotFound {
                    stream: stream.to_string(),
                    connection: "stream deleted while being read".to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        for shard in out.shards() {
            let id = shard.shard_id();
            if exclusive_start.is_some_and(|start| id <= start) || !seen.insert(id.to_string()) {
                continue;
            }
            let range = shard.hash_key_range();
            let start = range.and_then(|r| parse_hash_key(r.starting_hash_key()));
            let end = range.and_then(|r| parse_hash_key(r.ending_hash_key()));
            let (Some(hash_start), Some(hash_end)) = (start, end) else {
                return Err(KinesisSourceError::State(format!(
                    "ListShards returned shard {stream}/{id} without a valid hash key range"
                )));
            };
            shards.push(
                ShardInfo::new(stream, id, hash_start, hash_end)
                    .with_parents(shard.parent_shard_id(), shard.adjacent_parent_shard_id()),
            );
        }
        match out.next_token() {
            Some(t) if !t.is_empty() && next_token.as_deref() != Some(t) => next_token = Some(t.to_string()),
            _ => return Ok(shards),
        }
    }
    Ok(shards)
}
