//! PutRecords and PutRecord: records and bytes per shard. A PutRecords call is split per
//! entry: only the admitted entries go upstream, and the answer is merged back into the
//! original order with the refused entries marked throttled.

use std::time::Instant;

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::hash_range::hash_key_of_entry;
use crate::iterators::ShardKey;
use crate::proxy::Shared;
use crate::request::{decoded_len, stream_name_of};
use crate::response::{buffered, json_response, shard_rate_message, streamed, throttled, ProxyBody};
use crate::LimitsError;

/// The AWS error code of a throttled entry.
const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// What became of one PutRecords entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Sent upstream (also when its shard could not be determined: then upstream decides).
    Admitted,
    /// Refused: its shard's budget is used up.
    Throttled(ShardKey),
}

/// The bytes an entry counts against its shard: decoded data plus partition key (UTF-8).
pub(crate) fn entry_bytes(entry: &Value) -> u64 {
    let data = entry.get("Data").and_then(Value::as_str).map_or(0, decoded_len);
    let key = entry.get("PartitionKey").and_then(Value::as_str).map_or(0, str::len);
    data + key as u64
}

/// The PutRecords answer for the whole request: the upstream results of the admitted entries
/// (in the order they were sent) and a throttle error for each refused one, in the original
/// order. `FailedRecordCount` adds the refused entries to upstream's failures.
pub(crate) fn merge_answer(fates: &[Fate], upstream: Option<&Value>) -> Result<Value, String> {
    let mut results = upstream.and_then(|a| a.get("Records")).and_then(Value::as_array).into_iter().flatten();
    let upstream_failed = upstream.and_then(|a| a.get("FailedRecordCount")).and_then(Value::as_u64).unwrap_or(0);
    let mut refused = 0u64;
    let mut records = Vec::with_capacity(fates.len());
    for fate in fates {
        match fate {
            Fate::Admitted => {
                let result = results.next().ok_or("upstream answered fewer records than were sent")?;
                records.push(result.clone());
            }
            Fate::Throttled(shard) => {
                refused += 1;
                records.push(json!({ "ErrorCode": THROTTLED, "ErrorMessage": shard_rate_message(shard) }));
            }
        }
    }
    let mut answer = Map::new();
    answer.insert("FailedRecordCount".into(), json!(upstream_failed + refused));
    answer.insert("Records".into(), Value::Array(records));
    if let Some(encryption) = upstream.and_then(|a| a.get("EncryptionType")) {
        answer.insert("EncryptionType".into(), encryption.clone());
    }
    Ok(Value::Object(answer))
}

