//! Answers to the client: AWS-style errors, JSON bodies, and upstream answers passed on.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::iterators::ShardKey;

/// The body of every answer of the proxy: buffered or streamed from upstream.
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The content type of awsJson 1.1.
pub(crate) const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// The account id used in messages (emulators use this one too).
pub(crate) const ACCOUNT: &str = "000000000000";

/// Headers that describe one hop of a connection, never passed on.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes hop-by-hop headers (and `Host`, and `Content-Length` if `with_length` is false).
pub(crate) fn strip_headers(headers: &mut HeaderMap, with_length: bool) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(hyper::header::HOST);
    if !with_length {
        headers.remove(CONTENT_LENGTH);
    }
}

/// A full body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An answer with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    response
}

/// An AWS error answer: HTTP 400, `x-amzn-ErrorType: code`, and `__type` and `message` in the body.
pub(crate) fn aws_error(code: &'static str, message: &str) -> Response<ProxyBody> {
    let mut response = json_response(StatusCode::BAD_REQUEST, &json!({ "__type": code, "message": message }));
    response.headers_mut().insert(HeaderName::from_static("x-amzn-errortype"), HeaderValue::from_static(code));
    response
}

/// The message AWS gives for a throttled shard.
pub(crate) fn shard_rate_message(shard: &ShardKey) -> String {
    format!("Rate exceeded for shard {} in stream {} under account {ACCOUNT}.", shard.shard_id, shard.stream)
}

/// `ProvisionedThroughputExceededException` for a shard.
pub(crate) fn throttled(shard: &ShardKey) -> Response<ProxyBody> {
    aws_error("ProvisionedThroughputExceededException", &shard_rate_message(shard))
}

/// `LimitExceededException` for a control-plane operation.
pub(crate) fn limit_exceeded(operation: &str, scope: &str) -> Response<ProxyBody> {
    let of = if scope.is_empty() { String::new() } else { format!(" of {scope}") };
    aws_error("LimitExceededException", &format!("Rate exceeded for {operation}{of} under account {ACCOUNT}."))
}

/// HTTP 502 for an upstream failure, in the AWS error format so SDKs can read it.
pub(crate) fn bad_gateway(reason: &str) -> Response<ProxyBody> {
    let body = json!({ "__type": "InternalFailure", "message": format!("kinesis-limits: {reason}") });
    json_response(StatusCode::BAD_GATEWAY, &body)
}

/// An upstream answer whose body was read: same status and headers, same body.
pub(crate) fn buffered(parts: hyper::http::response::Parts, body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::from_parts(parts, full(body));
    strip_headers(response.headers_mut(), false);
    response
}

/// An upstream answer passed on as it arrives (event streams included).
pub(crate) fn streamed(answer: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = answer.into_parts();
    strip_headers(&mut parts.headers, true);
    Response::from_parts(parts, body.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_answer_looks_like_aws_s() {
        let response = throttled(&ShardKey::new("orders", "shardId-000000000001"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get("x-amzn-ErrorType").and_then(|v| v.to_str().ok()),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(AMZ_JSON));
    }

    #[test]
    fn the_throttle_message_names_the_shard_and_the_stream() {
        let message = shard_rate_message(&ShardKey::new("orders", "shardId-000000000001"));
        assert_eq!(
            message,
            "Rate exceeded for shard shardId-000000000001 in stream orders under account 000000000000."
        );
    }
}
