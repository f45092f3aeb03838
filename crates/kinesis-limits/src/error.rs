//! The crate's error type.

use std::net::SocketAddr;

/// Errors of starting the proxy, and of talking to the upstream emulator while serving a call
/// (the latter are answered to the client as HTTP 502, never returned from the API).
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// A limit is zero, negative or not a number.
    #[error("invalid limit {name} = {value}: it must be a positive number")]
    InvalidLimit {
        /// The [`crate::Limits`] field.
        name: &'static str,
        /// The value given.
        value: String,
    },
    /// The upstream URL is not an `http://host:port` URL.
    #[error("invalid upstream URL '{url}': {reason}")]
    InvalidUpstream {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The upstream emulator could not be reached, or its answer could not be read.
    #[error("upstream {operation} call failed: {reason}")]
    Upstream {
        /// The Kinesis operation, e.g. `ListShards`.
        operation: String,
        /// What went wrong.
        reason: String,
    },
}
