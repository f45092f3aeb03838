//! What an awsJson 1.1 Kinesis request names: its operation, stream and data sizes.

use hyper::HeaderMap;
use serde_json::Value;

/// `X-Amz-Target: Kinesis_20131202.GetRecords` -> `GetRecords` (empty if absent).
pub(crate) fn operation_of(headers: &HeaderMap) -> &str {
    headers.get("x-amz-target").and_then(|v| v.to_str().ok()).and_then(|target| target.rsplit('.').next()).unwrap_or("")
}

/// The stream a request names by `StreamName`, or by `StreamARN` (the name follows `stream/`,
/// up to the next `/` as in consumer ARNs).
pub(crate) fn stream_name_of(request: &Value) -> Option<&str> {
    if let Some(name) = request.get("StreamName").and_then(Value::as_str) {
        return Some(name);
    }
    let arn = request.get("StreamARN").and_then(Value::as_str)?;
    stream_name_of_arn(arn)
}

/// `arn:aws:kinesis:us-east-1:123456789012:stream/orders[/consumer/...]` -> `orders`.
pub(crate) fn stream_name_of_arn(arn: &str) -> Option<&str> {
    let (_, after) = arn.split_once(":stream/")?;
    after.split('/').next().filter(|name| !name.is_empty())
}

/// The number of bytes a standard base64 string decodes to, without decoding it.
pub(crate) fn decoded_len(base64: &str) -> u64 {
    let trimmed = base64.trim_end_matches('=').len() as u64;
    trimmed * 3 / 4
}

#[cfg(test)]
mod tests {
    use base64::prelude::{Engine, BASE64_STANDARD};
    use serde_json::json;

    use super::*;

    #[test]
    fn the_operation_is_the_target_after_the_dot() {
        let mut headers = HeaderMap::new();
        assert_eq!(operation_of(&headers), "");
        headers.insert("x-amz-target", "Kinesis_20131202.PutRecords".parse().expect("valid header"));
        assert_eq!(operation_of(&headers), "PutRecords");
    }

    #[test]
    fn a_stream_is_named_by_its_name_or_its_arn() {
        assert_eq!(stream_name_of(&json!({ "StreamName": "a" })), Some("a"));
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";
        assert_eq!(stream_name_of(&json!({ "StreamARN": arn })), Some("orders"));
        let consumer = "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/c1:1700000000";
        assert_eq!(stream_name_of_arn(consumer), Some("orders"));
        assert_eq!(stream_name_of(&json!({ "ShardIterator": "x" })), None);
    }

    #[test]
    fn the_decoded_length_of_base64_is_computed_exactly() {
        for len in 0..40 {
            let data = vec![7u8; len];
            assert_eq!(decoded_len(&BASE64_STANDARD.encode(&data)), len as u64, "length {len}");
        }
    }
}
