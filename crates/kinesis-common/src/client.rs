//! Building an `aws_sdk_kinesis::Client` from a [`KinesisConnection`].

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::Client;

use crate::{CredentialsSource, Error, KinesisConnection, Result};

/// The region used with an endpoint override when no region is configured anywhere: emulators
/// accept any region, and the SDK needs one to sign requests.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Connect timeout kept when other timeouts are set (the SDK's default for current behaviour).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

impl KinesisConnection {
    /// Loads the shared AWS configuration this connection describes (region, endpoint,
    /// credentials provider, retry and timeout settings), honouring the standard environment.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        match &self.credentials {
            CredentialsSource::DefaultChain => {}
            CredentialsSource::Environment => {
                loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
            }
            CredentialsSource::Profile { name, path } => {
                let mut provider = ProfileFileCredentialsProvider::builder();
                if let Some(name) = name {
                    provider = provider.profile_name(name.clone());
                }
                if let Some(path) = path {
                    let files = EnvConfigFiles::builder()
                        .include_default_config_file(true)
                        .with_file(EnvConfigFileKind::Credentials, path.clone())
                        .build();
                    provider = provider.profile_files(files);
                }
                loader = loader.credentials_provider(provider.build());
            }
            CredentialsSource::Static { access_key_id, secret_access_key, session_token } => {
                loader = loader.credentials_provider(Credentials::new(
                    access_key_id.clone(),
                    secret_access_key.expose().to_string(),
                    session_token.as_ref().map(|t| t.expose().to_string()),
                    None,
                    "rill-static",
                ));
            }
        }
        if let Some(attempts) = self.max_attempts {
            loader = loader.retry_config(RetryConfig::standard().with_max_attempts(attempts));
        }
        if self.attempt_timeout.is_some() || self.operation_timeout.is_some() {
            let mut timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT);
            if let Some(t) = self.attempt_timeout {
                timeouts = timeouts.operation_attempt_timeout(t);
            }
            if let Some(t) = self.operation_timeout {
                timeouts = timeouts.operation_timeout(t);
            }
            loader = loader.timeout_config(timeouts.build());
        }
        loader.load().await
    }

    /// Builds a Kinesis client: loads the configuration, falls back to [`FALLBACK_REGION`] when
    /// an endpoint override is set but no region is known, then applies the client hooks.
    ///
    /// # Errors
    ///
    /// [`Error::NoRegion`] when no region is configured, none is found in the environment, and
    /// no endpoint override is set. Credentials are resolved lazily, at the first call.
    pub async fn client(&self) -> Result<Client> {
        let sdk = self.sdk_config().await;
        let mut builder = aws_sdk_kinesis::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            if self.endpoint.is_some() || endpoint_in_environment() {
                builder = builder.region(Region::new(FALLBACK_REGION));
            } else {
                return Err(Error::NoRegion);
            }
        }
        for hook in &self.hooks {
            builder = hook(&sdk, builder);
        }
        tracing::debug!(connection = ?self, "Kinesis client built");
        Ok(Client::from_conf(builder.build()))
    }
}

fn endpoint_in_environment() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}
