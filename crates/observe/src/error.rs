//! Errors of the observability layer.

use std::net::SocketAddr;

/// What can go wrong serving a job's metrics and dashboard.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot serve metrics and dashboard on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be started.
    #[error("cannot start the metrics and dashboard server: {0}")]
    Start(std::io::Error),
}

/// Result of this crate.
pub type Result<T, E = ObserveError> = std::result::Result<T, E>;
