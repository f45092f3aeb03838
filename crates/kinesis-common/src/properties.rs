//! [`KinesisConnection::from_properties`]: Flink's `aws.*` connection keys.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::connection::{validate_endpoint, validate_region};
use crate::{CredentialsSource, Error, KinesisConnection, Result, Secret};

/// `aws.region`: the AWS region.
pub const AWS_REGION: &str = "aws.region";
/// `aws.endpoint`: an endpoint override URL.
pub const AWS_ENDPOINT: &str = "aws.endpoint";
/// `aws.credentials.provider`: `AUTO` (default), `BASIC`, `ENV_VAR` or `PROFILE`.
pub const AWS_CREDENTIALS_PROVIDER: &str = "aws.credentials.provider";
/// `aws.credentials.provider.basic.accesskeyid`: access key id for `BASIC`.
pub const AWS_ACCESS_KEY_ID: &str = "aws.credentials.provider.basic.accesskeyid";
/// `aws.credentials.provider.basic.secretkey`: secret access key for `BASIC`.
pub const AWS_SECRET_ACCESS_KEY: &str = "aws.credentials.provider.basic.secretkey";
/// `aws.credentials.provider.profile.name`: profile name for `PROFILE`.
pub const AWS_PROFILE_NAME: &str = "aws.credentials.provider.profile.name";
/// `aws.credentials.provider.profile.path`: credentials file for `PROFILE`.
pub const AWS_PROFILE_PATH: &str = "aws.credentials.provider.profile.path";

/// Every key [`KinesisConnection::from_properties`] reads. Source and sink property parsers use
/// it to tell connection keys from their own.
pub const CONNECTION_PROPERTY_KEYS: &[&str] = &[
    AWS_REGION,
    AWS_ENDPOINT,
    AWS_CREDENTIALS_PROVIDER,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE_NAME,
    AWS_PROFILE_PATH,
];

/// Whether `key` belongs to the connection (an `aws.` key); such keys are validated by
/// [`KinesisConnection::from_properties`], all others are left to the caller.
pub fn is_connection_key(key: &str) -> bool {
    key.starts_with("aws.")
}

const PROVIDERS: &str = "AUTO, BASIC, ENV_VAR or PROFILE";

