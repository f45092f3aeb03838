//! Creating, filling, reading back and deleting test streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;

use crate::{api_error, Error, FullJitter, Result};

/// How long [`create_stream`] waits for ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// A record as stored in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The shard it is in.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
}

/// A stream name unique to this process and call: `prefix-<pid>-<time>-<counter>`.
pub fn unique_stream_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000_000);
    format!("{prefix}-{}-{millis}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Creates a stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_stream(client: &Client, name: &str, shards: i32) -> Result<()> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .map_err(|e| api_error("CreateStream", Some(name), e))?;
    wait_until_active(client, name, ACTIVE_TIMEOUT).await
}

/// Polls DescribeStreamSummary until the stream is ACTIVE.
pub async fn wait_until_active(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| api_error("DescribeStreamSummary", Some(name), e))?;
        let status = summary.stream_description_summary().map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: format!("stream '{name}' to become ACTIVE (is {status:?})"),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a stream (without waiting for it to disappear).
pub async fn delete_stream(client: &Client, name: &str) -> Result<()> {
    client.delete_stream().stream_name(name).send().await.map_err(|e| api_error("DeleteStream", Some(name), e))?;
    Ok(())
}

/// Writes `(partition key, data)` records with PutRecords, 500 per call, retrying failed
/// entries with backoff (up to 20 times).
pub async fn put_records(client: &Client, stream: &str, records: &[(String, Vec<u8>)]) -> Result<()> {
    let backoff = FullJitter::new(Duration::from_millis(50), Duration::from_secs(1));
    for chunk in records.chunks(500) {
        let mut pending: Vec<PutRecordsRequestEntry> = Vec::with_capacity(chunk.len());
        for (key, data) in chunk {
            let entry =
                PutRecordsRequestEntry::builder().partition_key(key).data(Blob::new(data.clone())).build().map_err(
                    |e| Error::InvalidSetting { setting: "put_records", value: key.clone(), reason: e.to_string() },
                )?;
            pending.push(entry);
        }
        let mut attempt = 0;
        while !pending.is_empty() {
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| api_error("PutRecords", Some(stream), e))?;
            let failed: Vec<PutRecordsRequestEntry> = pending
                .into_iter()
                .zip(out.records())
                .filter(|(_, result)| result.error_code().is_some())
                .map(|(entry, _)| entry)
                .collect();
            pending = failed;
            if !pending.is_empty() {
                attempt += 1;
                if attempt > 20 {
                    return Err(Error::Timeout {
                        what: format!("{} PutRecords entries to succeed on '{stream}'", pending.len()),
                        after: Duration::ZERO,
                    });
                }
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
        }
    }
    Ok(())
}

/// The ids of every shard of a stream, open or closed.
pub async fn list_shard_ids(client: &Client, stream: &str) -> Result<Vec<String>> {
    Ok(crate::list_all_shards(client, stream).await?.iter().map(|s| s.shard_id().to_string()).collect())
}

/// Every record of a stream, shard by shard from TRIM_HORIZON, in sequence order per shard.
/// Reads a shard until its end (closed) or an empty answer at the tip (open).
pub async fn read_all(client: &Client, stream: &str) -> Result<Vec<StoredRecord>> {
    let mut all = Vec::new();
    for shard_id in list_shard_ids(client, stream).await? {
        let out = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| api_error("GetShardIterator", Some(stream), e))?;
        let mut iterator = out.shard_iterator().map(str::to_string);
        let mut empty_answers = 0;
        while let Some(it) = iterator.take() {
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| api_error("GetRecords", Some(stream), e))?;
            for r in out.records() {
                all.push(StoredRecord {
                    shard_id: shard_id.clone(),
                    sequence_number: r.sequence_number().to_string(),
                    partition_key: r.partition_key().unwrap_or_default().to_string(),
                    data: r.data().as_ref().to_vec(),
                });
            }
            if out.records().is_empty() {
                empty_answers += 1;
                let at_tip = out.millis_behind_latest().is_none_or(|m| m == 0);
                if at_tip || empty_answers >= 5 {
                    break;
                }
            } else {
                empty_answers = 0;
            }
            iterator = out.next_shard_iterator().map(str::to_string);
        }
    }
    Ok(all)
}
