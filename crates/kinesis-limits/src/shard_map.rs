//! The open shards of each stream, listed upstream with the proxy's own (uncharged) ListShards
//! calls and cached for a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use serde_json::{json, Value};

use rill_kinesis_common::ShardRanges;

use crate::hash_range::{open_shard_ranges, ShardRange};
use crate::upstream::Upstream;
use crate::LimitsError;

/// How long a stream's shard list is used before it is listed again.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// At most this many ListShards pages per listing (a guard against a token that never ends).
const MAX_PAGES: usize = 1000;

#[derive(Debug)]
struct Listed {
    at: Instant,
    ranges: Arc<ShardRanges<String>>,
}

/// Cached shard lists, per stream.
#[derive(Debug, Default)]
pub(crate) struct ShardMaps {
    // An async lock: concurrent writers wait for one listing instead of each making their own.
    cache: tokio::sync::Mutex<HashMap<String, Listed>>,
}

impl ShardMaps {
    /// The shard of each hash key of `stream` (`None` where no open shard holds it). Lists the
    /// stream when its cached list is older than a second, or once more when a key matches
    /// no shard of a cached list.
    pub(crate) async fn shards_for(
        &self,
        upstream: &Upstream,
        client_headers: &HeaderMap,
        stream: &str,
        hash_keys: &[u128],
    ) -> Result<Vec<Option<String>>, LimitsError> {
        let map = |ranges: &ShardRanges<String>| -> Vec<Option<String>> {
            hash_keys.iter().map(|key| ranges.shard_of(*key).cloned()).collect()
        };
        let mut cache = self.cache.lock().await;
        if let Some(listed) = cache.get(stream).filter(|l| l.at.elapsed() < CACHE_FOR) {
            let shards = map(&listed.ranges);
            if shards.iter().all(Option::is_some) {
                return Ok(shards);
            }
        }
        let ranges = Arc::new(ShardRanges::new(list_open_shards(upstream, client_headers, stream).await?));
        let shards = map(&ranges);
        cache.insert(stream.to_string(), Listed { at: Instant::now(), ranges });
        Ok(shards)
    }
}

/// Every open shard of `stream`, following `NextToken` (kinesalite answers all shards at once,
/// kinesis-local pages).
async fn list_open_shards(
    upstream: &Upstream,
    client_headers: &HeaderMap,
    stream: &str,
) -> Result<Vec<ShardRange>, LimitsError> {
    let mut ranges = Vec::new();
    let mut payload = json!({ "StreamName": stream });
    for _ in 0..MAX_PAGES {
        let (status, answer) = upstream.call("ListShards", &payload, client_headers).await?;
        if status != 200 {
            return Err(LimitsError::Upstream {
                operation: "ListShards".into(),
                reason: format!("HTTP {status} for stream '{stream}': {answer}"),
            });
        }
        ranges.extend(open_shard_ranges(&answer));
        match answer.get("NextToken").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => payload = json!({ "NextToken": token }),
            _ => return Ok(ranges),
        }
    }
    Err(LimitsError::Upstream {
        operation: "ListShards".into(),
        reason: format!("more than {MAX_PAGES} pages for stream '{stream}'"),
    })
}
