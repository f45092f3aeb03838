//! Every shard of a stream from ListShards, paging by hand: the SDK has no ListShards
//! paginator, and follow-up pages carry only the NextToken (no stream name), as AWS requires.

use aws_sdk_kinesis::types::Shard;
use aws_sdk_kinesis::Client;

use crate::{api_error, Result};

/// Every shard of `stream`, open or closed, in the order ListShards returns them. One call per
/// page, no retries (callers that need them wrap this or page themselves); stops on an empty or
/// repeated NextToken.
pub async fn list_all_shards(client: &Client, stream: &str) -> Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = request.send().await.map_err(|e| api_error("ListShards", Some(stream), e))?;
        shards.extend(out.shards().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.to_string()),
            _ => return Ok(shards),
        }
    }
}
