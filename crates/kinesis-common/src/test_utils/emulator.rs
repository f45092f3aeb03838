//! The two local emulators and how to connect to them.

use aws_sdk_kinesis::Client;

use crate::{Error, KinesisConnection, KinesisConnectionBuilder, Result};

/// A local Kinesis emulator started by `scripts/emulators.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Emulator {
    /// kinesalite (fast; no UpdateShardCount, no stream ARNs).
    Kinesalite,
    /// kinesis-local, kinesis-mock compiled to JS (slow, single-threaded: keep volumes small).
    KinesisLocal,
}

impl Emulator {
    /// Both emulators.
    pub const ALL: [Emulator; 2] = [Emulator::Kinesalite, Emulator::KinesisLocal];

    /// A short name for test output.
    pub fn name(self) -> &'static str {
        match self {
            Emulator::Kinesalite => "kinesalite",
            Emulator::KinesisLocal => "kinesis-local",
        }
    }

    /// The variable holding the endpoint.
    pub fn env_var(self) -> &'static str {
        match self {
            Emulator::Kinesalite => "RILL_KINESALITE_ENDPOINT",
            Emulator::KinesisLocal => "RILL_KINESIS_LOCAL_ENDPOINT",
        }
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:4567`.
    ///
    /// # Errors
    ///
    /// [`Error::EmulatorNotConfigured`] when the variable is unset or empty.
    pub fn endpoint(self) -> Result<String> {
        match std::env::var(self.env_var()) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(Error::EmulatorNotConfigured { var: self.env_var() }),
        }
    }

    /// A connection builder for this emulator: region `us-east-1` and fake static credentials
    /// (the emulators check none). Add hooks before building.
    pub fn connection_builder(self) -> Result<KinesisConnectionBuilder> {
        Ok(test_connection_at(self.endpoint()?))
    }

    /// A connection to an endpoint where nothing listens (port 9, discard: every call is refused
    /// at once), with the emulators' region and credentials and one attempt per call: for tests
    /// of what an unreachable Kinesis does.
    pub fn unreachable_connection() -> Result<KinesisConnection> {
        test_connection_at("http://127.0.0.1:9".into()).max_attempts(1).build()
    }

    /// A ready connection for this emulator.
    pub fn connection(self) -> Result<KinesisConnection> {
        self.connection_builder()?.build()
    }

    /// A client for this emulator.
    pub async fn client(self) -> Result<Client> {
        self.connection()?.client().await
    }
}

/// A connection builder for `endpoint` with region `us-east-1` and fake static credentials.
fn test_connection_at(endpoint: String) -> KinesisConnectionBuilder {
    KinesisConnection::builder()
        .region("us-east-1")
        .endpoint(endpoint)
        .static_credentials("rill-test-access-key", "rill-test-secret-key")
}
