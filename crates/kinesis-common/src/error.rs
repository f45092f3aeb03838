//! The crate's error type.

use std::time::Duration;

use crate::AwsErrorKind;

/// Errors of configuring a Kinesis connection, building a client, and calling Kinesis through
/// this crate's helpers.
///
/// Messages name the offending key and value. Secret values (the secret access key) are never
/// put into a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A property has a value that cannot be used.
    #[error("invalid value '{value}' for property '{key}': expected {expected}")]
    InvalidProperty {
        /// The property key, e.g. `aws.credentials.provider`.
        key: String,
        /// The value given (`<redacted>` for secrets).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A property needed by another property's value is absent.
    #[error("property '{key}' is required {reason}")]
    MissingProperty {
        /// The missing key.
        key: String,
        /// Why it is needed, e.g. "when aws.credentials.provider is BASIC".
        reason: String,
    },
    /// An `aws.*` property this crate does not know (a typo, or an unsupported Flink option).
    #[error("unknown property '{key}'; known connection properties: {known}")]
    UnknownProperty {
        /// The unknown key.
        key: String,
        /// The keys that are accepted.
        known: String,
    },
    /// A builder setting is out of range or malformed.
    #[error("invalid setting {setting} = '{value}': {reason}")]
    InvalidSetting {
        /// The builder method, e.g. `endpoint`.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No region was configured and none could be found in the environment.
    #[error(
        "no AWS region configured: set aws.region (or KinesisConnection::builder().region), \
         the AWS_REGION variable, a region in the AWS profile, or an endpoint override"
    )]
    NoRegion,
    /// A Kinesis API call failed.
    #[error("Kinesis {operation}{} failed ({class}): {message}", stream_suffix(stream))]
    Api {
        /// The API operation, e.g. `PutRecords`.
        operation: &'static str,
        /// The stream concerned, if any.
        stream: Option<String>,
        /// How the failure should be handled.
        class: AwsErrorKind,
        /// The AWS error code, e.g. `ResourceNotFoundException`, when the service sent one.
        code: Option<String>,
        /// The full error chain as text.
        message: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A wait (for example for a stream to become ACTIVE) gave up.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// A test needs an emulator whose endpoint variable is not set.
    #[error(
        "{var} is not set: start the emulators with `scripts/emulators.sh start all` and export \
         their endpoints with `eval \"$(scripts/emulators.sh env)\"`"
    )]
    EmulatorNotConfigured {
        /// The environment variable, e.g. `RILL_KINESALITE_ENDPOINT`.
        var: &'static str,
    },
}

fn stream_suffix(stream: &Option<String>) -> String {
    stream.as_ref().map_or_else(String::new, |s| format!(" on stream '{s}'"))
}

impl Error {
    /// The class of an [`Error::Api`] failure; configuration errors are [`AwsErrorKind::Fatal`].
    pub fn class(&self) -> AwsErrorKind {
        match self {
            Error::Api { class, .. } => *class,
            Error::Timeout { .. } => AwsErrorKind::Transient,
            _ => AwsErrorKind::Fatal,
        }
    }

    /// The AWS error code of an [`Error::Api`] failure, if the service sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
