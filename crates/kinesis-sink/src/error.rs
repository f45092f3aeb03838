//! The sink's error type.

use rill_runtime::BoxError;

/// Errors of configuring and running a [`crate::KinesisSink`].
///
/// Record-level errors ([`SinkError::RecordTooLarge`], [`SinkError::InvalidPartitionKey`],
/// [`SinkError::NoTargetStream`], [`SinkError::Serialize`], [`SinkError::RetriesExhausted`]) go
/// through the [`crate::ErrorPolicy`]; every other error fails the task at once.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Connection settings, client construction or an AWS call outside the write path failed.
    #[error(transparent)]
    Connection(#[from] rill_kinesis_common::Error),
    /// A builder setting is out of range.
    #[error("invalid sink setting {setting} = {value}: {reason}")]
    InvalidSetting {
        /// The builder method.
        setting: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A `sink.*` (or other non-connection) property has a bad value.
    #[error("invalid value '{value}' for property '{key}': expected {expected}")]
    InvalidProperty {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A property the sink does not know.
    #[error("unknown property '{key}'; known sink properties: {known}")]
    UnknownProperty {
        /// The key.
        key: String,
        /// The keys the sink accepts besides the `aws.*` connection keys.
        known: String,
    },
    /// Checking the target stream at start failed (Kinesis unreachable, refused, ...).
    #[error("checking Kinesis stream '{stream}' at {connection} failed: {source}")]
    StreamCheck {
        /// The stream.
        stream: String,
        /// Where Kinesis was called (region, endpoint).
        connection: String,
        /// The last failure of the check.
        #[source]
        source: Box<rill_kinesis_common::Error>,
    },
    /// The target stream does not exist.
    #[error("Kinesis stream '{stream}' does not exist ({connection}); create it before starting the job")]
    StreamNotFound {
        /// The stream.
        stream: String,
        /// Region and endpoint used.
        connection: String,
    },
    /// The target stream exists but cannot take writes (it is being deleted, or never became ACTIVE).
    #[error("Kinesis stream '{stream}' cannot be written to: its status is {status}")]
    StreamNotWritable {
        /// The stream.
        stream: String,
        /// Its status.
        status: String,
    },
    /// A record's data plus partition key exceeds the 1 MiB Kinesis limit. It is never sent.
    #[error(
        "record #{record} of subtask {subtask} for stream '{stream}' (partition key '{partition_key}') is {size} bytes \
         (data + partition key), over the Kinesis limit of {limit} bytes"
    )]
    RecordTooLarge {
        /// The record's position among the records this subtask received (0-based, this run).
        record: u64,
        /// The subtask.
        subtask: usize,
        /// The target stream.
        stream: String,
        /// The partition key (truncated to 64 characters).
        partition_key: String,
        /// Data plus partition key, in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The partitioner produced a partition key Kinesis rejects (empty or over 256 characters).
    #[error("record #{record} of subtask {subtask}: invalid partition key '{partition_key}': {reason}")]
    InvalidPartitionKey {
        /// The record's position among the records this subtask received.
        record: u64,
        /// The subtask.
        subtask: usize,
        /// The key (truncated to 64 characters).
        partition_key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The stream selector returned no stream and no default stream is set.
    #[error("record #{record} of subtask {subtask} has no target stream and the sink has no default stream")]
    NoTargetStream {
        /// The record's position among the records this subtask received.
        record: u64,
        /// The subtask.
        subtask: usize,
    },
    /// The serializer failed.
    #[error("record #{record} of subtask {subtask} could not be serialized: {source}")]
    Serialize {
        /// The record's position among the records this subtask received.
        record: u64,
        /// The subtask.
        subtask: usize,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
    /// Kinesis rejected a write in a way retrying cannot fix (missing stream, access denied,
    /// validation, KMS key problems, bad credentials).
    #[error("Kinesis {operation} to stream '{stream}' failed fatally ({code}): {message}")]
    Fatal {
        /// The operation.
        operation: &'static str,
        /// The stream.
        stream: String,
        /// The AWS error code, or a description of the failure kind.
        code: String,
        /// The full error message.
        message: String,
    },
    /// Records were still failing after the configured number of retries.
    #[error(
        "{records} record(s) for stream '{stream}' still failed after {attempts} attempts; last error {code}: {message}"
    )]
    RetriesExhausted {
        /// The stream.
        stream: String,
        /// How many records.
        records: usize,
        /// Attempts made per record.
        attempts: u32,
        /// The last error code.
        code: String,
        /// The last error message.
        message: String,
    },
    /// The sink's async runtime could not be started.
    #[error("could not start the sink's async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The background writer stopped without reporting an error (a bug, or a panic in it).
    #[error("the sink's background writer stopped unexpectedly")]
    WriterStopped,
}

impl SinkError {
    /// Whether restarting the job can cure this error: configuration errors, a missing or
    /// unwritable stream, fatal Kinesis answers and bad records are fatal; exhausted retries, the
    /// runtime and the writer are retryable.
    pub fn class(&self) -> rill_runtime::ErrorClass {
        use rill_runtime::ErrorClass::{Fatal, Retryable};
        match self {
            SinkError::RetriesExhausted { .. } | SinkError::Runtime(_) | SinkError::WriterStopped => Retryable,
            _ => Fatal,
        }
    }

    /// As the runtime's operator error, marked fatal when a restart cannot cure it.
    pub(crate) fn into_operator_error(self) -> rill_runtime::BoxError {
        let class = self.class();
        rill_runtime::classified(self, class)
    }

    /// Whether this is a record-level error that the [`crate::ErrorPolicy`] decides about.
    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            SinkError::RecordTooLarge { .. }
                | SinkError::InvalidPartitionKey { .. }
                | SinkError::NoTargetStream { .. }
                | SinkError::Serialize { .. }
                | SinkError::RetriesExhausted { .. }
        )
    }
}

/// Shortens a value for an error message to at most `max` characters.
pub(crate) fn truncate(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        value.to_string()
    } else {
        let head: String = value.chars().take(max).collect();
        format!("{head}...")
    }
}
