//! Binding sockets (TCP and unix) and the streams they accept.

use crate::error::ServerError;
use crate::{Protocol, ServerConfig, SocketOwner, SocketSpec};
use rwsgi_proto::SocketAddress;
use socket2::{Domain, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Where to bind, in uWSGI's spelling: `host:port`, `:port` (all IPv4
/// interfaces), `[::1]:port`; a path for a unix socket (as in uWSGI,
/// anything without a `:`, and here also anything with a `/`); `@name` for
/// a unix socket in Linux's abstract namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
    /// A unix socket in the abstract namespace (no file): the name after `@`.
    Abstract(String),
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Tcp(addr) => addr.fmt(f),
            BindAddr::Unix(path) => path.display().fmt(f),
            BindAddr::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

impl FromStr for BindAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix('@') {
            return match name {
                "" => Err("want a name after @".to_string()),
                name => Ok(BindAddr::Abstract(name.to_string())),
            };
        }
        if text.contains('/') || (!text.contains(':') && !text.is_empty()) {
            return Ok(BindAddr::Unix(PathBuf::from(text)));
        }
        let spelled = match text.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => text.to_string(),
        };
        let (_, port) = spelled.rsplit_once(':').ok_or("want host:port, :port or a socket path")?;
        port.parse::<u16>()
            .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?;
        let addr = spelled
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve: {e}"))?
            .next()
            .ok_or("the host name has no address")?;
        Ok(BindAddr::Tcp(addr))
    }
}

/// A bound, listening socket and the protocol it speaks.
#[derive(Debug)]
pub struct Listener {
    pub(crate) kind: ListenerKind,
    pub(crate) protocol: Protocol,
    pub(crate) local: SocketAddress,
}

#[derive(Debug)]
pub(crate) enum ListenerKind {
    Tcp(std::net::TcpListener),
    /// With its file, unless it is in the abstract namespace.
    Unix(std::os::unix::net::UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Binds one socket of `config` (its backlog, `chmod-socket`).
    pub fn bind(spec: &SocketSpec, config: &ServerConfig) -> Result<Listener, ServerError> {
        bind_one(spec, config)
    }

    /// Serves a socket that is already bound and listening, inherited from
    /// systemd or from the previous master across a re-exec.
    pub fn adopt(fd: OwnedFd, protocol: Protocol) -> Result<Listener, ServerError> {
        let socket = Socket::from(fd);
        let adopt_error = |source| ServerError::Bind {
            option: protocol.option(),
            addr: "an inherited socket".into(),
            source,
        };
        socket.set_nonblocking(true).map_err(adopt_error)?;
        let addr = socket.local_addr().map_err(adopt_error)?;
        if let Some(tcp) = addr.as_socket() {
            return Ok(Listener {
                kind: ListenerKind::Tcp(std::net::TcpListener::from(socket)),
                protocol,
                local: SocketAddress::Tcp(tcp),
            });
        }
        let (path, shown) = match (addr.as_pathname(), addr.as_abstract_namespace()) {
            (Some(path), _) => (Some(path.to_path_buf()), path.to_path_buf()),
            (None, Some(name)) => {
                (None, PathBuf::from(format!("@{}", String::from_utf8_lossy(name))))
            }
            (None, None) => {
                return Err(adopt_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a TCP or unix socket",
                )));
            }
        };
        Ok(Listener {
            kind: ListenerKind::Unix(
                std::os::unix::net::UnixListener::from(OwnedFd::from(socket)),
                path,
            ),
            protocol,
            local: SocketAddress::Unix(Some(Arc::new(shown))),
        })
    }

    /// The protocol spoken on this socket.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local(&self) -> &SocketAddress {
        &self.local
    }

    /// The unix socket file to remove on exit, if any.
    pub fn unix_path(&self) -> Option<&Path> {
        match &self.kind {
            ListenerKind::Unix(_, path) => path.as_deref(),
            ListenerKind::Tcp(_) => None,
        }
    }
}

/// Binds every socket of the config, in order. Call before starting threads
/// (and, later, before forking workers, which inherit the listeners).
pub fn bind(config: &ServerConfig) -> Result<Vec<Listener>, ServerError> {
    if config.sockets.is_empty() {
        return Err(ServerError::NoSockets);
    }
    config.sockets.iter().map(|spec| bind_one(spec, config)).collect()
}

