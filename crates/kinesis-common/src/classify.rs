//! How a failed Kinesis call should be handled: back off and retry, renew an iterator, or fail.

use std::fmt;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::Error;

/// What a caller should do about a failed call (or a failed `PutRecords` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsErrorKind {
    /// The shard or account is over its limits (`ProvisionedThroughputExceededException`,
    /// `LimitExceededException`, `KMSThrottlingException`, HTTP 429): back off, slow down, retry.
    Throttled,
    /// A failure that may pass (`InternalFailure`, HTTP 5xx, timeouts, connection errors,
    /// unparsable responses): back off and retry.
    Transient,
    /// A shard iterator expired (`ExpiredIteratorException`): get a new one and retry at once.
    ExpiredIterator,
    /// Retrying cannot help: missing stream, access denied, invalid argument, validation,
    /// bad credentials, KMS key problems, a request that could not be built.
    Fatal,
}

impl AwsErrorKind {
    /// Whether retrying (after a back-off) may succeed.
    pub fn is_retryable(self) -> bool {
        !matches!(self, AwsErrorKind::Fatal)
    }
}

impl fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Transient => "transient",
            AwsErrorKind::ExpiredIterator => "expired iterator",
            AwsErrorKind::Fatal => "fatal",
        })
    }
}

/// Classifies an AWS error code, as sent in an error response or in a `PutRecords` entry.
///
/// Unknown codes are [`AwsErrorKind::Fatal`] when they look like a client fault (`...Denied...`,
/// `...NotFound...`, `...Invalid...`, `Validation...`) and [`AwsErrorKind::Transient`] otherwise.
///
/// ```
/// use rill_kinesis_common::{classify_code, AwsErrorKind};
/// assert_eq!(classify_code("ProvisionedThroughputExceededException"), AwsErrorKind::Throttled);
/// assert_eq!(classify_code("InternalFailure"), AwsErrorKind::Transient);
/// assert_eq!(classify_code("ResourceNotFoundException"), AwsErrorKind::Fatal);
/// assert_eq!(classify_code("ExpiredIteratorException"), AwsErrorKind::ExpiredIterator);
/// ```
pub fn classify_code(code: &str) -> AwsErrorKind {
    match code {
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "KMSThrottlingException"
        | "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => AwsErrorKind::Throttled,
        "ExpiredIteratorException" => AwsErrorKind::ExpiredIterator,
        "InternalFailure"
        | "InternalFailureException"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => AwsErrorKind::Transient,
        "ResourceNotFoundException"
        | "ResourceInUseException"
        | "AccessDeniedException"
        | "InvalidArgumentException"
        | "ValidationException"
        | "SerializationException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSOptInRequired"
        | "ExpiredNextTokenException" => AwsErrorKind::Fatal,
        other if ["Denied", "NotFound", "Invalid", "Validation", "Unrecognized"].iter().any(|p| other.contains(p)) => {
            AwsErrorKind::Fatal
        }
        _ => AwsErrorKind::Transient,
    }
}

/// Classifies an SDK error: by its AWS error code when the service sent one, otherwise by HTTP
/// status (429 throttled, 5xx transient, other 4xx fatal) or by the kind of failure (timeouts,
/// connection and response errors are transient; a request that could not be built is fatal).
pub fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> AwsErrorKind
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => {
            if let Some(code) = service.err().code() {
                return classify_code(code);
            }
            let status = service.raw().status().as_u16();
            classify_status(status)
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => AwsErrorKind::Transient,
        SdkError::DispatchFailure(failure) if failure.is_user() => AwsErrorKind::Fatal,
        SdkError::DispatchFailure(_) => AwsErrorKind::Transient,
        SdkError::ConstructionFailure(_) => AwsErrorKind::Fatal,
        _ => AwsErrorKind::Transient,
    }
}

fn classify_status(status: u16) -> AwsErrorKind {
    match status {
        429 => AwsErrorKind::Throttled,
        500..=599 => AwsErrorKind::Transient,
        400..=499 => AwsErrorKind::Fatal,
        _ => AwsErrorKind::Transient,
    }
}

/// Wraps a failed SDK call into [`Error::Api`] with its class, code and full message.
pub fn api_error<E>(operation: &'static str, stream: Option<&str>, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let class = classify_sdk_error(&err);
    let code = err.code().map(str::to_string);
    let message = DisplayErrorContext(&err).to_string();
    Error::Api { operation, stream: stream.map(str::to_string), class, code, message, source: Box::new(err) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_client_fault_codes_are_fatal_and_others_transient() {
        assert_eq!(classify_code("SomethingNotFoundException"), AwsErrorKind::Fatal);
        assert_eq!(classify_code("KMSSomethingInvalid"), AwsErrorKind::Fatal);
        assert_eq!(classify_code("BrandNewHiccup"), AwsErrorKind::Transient);
    }

    #[test]
    fn statuses_without_code_are_classified_by_range() {
        assert_eq!(classify_status(429), AwsErrorKind::Throttled);
        assert_eq!(classify_status(503), AwsErrorKind::Transient);
        assert_eq!(classify_status(403), AwsErrorKind::Fatal);
    }
}
