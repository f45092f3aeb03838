//! One PutRecords call and what came of it.

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use rill_kinesis_common::{classify_sdk_error, AwsErrorKind};

use crate::batch::Batch;

/// How a PutRecords call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Kinesis answered; per entry `None` (stored) or `Some((code, message))` (failed).
    Answered(Vec<Option<(String, String)>>),
    /// The whole call failed.
    Failed {
        /// How to handle it.
        class: AwsErrorKind,
        /// The AWS error code or the kind of failure.
        code: String,
        /// The full message.
        message: String,
    },
}

/// A finished call: the batch comes back so failed entries can be retried.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) batch: Batch,
    /// The rate-control epoch the call was sent in.
    pub(crate) epoch: u64,
    pub(crate) outcome: Outcome,
}

/// Sends `batch` with one PutRecords call.
pub(crate) async fn put_records(client: Client, batch: Batch, epoch: u64) -> Completion {
    let mut records = Vec::with_capacity(batch.entries.len());
    for entry in &batch.entries {
        let built = PutRecordsRequestEntry::builder()
            .data(Blob::new(entry.data.clone()))
            .partition_key(entry.partition_key.clone())
            .set_explicit_hash_key(entry.explicit_hash_key.clone())
            .build();
        match built {
            Ok(record) => records.push(record),
            Err(e) => {
                let outcome = Outcome::Failed {
                    class: AwsErrorKind::Fatal,
                    code: "InvalidRecord".into(),
                    message: e.to_string(),
                };
                return Completion { batch, epoch, outcome };
            }
        }
    }
    let result = client.put_records().stream_name(&*batch.stream).set_records(Some(records)).send().await;
    let outcome = match result {
        Ok(out) if out.records().len() == batch.entries.len() => Outcome::Answered(
            out.records()
                .iter()
                .map(|r| r.error_code().map(|c| (c.to_string(), r.error_message().unwrap_or_default().to_string())))
                .collect(),
        ),
        Ok(out) => Outcome::Failed {
            class: AwsErrorKind::Transient,
            code: "MismatchedResponse".into(),
            message: format!("PutRecords answered {} results for {} records", out.records().len(), batch.entries.len()),
        },
        Err(err) => Outcome::Failed {
            class: classify_sdk_error(&err),
            code: err.code().map_or_else(|| failure_kind(&err).to_string(), str::to_string),
            message: DisplayErrorContext(&err).to_string(),
        },
    };
    Completion { batch, epoch, outcome }
}

fn failure_kind<E, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        SdkError::ServiceError(_) => "ServiceError",
        _ => "Unknown",
    }
}
