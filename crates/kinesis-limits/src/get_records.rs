//! GetRecords and GetShardIterator: calls and bytes per shard, and iterator tracking.

use std::time::Instant;

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::Response;
use serde_json::Value;

use crate::budgets::ReadRefusal;
use crate::iterators::ShardKey;
use crate::proxy::Shared;
use crate::request::{decoded_len, stream_name_of};
use crate::response::{buffered, streamed, throttled, ProxyBody};
use crate::LimitsError;

/// What a GetRecords answer returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadAnswer<'a> {
    /// Decoded `Data` bytes of the records.
    pub(crate) bytes: u64,
    /// Records.
    pub(crate) records: u64,
    /// `NextShardIterator`, absent once a closed shard is read to its end.
    pub(crate) next_iterator: Option<&'a str>,
}

impl<'a> ReadAnswer<'a> {
    /// Reads a GetRecords answer.
    pub(crate) fn of(answer: &'a Value) -> Self {
        let records = answer.get("Records").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        ReadAnswer {
            bytes: records.iter().filter_map(|r| r.get("Data").and_then(Value::as_str)).map(decoded_len).sum(),
            records: records.len() as u64,
            next_iterator: answer.get("NextShardIterator").and_then(Value::as_str),
        }
    }
}

/// GetRecords: throttled while the shard's calls or bytes are used up; an admitted answer's
/// bytes are charged to the shard and its `NextShardIterator` remembered.
pub(crate) async fn get_records(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ProxyBody>, LimitsError> {
    let now = Instant::now();
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    let iterator = request.as_ref().and_then(|r| r.get("ShardIterator")).and_then(Value::as_str);
    let shard = iterator.and_then(|it| shared.budgets().shard_of_iterator(it, now));
    let Some(shard) = shard else {
        shared.budgets().note_unknown_iterator();
        tracing::debug!("GetRecords with an iterator the proxy did not hand out: forwarded without limits");
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    };
    let admitted = shared.budgets().admit_get_records(&shard, now);
    if let Err(refusal) = admitted {
        match refusal {
            ReadRefusal::Calls => tracing::debug!(shard = %shard.label(), "GetRecords throttled: calls per second"),
            ReadRefusal::Bytes(wait) => {
                tracing::debug!(shard = %shard.label(), ?wait, "GetRecords throttled: bytes per second")
            }
        }
        return Ok(throttled(&shard));
    }
    let (answer_parts, answer_body) = shared.upstream.forward_buffered(&parts, body).await?;
    if answer_parts.status.is_success() {
        if let Ok(answer) = serde_json::from_slice::<Value>(&answer_body) {
            let read = ReadAnswer::of(&answer);
            let now = Instant::now();
            let mut budgets = shared.budgets();
            budgets.charge_read(&shard, read.bytes, read.records, now);
            if let Some(next) = read.next_iterator {
                budgets.remember_iterator(next, shard.clone(), now);
            }
        }
    }
    Ok(buffered(answer_parts, answer_body))
}

/// GetShardIterator: 5 calls per second per shard; the iterator of an admitted answer is
/// remembered as reading that shard.
pub(crate) async fn get_shard_iterator(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ProxyBody>, LimitsError> {
    let request: Option<Value> = serde_json::from_slice(&body).ok();
    let shard = request.as_ref().and_then(|r| {
        let shard_id = r.get("ShardId").and_then(Value::as_str)?;
        Some(ShardKey::new(stream_name_of(r)?, shard_id))
    });
    let Some(shard) = shard else {
        return Ok(streamed(shared.upstream.forward(&parts, body).await?));
    };
    if !shared.budgets().admit_get_shard_iterator(&shard, Instant::now()) {
        tracing::debug!(shard = %shard.label(), "GetShardIterator throttled");
        return Ok(throttled(&shard));
    }
    let (answer_parts, answer_body) = shared.upstream.forward_buffered(&parts, body).await?;
    if answer_parts.status.is_success() {
        if let Ok(answer) = serde_json::from_slice::<Value>(&answer_body) {
            if let Some(iterator) = answer.get("ShardIterator").and_then(Value::as_str) {
                shared.budgets().remember_iterator(iterator, shard, Instant::now());
            }
        }
    }
    Ok(buffered(answer_parts, answer_body))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_get_records_answer_counts_decoded_bytes_and_records() {
        let answer = json!({
            "Records": [
                { "Data": "aGVsbG8=", "PartitionKey": "k", "SequenceNumber": "1" },
                { "Data": "d29ybGQh", "PartitionKey": "k", "SequenceNumber": "2" }
            ],
            "NextShardIterator": "next",
            "MillisBehindLatest": 0
        });
        let read = ReadAnswer::of(&answer);
        assert_eq!(read, ReadAnswer { bytes: 11, records: 2, next_iterator: Some("next") });
    }

    #[test]
    fn the_end_of_a_closed_shard_has_no_next_iterator() {
        let answer = json!({ "Records": [], "MillisBehindLatest": 0 });
        let read = ReadAnswer::of(&answer);
        assert_eq!(read, ReadAnswer { bytes: 0, records: 0, next_iterator: None });
    }
}
