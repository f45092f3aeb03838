//! How a failed Kinesis call should be handled: back off and retry, renew an iterator, or fail.

use std::fmt;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::Error;

/// What a caller should do about a failed call (or a failed `PutRecords` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
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

impl ErrorClass {
    /// Whether retrying (after a back-off) may succeed.
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorClass::Fatal)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::ExpiredIterator => "expired iterator",
            ErrorClass::Fatal => "fatal",
        })
    }
}

/// Classifies an AWS error code, as sent in an error response or in a `PutRecords` entry.
///
/// Unknown codes are [`ErrorClass::Fatal`] when they look like a client fault (`...Denied...`,
/// `...NotFound...`, `...Invalid...`, `Validation...`) and [`ErrorClass::Transient`] otherwise.
///
/// ```
/// use rill_kinesis_common::{classify_code, ErrorClass};
/// assert_eq!(classify_code("ProvisionedThroughputExceededException"), ErrorClass::Throttled);
/// assert_eq!(classify_code("InternalFailure"), ErrorClass::Transient);
/// assert_eq!(classify_code("ResourceNotFoundException"), ErrorClass::Fatal);
/// assert_eq!(classify_code("ExpiredIteratorException"), ErrorClass::ExpiredIterator);
/// ```
pub fn classify_code(code: &str) -> ErrorClass {
    match code {
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "KMSThrottlingException"
        | "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => ErrorClass::Throttled,
        "ExpiredIteratorException" => ErrorClass::ExpiredIterator,
        "InternalFailure"
        | "InternalFailureException"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorClass::Transient,
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
        | "ExpiredNextTokenException" => ErrorClass::Fatal,
        other if ["Denied", "NotFound", "Invalid", "Validation", "Unrecognized"].iter().any(|p| other.contains(p)) => {
            ErrorClass::Fatal
        }
        _ => ErrorClass::Transient,
    }
}

/// Classifies an SDK error: by its AWS error code when the service sent one, otherwise by HTTP
/// status (429 throttled, 5xx transient, other 4xx fatal) or by the kind of failure (timeouts,
/// connection and response errors are transient; a request that could not be built is fatal).
pub fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> ErrorClass
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
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorClass::Transient,
        SdkError::DispatchFailure(failure) if failure.is_user() => ErrorClass::Fatal,
        SdkError::DispatchFailure(_) => ErrorClass::Transient,
        SdkError::ConstructionFailure(_) => ErrorClass::Fatal,
        _ => ErrorClass::Transient,
    }
}

fn classify_status(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::Throttled,
        500..=599 => ErrorClass::Transient,
        400..=499 => ErrorClass::Fatal,
        _ => ErrorClass::Transient,
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
        assert_eq!(classify_code("SomethingNotFoundException"), ErrorClass::Fatal);
        assert_eq!(classify_code("KMSSomethingInvalid"), ErrorClass::Fatal);
        assert_eq!(classify_code("BrandNewHiccup"), ErrorClass::Transient);
    }

    #[test]
    fn statuses_without_code_are_classified_by_range() {
        assert_eq!(classify_status(429), ErrorClass::Throttled);
        assert_eq!(classify_status(503), ErrorClass::Transient);
        assert_eq!(classify_status(403), ErrorClass::Fatal);
    }
}
