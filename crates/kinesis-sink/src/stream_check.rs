//! Checking at start that the target stream exists and takes writes.

use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use rill_kinesis_common::backon::Retryable;
use rill_kinesis_common::{api_error, Error, FullJitter};

use crate::SinkError;

/// How long a stream in CREATING may take to become ACTIVE.
const CREATING_TIMEOUT: Duration = Duration::from_secs(60);

/// Fails with [`SinkError::StreamNotFound`] if `stream` does not exist, with
/// [`SinkError::StreamNotWritable`] if it is being deleted; waits (bounded) while it is being
/// created. Transient failures of the check are retried a few times.
pub(crate) async fn check_stream(client: &Client, stream: &str, connection: &str) -> Result<(), SinkError> {
    let started = tokio::time::Instant::now();
    loop {
        let status = describe_status(client, stream, connection).await?;
        match status {
            StreamStatus::Active | StreamStatus::Updating => return Ok(()),
            StreamStatus::Creating if started.elapsed() < CREATING_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => {
                return Err(SinkError::StreamNotWritable { stream: stream.to_string(), status: other.to_string() })
            }
        }
    }
}

async fn describe_status(client: &Client, stream: &str, connection: &str) -> Result<StreamStatus, SinkError> {
    let policy = FullJitter::new(Duration::from_millis(100), Duration::from_secs(2)).max_retries(5);
    let call = || async {
        client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| api_error("DescribeStreamSummary", Some(stream), e))
    };
    let out = call.retry(policy).when(|e: &Error| e.class().is_retryable()).await;
    match out {
        Ok(out) => Ok(out
            .stream_description_summary()
            .map(|s| s.stream_status().clone())
            .unwrap_or_else(|| StreamStatus::from("UNKNOWN"))),
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            Err(SinkError::StreamNotFound { stream: stream.to_string(), connection: connection.to_string() })
        }
        // Name where it was called: a mistyped endpoint shows only as "connection refused".
        Err(source) => {
            let (stream, connection) = (stream.to_string(), connection.to_string());
            Err(SinkError::StreamCheck { stream, connection, source: Box::new(source) })
        }
    }
}
