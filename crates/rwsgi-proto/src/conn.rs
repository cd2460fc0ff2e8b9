//! Where a connection comes from and where it arrived.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// An address of either end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddress {
    /// A TCP endpoint.
    Tcp(SocketAddr),
    /// A unix domain socket: the path of the listening socket, or `None` for
    /// an unnamed peer.
    Unix(Option<Arc<PathBuf>>),
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Tcp(addr) => addr.fmt(f),
            SocketAddress::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            SocketAddress::Unix(None) => f.write_str("unix"),
        }
    }
}

/// Both ends of an accepted connection, as the CGI variables need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client (`REMOTE_ADDR`, `REMOTE_PORT`).
    pub peer: SocketAddress,
    /// The listener (`SERVER_NAME`/`SERVER_PORT` fallback when no Host).
    pub local: SocketAddress,
}