/// PutRecords: admits each entry against its shard's records and bytes, forwards only the
/// admitted ones, and merges the answer. A request the proxy cannot read (no stream, an entry
/// without a hash key, an unknown stream) is forwarded unchanged for upstream to judge.
pub(crate) async fn put_records(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ProxyBody>, LimitsError> {
    let Some(mut request) = serde_json::from_slice::<Value>(&body).ok() else {
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    };
    let Some(stream) = stream_name_of(&request).map(str::to_string) else {
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    };
    let entries = request.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(hash_keys) = entries.iter().map(hash_key_of_entry).collect::<Option<Vec<u128>>>() else {
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    };
    let shards = match shared.shard_maps.shards_for(&shared.upstream, &parts.headers, &stream, &hash_keys).await {
        Ok(shards) => shards,
        Err(e) => {
            tracing::debug!(%stream, error = %e, "PutRecords forwarded without limits: cannot list the shards");
            return Ok(streamed(shared.upstream.forward(&parts, body).await?));
        }
    };
    let fates: Vec<Fate> = {
        let now = Instant::now();
        let mut budgets = shared.budgets();
        shards
            .iter()
            .zip(&entries)
            .map(|(shard_id, entry)| match shard_id {
                None => Fate::Admitted,
                Some(shard_id) => {
                    let shard = ShardKey::new(&stream, shard_id);
                    if budgets.admit_put_entry(&shard, entry_bytes(entry), now) {
                        Fate::Admitted
                    } else {
                        Fate::Throttled(shard)
                    }
                }
            })
            .collect()
    };
    if fates.iter().all(|f| *f == Fate::Admitted) {
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    }
    let admitted: Vec<Value> =
        entries.into_iter().zip(&fates).filter(|(_, fate)| **fate == Fate::Admitted).map(|(entry, _)| entry).collect();
    let throttled_count = fates.len() - admitted.len();
    tracing::debug!(%stream, throttled = throttled_count, admitted = admitted.len(), "PutRecords entries throttled");
    let mut request_id = None;
    let upstream_answer = if admitted.is_empty() {
        None
    } else {
        if let Some(fields) = request.as_object_mut() {
            fields.insert("Records".into(), Value::Array(admitted));
        }
        let (answer_parts, answer_body) =
            shared.upstream.forward_buffered(&parts, Bytes::from(request.to_string())).await?;
        if !answer_parts.status.is_success() {
            return Ok(buffered(answer_parts, answer_body));
        }
        request_id = answer_parts.headers.get("x-amzn-requestid").cloned();
        let answer: Value = serde_json::from_slice(&answer_body).map_err(|e| LimitsError::Upstream {
            operation: "PutRecords".into(),
            reason: format!("the answer is not JSON: {e}"),
        })?;
        Some(answer)
    };
    let merged = merge_answer(&fates, upstream_answer.as_ref())
        .map_err(|reason| LimitsError::Upstream { operation: "PutRecords".into(), reason })?;
    let mut response = json_response(StatusCode::OK, &merged);
    if let Some(id) = request_id {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    Ok(response)
}

/// PutRecord: one entry, answered `ProvisionedThroughputExceededException` if its shard's
/// budget is used up.
pub(crate) async fn put_record(shared: &Shared, parts: Parts, body: Bytes) -> Result<Response<ProxyBody>, LimitsError> {
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    let target = request.as_ref().and_then(|r| Some((stream_name_of(r)?.to_string(), hash_key_of_entry(r)?)));
    let Some((stream, hash_key)) = target else {
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    };
    let bytes = request.as_ref().map_or(0, entry_bytes);
    match shared.shard_maps.shards_for(&shared.upstream, &parts.headers, &stream, &[hash_key]).await {
        Ok(shards) => {
            if let Some(Some(shard_id)) = shards.first() {
                let shard = ShardKey::new(&stream, shard_id);
                if !shared.budgets().admit_put_entry(&shard, bytes, Instant::now()) {
                    tracing::debug!(shard = %shard.label(), "PutRecord throttled");
                    return Ok(throttled(&shard));
                }
            }
        }
        Err(e) => tracing::debug!(%stream, error = %e, "PutRecord forwarded without limits: cannot list the shards"),
    }
    Ok(streamed(shared.upstream.forward(&parts, body).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sequence: &str) -> Value {
        json!({ "SequenceNumber": sequence, "ShardId": "shardId-000000000000" })
    }

    fn throttled_on(shard: &str) -> Fate {
        Fate::Throttled(ShardKey::new("orders", shard))
    }

    #[test]
    fn a_merged_answer_keeps_the_original_order_of_entries() {
        let fates = [
            Fate::Admitted,
            throttled_on("shardId-000000000001"),
            Fate::Admitted,
            throttled_on("shardId-000000000001"),
        ];
        let upstream = json!({ "FailedRecordCount": 0, "Records": [ok("1"), ok("2")] });
        let merged = merge_answer(&fates, Some(&upstream)).expect("merged");
        let records = merged["Records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0], ok("1"));
        assert_eq!(records[2], ok("2"));
        for refused in [&records[1], &records[3]] {
            assert_eq!(refused["ErrorCode"], THROTTLED);
            assert_eq!(
                refused["ErrorMessage"],
                "Rate exceeded for shard shardId-000000000001 in stream orders under account 000000000000."
            );
        }
        assert_eq!(merged["FailedRecordCount"], 2);
    }

    #[test]
    fn the_failed_record_count_adds_upstream_failures_to_the_throttled_entries() {
        let fates = [Fate::Admitted, Fate::Admitted, throttled_on("shardId-000000000000")];
        let upstream_failure = json!({ "ErrorCode": "InternalFailure", "ErrorMessage": "boom" });
        let upstream =
            json!({ "FailedRecordCount": 1, "Records": [ok("1"), upstream_failure], "EncryptionType": "NONE" });
        let merged = merge_answer(&fates, Some(&upstream)).expect("merged");
        assert_eq!(merged["FailedRecordCount"], 2);
        assert_eq!(merged["Records"][1]["ErrorCode"], "InternalFailure");
        assert_eq!(merged["EncryptionType"], "NONE");
    }

    #[test]
    fn when_every_entry_is_throttled_nothing_comes_from_upstream() {
        let fates = [throttled_on("shardId-000000000000"), throttled_on("shardId-000000000001")];
        let merged = merge_answer(&fates, None).expect("merged");
        assert_eq!(merged["FailedRecordCount"], 2);
        assert_eq!(merged["Records"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn an_upstream_answer_shorter_than_the_request_is_an_error() {
        let fates = [Fate::Admitted, Fate::Admitted];
        let upstream = json!({ "FailedRecordCount": 0, "Records": [ok("1")] });
        assert!(merge_answer(&fates, Some(&upstream)).is_err());
    }

    #[test]
    fn an_entry_counts_its_data_and_its_partition_key() {
        // "aGVsbG8=" is "hello".
        assert_eq!(entry_bytes(&json!({ "Data": "aGVsbG8=", "PartitionKey": "key-1" })), 10);
        assert_eq!(entry_bytes(&json!({ "Data": "", "PartitionKey": "é" })), 2);
    }
}
