//! [`KinesisConnection`]: where Kinesis is (region, endpoint) and who calls it (credentials).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_kinesis::config::Builder as KinesisConfigBuilder;

use crate::{Error, Result};

/// A secret string: its `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where credentials come from (Flink's `aws.credentials.provider`).
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    /// The aws-config default chain: environment, profile, web identity, ECS, instance metadata
    /// (Flink's `AUTO`, the default).
    DefaultChain,
    /// Only `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (Flink's `ENV_VAR`).
    Environment,
    /// A named profile, optionally from a given credentials file (Flink's `PROFILE`).
    Profile {
        /// Profile name; `None` means `default` (or `AWS_PROFILE`).
        name: Option<String>,
        /// Credentials file; `None` means the usual `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`).
        path: Option<PathBuf>,
    },
    /// Fixed keys (Flink's `BASIC`).
    Static {
        /// The access key id (shown abbreviated in `Debug`).
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
        /// An optional session token.
        session_token: Option<Secret>,
    },
}

impl fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsSource::DefaultChain => f.write_str("DefaultChain"),
            CredentialsSource::Environment => f.write_str("Environment"),
            CredentialsSource::Profile { name, path } => {
                f.debug_struct("Profile").field("name", name).field("path", path).finish()
            }
            CredentialsSource::Static { access_key_id, session_token, .. } => f
                .debug_struct("Static")
                .field("access_key_id", &abbreviate(access_key_id))
                .field("secret_access_key", &"<redacted>")
                .field("session_token", &session_token.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// The first four characters of an access key id, then `...`: enough to tell keys apart in logs.
fn abbreviate(access_key_id: &str) -> String {
    let head: String = access_key_id.chars().take(4).collect();
    format!("{head}...")
}

/// A customization applied to the Kinesis client configuration right before the client is built.
///
/// It receives the loaded shared configuration (to reach, for example, its default HTTP client)
/// and the Kinesis config builder, and returns the builder. Used to install SDK interceptors or a
/// wrapping HTTP client (fault injection in tests), or any other SDK setting.
pub type ClientHook = Arc<dyn Fn(&SdkConfig, KinesisConfigBuilder) -> KinesisConfigBuilder + Send + Sync>;

/// How to reach Kinesis: region, endpoint override, credentials and SDK call settings.
///
/// Cheap to clone; `Debug` never shows secrets. Build one with [`KinesisConnection::builder`] or
/// from Flink-style properties with [`KinesisConnection::from_properties`], then make a client
/// with [`KinesisConnection::client`].
///
/// The standard variables are honoured as aws-config does: `AWS_REGION`, `AWS_PROFILE`,
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_KINESIS` (an explicit endpoint here wins over them).
///
/// ```
/// use rill_kinesis_common::KinesisConnection;
/// let conn = KinesisConnection::builder()
///     .region("us-east-1")
///     .endpoint("http://127.0.0.1:4567")
///     .static_credentials("AKIDEXAMPLE", "very-secret")
///     .build()
///     .unwrap();
/// let shown = format!("{conn:?}");
/// assert!(shown.contains("AKID...") && !shown.contains("very-secret"));
/// ```
#[derive(Clone)]
pub struct KinesisConnection {
    pub(crate) region: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) credentials: CredentialsSource,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) operation_timeout: Option<Duration>,
    pub(crate) hooks: Vec<ClientHook>,
}

impl fmt::Debug for KinesisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisConnection")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl KinesisConnection {
    /// A builder; every setting is optional.
    pub fn builder() -> KinesisConnectionBuilder {
        KinesisConnectionBuilder::default()
    }

    /// The configured region, if any (otherwise the environment's is used).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The configured endpoint override, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Where the credentials come from.
    pub fn credentials(&self) -> &CredentialsSource {
        &self.credentials
    }

    /// A short description for log lines and error messages, e.g.
    /// `region us-east-1, endpoint http://127.0.0.1:4567`.
    pub fn describe(&self) -> String {
        let region = self.region.as_deref().unwrap_or("from environment");
        let endpoint = self.endpoint.as_deref().unwrap_or("default");
        format!("region {region}, endpoint {endpoint}")
    }

    /// A copy with the SDK's own retries limited to `attempts` calls in all (1 disables SDK
    /// retries, for callers that retry themselves).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// A copy with a per-attempt timeout (a hung call fails with a transient timeout error).
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// A copy with one more client hook (see [`ClientHook`]).
    pub fn with_hook(mut self, hook: ClientHook) -> Self {
        self.hooks.push(hook);
        self
    }
}

/// Builds a [`KinesisConnection`].
#[derive(Default)]
pub struct KinesisConnectionBuilder {
    region: Option<String>,
    endpoint: Option<String>,
    credentials: Option<CredentialsSource>,
    max_attempts: Option<u32>,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    hooks: Vec<ClientHook>,
}

