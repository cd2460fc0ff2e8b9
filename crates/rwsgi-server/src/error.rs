//! Errors of the core: the ones that stop the server from starting.

use std::io;

/// A failure to start serving. Per-connection errors never surface here:
/// they are answered on their connection and logged.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An address that does not parse.
    #[error("{option} {addr:?}: {reason}")]
    BadAddress {
        /// The option that gave it.
        option: &'static str,
        /// The address as given.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// An address that cannot be bound.
    #[error("{option} {addr}: cannot bind: {source}")]
    Bind {
        /// The option that gave it.
        option: &'static str,
        /// The address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// No socket to serve on.
    #[error("no socket to serve on: give --http-socket, --socket or --fastcgi-socket ADDR")]
    NoSockets,
    /// The runtime could not start.
    #[error("runtime: {0}")]
    Runtime(io::Error),
}
