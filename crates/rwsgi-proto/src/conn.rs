//! Where a connection comes from and where it arrived.

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

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
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client (`REMOTE_ADDR`, `REMOTE_PORT`).
    pub peer: SocketAddress,
    /// The listener (`SERVER_NAME`/`SERVER_PORT` fallback when no Host).
    pub local: SocketAddress,
    /// The peer's `REMOTE_ADDR` and `REMOTE_PORT` (none for a unix peer),
    /// written on the first request that needs them: a connection's later
    /// requests share them instead of formatting the address again.
    remote: OnceLock<Option<(Bytes, Bytes)>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddress, local: SocketAddress) -> ConnInfo {
        ConnInfo { peer, local, remote: OnceLock::new() }
    }

    /// `REMOTE_ADDR` and `REMOTE_PORT` of a TCP peer (IPv4-mapped IPv6
    /// shown as IPv4); a unix peer has neither.
    pub fn remote(&self) -> Option<&(Bytes, Bytes)> {
        self.remote
            .get_or_init(|| match &self.peer {
                SocketAddress::Tcp(addr) => Some(crate::environ::render_remote(addr)),
                SocketAddress::Unix(_) => None,
            })
            .as_ref()
    }
}

/// Two connections are alike when their ends are.
impl PartialEq for ConnInfo {
    fn eq(&self, other: &Self) -> bool {
        (&self.peer, &self.local) == (&other.peer, &other.local)
    }
}

impl Eq for ConnInfo {}