impl KinesisConnection {
    /// Reads a connection from Flink's property keys, so a Flink job's configuration carries over:
    ///
    /// | key | meaning |
    /// |---|---|
    /// | `aws.region` | region, e.g. `us-east-1` |
    /// | `aws.endpoint` | endpoint override, e.g. `http://127.0.0.1:4567` |
    /// | `aws.credentials.provider` | `AUTO` (default chain, default), `BASIC`, `ENV_VAR`, `PROFILE` |
    /// | `aws.credentials.provider.basic.accesskeyid` / `.secretkey` | keys for `BASIC` |
    /// | `aws.credentials.provider.profile.name` / `.path` | profile and credentials file for `PROFILE` |
    ///
    /// Without `aws.credentials.provider`, the presence of basic keys selects `BASIC` and of
    /// profile keys `PROFILE`. Keys that do not start with `aws.` are ignored (they belong to
    /// the source or sink).
    ///
    /// # Errors
    ///
    /// An unknown `aws.*` key, a bad value (the message names key and value, except secrets), a
    /// missing key that the provider needs, or keys of one provider given for another.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use rill_kinesis_common::KinesisConnection;
    /// let props = HashMap::from([
    ///     ("aws.region".to_string(), "eu-west-1".to_string()),
    ///     ("aws.credentials.provider".to_string(), "PROFILE".to_string()),
    ///     ("aws.credentials.provider.profile.name".to_string(), "analytics".to_string()),
    /// ]);
    /// let conn = KinesisConnection::from_properties(&props).unwrap();
    /// assert_eq!(conn.region(), Some("eu-west-1"));
    ///
    /// let bad = HashMap::from([("aws.credentials.provider".to_string(), "SOMETIMES".to_string())]);
    /// let err = KinesisConnection::from_properties(&bad).unwrap_err().to_string();
    /// assert!(err.contains("aws.credentials.provider") && err.contains("SOMETIMES"));
    /// ```
    pub fn from_properties(properties: &HashMap<String, String>) -> Result<KinesisConnection> {
        let mut keys: Vec<&String> = properties.keys().filter(|k| is_connection_key(k)).collect();
        keys.sort();
        for key in keys {
            if !CONNECTION_PROPERTY_KEYS.contains(&key.as_str()) {
                return Err(Error::UnknownProperty { key: key.clone(), known: CONNECTION_PROPERTY_KEYS.join(", ") });
            }
        }
        let get = |key: &str| properties.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let mut builder = KinesisConnection::builder();
        if let Some(region) = get(AWS_REGION) {
            validate_region(region).map_err(|expected| invalid(AWS_REGION, region, expected))?;
            builder = builder.region(region);
        }
        if let Some(endpoint) = get(AWS_ENDPOINT) {
            validate_endpoint(endpoint).map_err(|expected| invalid(AWS_ENDPOINT, endpoint, expected))?;
            builder = builder.endpoint(endpoint);
        }

        let has_basic = get(AWS_ACCESS_KEY_ID).is_some() || get(AWS_SECRET_ACCESS_KEY).is_some();
        let has_profile = get(AWS_PROFILE_NAME).is_some() || get(AWS_PROFILE_PATH).is_some();
        let provider = match get(AWS_CREDENTIALS_PROVIDER) {
            Some(p) => p.to_ascii_uppercase(),
            None if has_basic => "BASIC".to_string(),
            None if has_profile => "PROFILE".to_string(),
            None => "AUTO".to_string(),
        };
        let credentials = match provider.as_str() {
            "AUTO" => CredentialsSource::DefaultChain,
            "ENV_VAR" => CredentialsSource::Environment,
            "BASIC" => {
                let reason = "when aws.credentials.provider is BASIC";
                let access_key_id = get(AWS_ACCESS_KEY_ID)
                    .ok_or_else(|| Error::MissingProperty { key: AWS_ACCESS_KEY_ID.into(), reason: reason.into() })?;
                let secret = get(AWS_SECRET_ACCESS_KEY).ok_or_else(|| Error::MissingProperty {
                    key: AWS_SECRET_ACCESS_KEY.into(),
                    reason: reason.into(),
                })?;
                CredentialsSource::Static {
                    access_key_id: access_key_id.to_string(),
                    secret_access_key: Secret::new(secret),
                    session_token: None,
                }
            }
            "PROFILE" => CredentialsSource::Profile {
                name: get(AWS_PROFILE_NAME).map(str::to_string),
                path: get(AWS_PROFILE_PATH).map(PathBuf::from),
            },
            "SYS_PROP" | "ASSUME_ROLE" | "WEB_IDENTITY_TOKEN" | "CUSTOM" => {
                let raw = get(AWS_CREDENTIALS_PROVIDER).unwrap_or_default();
                return Err(invalid(
                    AWS_CREDENTIALS_PROVIDER,
                    raw,
                    format!("{PROVIDERS} (this Flink provider is not supported; AUTO covers web identity and roles from profiles)"),
                ));
            }
            _ => {
                let raw = get(AWS_CREDENTIALS_PROVIDER).unwrap_or_default();
                return Err(invalid(AWS_CREDENTIALS_PROVIDER, raw, PROVIDERS.to_string()));
            }
        };
        if has_basic && !matches!(credentials, CredentialsSource::Static { .. }) {
            return Err(Error::InvalidProperty {
                key: AWS_CREDENTIALS_PROVIDER.into(),
                value: provider,
                expected: format!("BASIC, since {AWS_ACCESS_KEY_ID} / {AWS_SECRET_ACCESS_KEY} are set"),
            });
        }
        if has_profile && !matches!(credentials, CredentialsSource::Profile { .. }) {
            return Err(Error::InvalidProperty {
                key: AWS_CREDENTIALS_PROVIDER.into(),
                value: provider,
                expected: format!("PROFILE, since {AWS_PROFILE_NAME} / {AWS_PROFILE_PATH} are set"),
            });
        }
        builder.credentials(credentials).build()
    }
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> Error {
    Error::InvalidProperty { key: key.to_string(), value: value.to_string(), expected: expected.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn basic_credentials_are_read_and_never_shown() {
        let conn = KinesisConnection::from_properties(&props(&[
            (AWS_REGION, "us-east-1"),
            (AWS_ENDPOINT, "http://127.0.0.1:4567"),
            (AWS_CREDENTIALS_PROVIDER, "BASIC"),
            (AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
            (AWS_SECRET_ACCESS_KEY, "topsecretvalue"),
        ]))
        .unwrap();
        assert!(
            matches!(conn.credentials(), CredentialsSource::Static { access_key_id, .. } if access_key_id == "AKIDEXAMPLE")
        );
        assert!(!format!("{conn:?}").contains("topsecretvalue"));
        assert_eq!(conn.endpoint(), Some("http://127.0.0.1:4567"));
    }

    #[test]
    fn basic_keys_without_a_provider_select_basic() {
        let conn = KinesisConnection::from_properties(&props(&[
            (AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
            (AWS_SECRET_ACCESS_KEY, "s"),
        ]))
        .unwrap();
        assert!(matches!(conn.credentials(), CredentialsSource::Static { .. }));
    }

    #[test]
    fn basic_without_a_secret_key_names_the_missing_key() {
        let err = KinesisConnection::from_properties(&props(&[
            (AWS_CREDENTIALS_PROVIDER, "BASIC"),
            (AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains(AWS_SECRET_ACCESS_KEY), "{err}");
    }

    #[test]
    fn profile_name_and_path_are_read() {
        let conn = KinesisConnection::from_properties(&props(&[
            (AWS_CREDENTIALS_PROVIDER, "PROFILE"),
            (AWS_PROFILE_NAME, "analytics"),
            (AWS_PROFILE_PATH, "/etc/aws/credentials"),
        ]))
        .unwrap();
        assert_eq!(
            conn.credentials(),
            &CredentialsSource::Profile {
                name: Some("analytics".into()),
                path: Some(PathBuf::from("/etc/aws/credentials"))
            }
        );
    }

    #[test]
    fn env_var_and_auto_select_their_sources() {
        let env = KinesisConnection::from_properties(&props(&[(AWS_CREDENTIALS_PROVIDER, "ENV_VAR")])).unwrap();
        assert_eq!(env.credentials(), &CredentialsSource::Environment);
        let auto = KinesisConnection::from_properties(&props(&[])).unwrap();
        assert_eq!(auto.credentials(), &CredentialsSource::DefaultChain);
    }

    #[test]
    fn an_unknown_aws_key_is_an_error_naming_it() {
        let err = KinesisConnection::from_properties(&props(&[("aws.regoin", "us-east-1")])).unwrap_err();
        assert!(err.to_string().contains("aws.regoin"), "{err}");
    }

    #[test]
    fn keys_outside_aws_are_left_to_the_caller() {
        KinesisConnection::from_properties(&props(&[("flink.stream.initpos", "LATEST")])).unwrap();
    }

    #[test]
    fn a_bad_endpoint_names_key_and_value() {
        let err = KinesisConnection::from_properties(&props(&[(AWS_ENDPOINT, "localhost:4567")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(AWS_ENDPOINT) && text.contains("localhost:4567"), "{text}");
    }

    #[test]
    fn basic_keys_with_another_provider_are_rejected() {
        let err = KinesisConnection::from_properties(&props(&[
            (AWS_CREDENTIALS_PROVIDER, "ENV_VAR"),
            (AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("ENV_VAR"), "{err}");
    }

    #[test]
    fn unsupported_flink_providers_are_rejected_by_name() {
        let err = KinesisConnection::from_properties(&props(&[(AWS_CREDENTIALS_PROVIDER, "SYS_PROP")])).unwrap_err();
        assert!(err.to_string().contains("SYS_PROP"), "{err}");
    }
}
