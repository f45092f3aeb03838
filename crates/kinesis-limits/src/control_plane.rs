//! Control-plane calls (ListShards, DescribeStream, ...): a rate per account, stream, or
//! consumer and shard; over it they are answered `LimitExceededException`.

use std::time::Instant;

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::Response;
use serde_json::Value;

use crate::limits::{control_limit, Scope};
use crate::proxy::Shared;
use crate::request::stream_name_of;
use crate::response::{limit_exceeded, streamed, ProxyBody};
use crate::LimitsError;

/// What a call of a limited operation is counted against: empty for the account, the stream
/// name, or `consumer ARN|shard id`. `None` for operations without a limit.
pub(crate) fn scope_key(operation: &str, request: Option<&Value>) -> Option<String> {
    let limit = control_limit(operation)?;
    let field = |name: &str| request.and_then(|r| r.get(name)).and_then(Value::as_str).unwrap_or("");
    Some(match limit.scope {
        Scope::Account => String::new(),
        // A ListShards page after the first names no stream, only a NextToken.
        Scope::Stream => request.and_then(stream_name_of).unwrap_or("").to_string(),
        Scope::ConsumerShard => format!("{}|{}", field("ConsumerARN"), field("ShardId")),
    })
}

/// Forwards a control-plane call if its operation's rate allows it (unlimited operations
/// always); the answer is passed on as it arrives.
pub(crate) async fn control_call(
    shared: &Shared,
    operation: &str,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ProxyBody>, LimitsError> {
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    if let Some(scope) = scope_key(operation, request.as_ref()) {
        if !shared.budgets().admit_control(operation, &scope, Instant::now()) {
            tracing::debug!(%operation, %scope, "control-plane call over its rate");
            return Ok(limit_exceeded(operation, &scope));
        }
    }
    Ok(streamed(shared.upstream.forward(&parts, body).await?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_limited_operation_is_counted_against_its_scope() {
        assert_eq!(scope_key("DescribeStream", Some(&json!({ "StreamName": "a" }))), Some(String::new()));
        assert_eq!(scope_key("ListShards", Some(&json!({ "StreamName": "a" }))), Some("a".into()));
        assert_eq!(scope_key("ListShards", Some(&json!({ "NextToken": "t" }))), Some(String::new()));
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/a";
        assert_eq!(scope_key("ListStreamConsumers", Some(&json!({ "StreamARN": arn }))), Some("a".into()));
        let subscribe = json!({ "ConsumerARN": "c", "ShardId": "shardId-000000000000" });
        assert_eq!(scope_key("SubscribeToShard", Some(&subscribe)), Some("c|shardId-000000000000".into()));
        assert_eq!(scope_key("CreateStream", Some(&json!({}))), None);
    }
}
