//! The crate's error type.

use std::time::Duration;

/// Errors of configuring and running a [`crate::KinesisSource`].
///
/// Configuration errors name the key (or builder setting) and the value; runtime errors name the
/// stream and shard, and for records the sequence number.
#[derive(Debug, thiserror::Error)]
pub enum KinesisSourceError {
    /// A consumer property has a value that cannot be used.
    #[error("invalid value '{value}' for property '{key}': expected {expected}")]
    InvalidProperty {
        /// The property key, e.g. `flink.shard.getrecords.maxrecordcount`.
        key: String,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A property this source does not know (a typo, or an unsupported Flink option).
    #[error("unknown property '{key}' (value '{value}'); known consumer properties: {known}")]
    UnknownProperty {
        /// The unknown key.
        key: String,
        /// Its value.
        value: String,
        /// The keys that are accepted.
        known: String,
    },
    /// A property needed by another property's value is absent.
    #[error("property '{key}' is required {reason}")]
    MissingProperty {
        /// The missing key.
        key: String,
        /// Why it is needed.
        reason: String,
    },
    /// A builder setting is out of range or missing.
    #[error("invalid setting {setting} = '{value}': {reason}")]
    InvalidSetting {
        /// The builder method, e.g. `get_records_max`.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection settings (`aws.*`) are wrong, or the client could not be built.
    #[error(transparent)]
    Connection(Box<rill_kinesis_common::Error>),
    /// The stream does not exist.
    #[error("Kinesis stream '{stream}' does not exist ({connection})")]
    StreamNotFound {
        /// The stream name.
        stream: String,
        /// Region and endpoint, for the reader of the message.
        connection: String,
    },
    /// The stream exists but cannot be read: it is being deleted, or stayed CREATING too long.
    #[error("Kinesis stream '{stream}' is {status}, not ACTIVE{}", waited_suffix(waited))]
    StreamNotActive {
        /// The stream name.
        stream: String,
        /// Its status, e.g. `DELETING`.
        status: String,
        /// How long the source waited for ACTIVE, if it waited.
        waited: Option<Duration>,
    },
    /// A Kinesis call kept failing with retryable errors until its retries ran out.
    #[error("Kinesis {operation} for {target} failed after {attempts} attempt(s): {last}")]
    RetriesExhausted {
        /// The API operation, e.g. `GetRecords`.
        operation: &'static str,
        /// `stream` or `stream/shard`.
        target: String,
        /// Calls made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<rill_kinesis_common::Error>,
    },
    /// A Kinesis call was throttled for longer than the throttle timeout allows.
    #[error(
        "Kinesis {operation} for {target} was throttled for {waited:?} without a success (the throttle \
         timeout, rill.throttle.retry.timeout.millis, ran out): {last}"
    )]
    ThrottledTooLong {
        /// The API operation, e.g. `GetRecords`.
        operation: &'static str,
        /// `stream` or `stream/shard`.
        target: String,
        /// How long it was retried.
        waited: std::time::Duration,
        /// The last failure.
        #[source]
        last: Box<rill_kinesis_common::Error>,
    },
    /// A Kinesis call failed with an error that retrying cannot fix.
    #[error("Kinesis {operation} for {target} failed: {source}")]
    Api {
        /// The API operation.
        operation: &'static str,
        /// `stream` or `stream/shard`.
        target: String,
        /// The failure.
        #[source]
        source: Box<rill_kinesis_common::Error>,
    },
    /// A record could not be deserialized and the policy is to fail.
    #[error("record {stream}/{shard} sequence number {sequence_number}{} could not be deserialized: {reason}", sub_suffix(*sub_sequence_number))]
    Deserialize {
        /// The stream.
        stream: String,
        /// The shard id.
        shard: String,
        /// The record's sequence number.
        sequence_number: String,
        /// The KPL sub-sequence number, for a de-aggregated record.
        sub_sequence_number: Option<u64>,
        /// What the deserializer reported.
        reason: String,
    },
    /// A checkpoint entry of this source could not be read or written.
    #[error("Kinesis source checkpoint state: {0}")]
    State(String),
    /// The tokio runtime that runs the shard readers could not be started.
    #[error("could not start the Kinesis reader runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The shard readers stopped unexpectedly (their runtime was shut down).
    #[error("the Kinesis shard readers of this subtask stopped unexpectedly")]
    ReadersGone,
}

impl KinesisSourceError {
    /// Whether restarting the job can cure this error: configuration errors, a missing stream, a
    /// malformed record under the fail policy and unreadable checkpoint state are fatal.
    pub fn class(&self) -> rill_runtime::ErrorClass {
        use rill_runtime::ErrorClass::{Fatal, Retryable};
        match self {
            KinesisSourceError::InvalidProperty { .. }
            | KinesisSourceError::UnknownProperty { .. }
            | KinesisSourceError::MissingProperty { .. }
            | KinesisSourceError::InvalidSetting { .. }
            | KinesisSourceError::Connection(_)
            | KinesisSourceError::StreamNotFound { .. }
            | KinesisSourceError::Deserialize { .. }
            | KinesisSourceError::State(_) => Fatal,
            _ => Retryable,
        }
    }

    /// As the runtime's operator error, marked fatal when a restart cannot cure it.
    pub(crate) fn into_operator_error(self) -> rill_runtime::BoxError {
        let class = self.class();
        rill_runtime::classified(self, class)
    }
}

impl From<rill_kinesis_common::Error> for KinesisSourceError {
    fn from(error: rill_kinesis_common::Error) -> Self {
        KinesisSourceError::Connection(Box::new(error))
    }
}

fn waited_suffix(waited: &Option<Duration>) -> String {
    waited.map_or_else(String::new, |w| format!(" after waiting {} ms", w.as_millis()))
}

fn sub_suffix(sub: Option<u64>) -> String {
    sub.map_or_else(String::new, |s| format!(" (sub-sequence {s})"))
}

/// Result alias for this crate.
pub type Result<T, E = KinesisSourceError> = std::result::Result<T, E>;