impl fmt::Debug for KinesisConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisConnectionBuilder")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl KinesisConnectionBuilder {
    /// The AWS region, e.g. `us-east-1`. Without it the environment's region is used, and
    /// `us-east-1` when there is none but an endpoint override is set (emulators).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// An endpoint override such as `http://127.0.0.1:4567`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Where credentials come from (default: [`CredentialsSource::DefaultChain`]).
    pub fn credentials(mut self, credentials: CredentialsSource) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Fixed access keys.
    pub fn static_credentials(self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials(CredentialsSource::Static {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: None,
        })
    }

    /// For local emulators, which check no credentials: when the endpoint (set before this call)
    /// is on this machine and `AWS_ACCESS_KEY_ID` is not set, uses fixed dummy static keys.
    /// Otherwise changes nothing.
    pub fn dummy_credentials_for_local_endpoint(self) -> Self {
        let local = self
            .endpoint
            .as_deref()
            .is_some_and(|e| ["://127.0.0.1", "://localhost", "://[::1]"].iter().any(|h| e.contains(h)));
        if local && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            self.static_credentials("rill-local", "rill-local-secret")
        } else {
            self
        }
    }

    /// A named profile from the usual files.
    pub fn profile(self, name: impl Into<String>) -> Self {
        self.credentials(CredentialsSource::Profile { name: Some(name.into()), path: None })
    }

    /// Credentials from the `AWS_*` environment variables only.
    pub fn env_credentials(self) -> Self {
        self.credentials(CredentialsSource::Environment)
    }

    /// Calls in all per operation by the SDK's own retry (default: the SDK's, 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Timeout of one attempt of a call.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Timeout of a call including the SDK's retries.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// Adds a [`ClientHook`], applied after the settings above, in the order added.
    pub fn hook(mut self, hook: ClientHook) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Installs an SDK interceptor (`aws_sdk_kinesis::config::Intercept`) on every client.
    pub fn interceptor<I>(self, interceptor: I) -> Self
    where
        I: aws_sdk_kinesis::config::Intercept + Clone + 'static,
    {
        self.hook(Arc::new(move |_sdk, builder| builder.interceptor(interceptor.clone())))
    }

    /// Replaces the HTTP client by `wrap(inner)`, e.g. a fault-injecting wrapper. `inner` is the
    /// HTTP client of the shared configuration if one was set, else the SDK's default HTTPS
    /// client (hyper 1 with rustls on aws-lc).
    pub fn wrap_http_client<F>(self, wrap: F) -> Self
    where
        F: Fn(aws_sdk_kinesis::config::SharedHttpClient) -> aws_sdk_kinesis::config::SharedHttpClient
            + Send
            + Sync
            + 'static,
    {
        self.hook(Arc::new(move |sdk, builder| {
            let inner = sdk.http_client().unwrap_or_else(default_http_client);
            builder.http_client(wrap(inner))
        }))
    }

    /// Checks the settings and builds the connection.
    pub fn build(self) -> Result<KinesisConnection> {
        if let Some(region) = &self.region {
            validate_region(region).map_err(|reason| Error::InvalidSetting {
                setting: "region",
                value: region.clone(),
                reason,
            })?;
        }
        if let Some(endpoint) = &self.endpoint {
            validate_endpoint(endpoint).map_err(|reason| Error::InvalidSetting {
                setting: "endpoint",
                value: endpoint.clone(),
                reason,
            })?;
        }
        if let Some(CredentialsSource::Static { access_key_id, secret_access_key, .. }) = &self.credentials {
            if access_key_id.trim().is_empty() {
                return Err(Error::InvalidSetting {
                    setting: "static_credentials",
                    value: String::new(),
                    reason: "the access key id is empty".into(),
                });
            }
            if secret_access_key.expose().is_empty() {
                return Err(Error::InvalidSetting {
                    setting: "static_credentials",
                    value: "<redacted>".into(),
                    reason: "the secret access key is empty".into(),
                });
            }
        }
        if self.max_attempts == Some(0) {
            return Err(Error::InvalidSetting {
                setting: "max_attempts",
                value: "0".into(),
                reason: "at least one attempt is needed".into(),
            });
        }
        Ok(KinesisConnection {
            region: self.region,
            endpoint: self.endpoint,
            credentials: self.credentials.unwrap_or(CredentialsSource::DefaultChain),
            max_attempts: self.max_attempts,
            attempt_timeout: self.attempt_timeout,
            operation_timeout: self.operation_timeout,
            hooks: self.hooks,
        })
    }
}

/// The SDK's default HTTPS client, built explicitly so it can be wrapped.
fn default_http_client() -> aws_sdk_kinesis::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build_https()
}

/// A region is lowercase letters, digits and dashes, e.g. `eu-west-1`.
pub(crate) fn validate_region(region: &str) -> std::result::Result<(), String> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("a region name such as us-east-1 (lowercase letters, digits and dashes)".into())
    }
}

/// An endpoint is an absolute `http://` or `https://` URL with a host.
pub(crate) fn validate_endpoint(endpoint: &str) -> std::result::Result<(), String> {
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace) => Ok(()),
        _ => Err("an absolute http:// or https:// URL such as http://127.0.0.1:4567".into()),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn dummy_local_credentials_leave_a_remote_endpoint_on_the_default_chain() {
        let c = KinesisConnection::builder()
            .region("eu-west-1")
            .endpoint("https://kinesis.eu-west-1.amazonaws.com")
            .dummy_credentials_for_local_endpoint()
            .build()
            .unwrap();
        assert!(matches!(c.credentials(), CredentialsSource::DefaultChain), "{:?}", c.credentials());
    }

    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret_or_session_token() {
        let conn = KinesisConnection::builder()
            .credentials(CredentialsSource::Static {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG"),
                session_token: Some(Secret::new("session-token-value")),
            })
            .build()
            .unwrap();
        let shown = format!("{conn:?} {:?}", conn.credentials());
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("session-token-value"), "{shown}");
        assert!(!shown.contains("AKIAIOSFODNN7EXAMPLE"), "{shown}");
        assert!(shown.contains("AKIA..."), "{shown}");
    }

    #[test]
    fn a_malformed_endpoint_is_rejected_with_its_value() {
        let err = KinesisConnection::builder().endpoint("127.0.0.1:4567").build().unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:4567"), "{err}");
    }

    #[test]
    fn a_malformed_region_is_rejected_with_its_value() {
        let err = KinesisConnection::builder().region("US East").build().unwrap_err();
        assert!(err.to_string().contains("US East"), "{err}");
    }
}