fn bind_one(spec: &SocketSpec, config: &ServerConfig) -> Result<Listener, ServerError> {
    let bind_error = |source| ServerError::Bind {
        option: spec.protocol.option(),
        addr: spec.addr.to_string(),
        source,
    };
    let backlog = i32::try_from(config.listen_backlog).unwrap_or(i32::MAX);
    match &spec.addr {
        BindAddr::Tcp(addr) => {
            let socket =
                Socket::new(Domain::for_address(*addr), Type::STREAM, None).map_err(bind_error)?;
            socket.set_reuse_address(true).map_err(bind_error)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true).map_err(bind_error)?;
            }
            socket.bind(&SockAddr::from(*addr)).map_err(bind_error)?;
            socket.listen(backlog).map_err(bind_error)?;
            socket.set_nonblocking(true).map_err(bind_error)?;
            let listener = std::net::TcpListener::from(socket);
            let local = listener.local_addr().map_err(bind_error)?;
            Ok(Listener {
                kind: ListenerKind::Tcp(listener),
                protocol: spec.protocol,
                local: SocketAddress::Tcp(local),
            })
        }
        BindAddr::Unix(path) => {
            remove_stale_socket(path).map_err(bind_error)?;
            let listener = bind_unix(&SockAddr::unix(path).map_err(bind_error)?, backlog)
                .map_err(bind_error)?;
            if let Some(mode) = config.chmod_socket {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(bind_error)?;
            }
            if let Some(SocketOwner { uid, gid }) = config.chown_socket {
                std::os::unix::fs::chown(path, uid, gid).map_err(bind_error)?;
            }
            // Logged and removed by its absolute path: a relative one is
            // relative to where it was bound (`chdir`, as in uWSGI).
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            Ok(Listener {
                kind: ListenerKind::Unix(listener, Some(path.clone())),
                protocol: spec.protocol,
                local: SocketAddress::Unix(Some(Arc::new(path))),
            })
        }
        BindAddr::Abstract(name) => {
            // A leading NUL names the abstract namespace; there is no file
            // to chmod, chown or remove.
            let addr = SockAddr::unix(format!("\0{name}")).map_err(bind_error)?;
            let listener = bind_unix(&addr, backlog).map_err(bind_error)?;
            Ok(Listener {
                kind: ListenerKind::Unix(listener, None),
                protocol: spec.protocol,
                local: SocketAddress::Unix(Some(Arc::new(PathBuf::from(format!("@{name}"))))),
            })
        }
    }
}

fn bind_unix(addr: &SockAddr, backlog: i32) -> io::Result<std::os::unix::net::UnixListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(addr)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(std::os::unix::net::UnixListener::from(OwnedFd::from(socket)))
}

/// A socket file left by a dead server is removed; one a live server
/// answers on is left alone, so the bind fails with "address in use".
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_err() {
                std::fs::remove_file(path)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            ListenerKind::Tcp(listener) => listener.as_fd(),
            ListenerKind::Unix(listener, _) => listener.as_fd(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_uwsgi_address_spellings() {
        assert_eq!("127.0.0.1:8000".parse(), Ok(BindAddr::Tcp("127.0.0.1:8000".parse().unwrap())));
        assert_eq!(":8000".parse(), Ok(BindAddr::Tcp("0.0.0.0:8000".parse().unwrap())));
        assert_eq!("[::1]:9000".parse(), Ok(BindAddr::Tcp("[::1]:9000".parse().unwrap())));
        assert_eq!("/run/app.sock".parse(), Ok(BindAddr::Unix("/run/app.sock".into())));
        assert_eq!("./app.sock".parse(), Ok(BindAddr::Unix("./app.sock".into())));
        assert!(matches!("localhost:80".parse(), Ok(BindAddr::Tcp(_))));
        // As in uWSGI, an address without a colon is a unix socket path.
        assert_eq!("mysite.sock".parse(), Ok(BindAddr::Unix("mysite.sock".into())));
        assert_eq!("@app".parse(), Ok(BindAddr::Abstract("app".into())));
        for bad in ["127.0.0.1:99999", ":x", "", "@"] {
            assert!(bad.parse::<BindAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn binds_tcp_and_unix_and_replaces_a_stale_socket_file() {
        let dir = std::env::temp_dir().join(format!("rwsgi-bind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let config = |addr: BindAddr| ServerConfig {
            sockets: vec![SocketSpec { addr, protocol: Protocol::Http }],
            chmod_socket: Some(0o666),
            ..ServerConfig::default()
        };
        let tcp = bind(&config("127.0.0.1:0".parse().unwrap())).unwrap();
        assert!(matches!(tcp[0].local(), SocketAddress::Tcp(a) if a.port() != 0));
        // A stale file from a dead server: bind must succeed anyway.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let unix = bind(&config(BindAddr::Unix(path.clone()))).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        // A live one: bind must fail rather than steal it.
        assert!(bind(&config(BindAddr::Unix(path.clone()))).is_err());
        drop(unix);
        // The abstract namespace: no file, and a client finds it by name.
        let name = format!("rwsgi-test-{}", std::process::id());
        let abstract_ = bind(&config(BindAddr::Abstract(name.clone()))).unwrap();
        assert_eq!(abstract_[0].unix_path(), None);
        assert_eq!(abstract_[0].local().to_string(), format!("unix:@{name}"));
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        assert!(std::os::unix::net::UnixStream::connect_addr(&addr).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
