//! systemd's side of things: socket activation (the descriptors
//! [`crate::handover`] found, from systemd or from this master before a
//! re-exec), and
//! `sd_notify` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=`).

use crate::error::MasterError;
use crate::handover::{FIRST_FD, Received, protocol_named};
use rwsgi_server::{Listener, Protocol, ServerConfig};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

/// Where each listener comes from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// Inherited descriptor number `fd` (from 0), serving `protocol`.
    Inherited { fd: usize, protocol: Protocol },
    /// Bind the configuration's socket number `socket` ourselves.
    Bind { socket: usize },
}

/// Matches `count` inherited descriptors with the configured sockets.
/// When every descriptor is named after a socket option, the nth one named
/// for a protocol takes the place of that protocol's nth configured socket
/// (extra ones are served too); otherwise they take the configured
/// sockets' places in order. Configured sockets left over are bound.
fn assign(protocols: &[Protocol], count: usize, names: &[String]) -> Result<Vec<Source>, String> {
    let named: Option<Vec<Protocol>> = if names.len() == count && count > 0 {
        names.iter().map(|n| protocol_named(n)).collect()
    } else {
        None
    };
    let mut sources: Vec<Source> =
        (0..protocols.len()).map(|socket| Source::Bind { socket }).collect();
    match named {
        Some(named) => {
            for (fd, protocol) in named.into_iter().enumerate() {
                let nth = named_before(&sources, protocol);
                let slot = protocols
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p == protocol)
                    .nth(nth)
                    .map(|(i, _)| i);
                match slot {
                    Some(i) => sources[i] = Source::Inherited { fd, protocol },
                    None => sources.push(Source::Inherited { fd, protocol }),
                }
            }
        }
        None => {
            if count > protocols.len() {
                return Err(format!(
                    "{count} sockets passed, {} configured; name them (FileDescriptorName=http-socket, socket or fastcgi-socket) to serve them all",
                    protocols.len()
                ));
            }
            for (fd, source) in sources.iter_mut().enumerate().take(count) {
                *source = Source::Inherited { fd, protocol: protocols[fd] };
            }
        }
    }
    Ok(sources)
}

fn named_before(sources: &[Source], protocol: Protocol) -> usize {
    sources
        .iter()
        .filter(|s| matches!(s, Source::Inherited { protocol: p, .. } if *p == protocol))
        .count()
}

/// A listener and whether this server created its socket (so `vacuum`
/// may remove its file).
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) listener: Listener,
    pub(crate) ours: bool,
}

/// The listeners: the descriptors `received` says are ours, else bound.
pub(crate) fn listeners(
    config: &ServerConfig,
    received: &Received,
) -> Result<Vec<Owned>, MasterError> {
    let Some(passed) = &received.sockets else {
        if config.sockets.is_empty() {
            return Err(rwsgi_server::ServerError::NoSockets.into());
        }
        return config
            .sockets
            .iter()
            .map(|spec| Ok(Owned { listener: Listener::bind(spec, config)?, ours: true }))
            .collect();
    };
    let count = passed.count;
    let mut fds: Vec<Option<OwnedFd>> = (FIRST_FD..)
        .take(count)
        .map(|fd| {
            nix::fcntl::fcntl(
                // SAFETY: only probing that the number is open, not keeping it.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                nix::fcntl::FcntlArg::F_GETFD,
            )
            .map_err(|_| {
                MasterError::Activation(format!("LISTEN_FDS={count} but fd {fd} is not open"))
            })?;
            // SAFETY: LISTEN_FDS hands descriptors FIRST_FD.. to this
            // process (LISTEN_PID matched), open as just checked; each is
            // taken once, and the variables are gone, so nothing else will.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            set_cloexec(&owned)?;
            Ok(Some(owned))
        })
        .collect::<Result<_, MasterError>>()?;
    let protocols: Vec<Protocol> = config.sockets.iter().map(|s| s.protocol).collect();
    let sources = assign(&protocols, count, &passed.names).map_err(MasterError::Activation)?;
    tracing::info!(
        "{} {count} inherited socket(s)",
        if received.reexec { "reloaded with" } else { "socket activation:" }
    );
    sources
        .into_iter()
        .map(|source| match source {
            Source::Bind { socket } => {
                Ok(Owned { listener: Listener::bind(&config.sockets[socket], config)?, ours: true })
            }
            Source::Inherited { fd, protocol } => {
                let fd = fds[fd]
                    .take()
                    .ok_or_else(|| MasterError::Activation("fd used twice".into()))?;
                Ok(Owned { listener: Listener::adopt(fd, protocol)?, ours: received.reexec })
            }
        })
        .collect()
}

fn set_cloexec(fd: &impl AsFd) -> Result<(), MasterError> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(MasterError::system("fcntl"))
}

/// `sd_notify`: datagrams to `$NOTIFY_SOCKET` (a path, or `@name` for the
/// abstract namespace). Kept across a re-exec, where the new master needs
/// it too; workers never notify.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, if set and usable.
    pub(crate) fn from_env() -> Option<Notifier> {
        let target = std::env::var("NOTIFY_SOCKET").ok()?;
        let addr = notify_addr(&target)?;
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, addr })
    }

    /// Another handle on the same socket and address, for another thread.
    pub(crate) fn try_clone(&self) -> Option<Notifier> {
        Some(Notifier { socket: self.socket.try_clone().ok()?, addr: self.addr.clone() })
    }

    /// Sends `state` (`KEY=VALUE` lines); failures are logged, not fatal.
    pub(crate) fn notify(&self, state: &str) {
        if let Err(err) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::warn!("sd_notify: {err}");
        }
    }
}

fn notify_addr(target: &str) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match target.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name).ok(),
        None if target.starts_with('/') => {
            std::os::unix::net::SocketAddr::from_pathname(target).ok()
        }
        None => None,
    }
}

/// The `RELOADING=1` message, with the timestamp `Type=notify-reload` wants.
pub(crate) fn reloading_message() -> String {
    let usec = crate::scoreboard::now_ms().saturating_mul(1000);
    format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use Protocol::{FastCgi, Http, Uwsgi};

    #[test]
    fn unnamed_fds_take_configured_places_in_order() {
        let sources = assign(&[Http, Uwsgi, FastCgi], 2, &[]).unwrap();
        assert_eq!(
            sources,
            vec![
                Source::Inherited { fd: 0, protocol: Http },
                Source::Inherited { fd: 1, protocol: Uwsgi },
                Source::Bind { socket: 2 },
            ]
        );
        assert!(assign(&[Http], 2, &[]).is_err(), "more fds than sockets, unnamed");
        let unknown = vec!["app.socket".to_string()];
        assert_eq!(
            assign(&[Uwsgi], 1, &unknown).unwrap(),
            vec![Source::Inherited { fd: 0, protocol: Uwsgi }]
        );
    }

    #[test]
    fn named_fds_replace_sockets_of_their_protocol_and_extras_are_served() {
        let names: Vec<String> =
            ["fastcgi-socket", "http", "http-socket"].iter().map(|s| s.to_string()).collect();
        let sources = assign(&[Http, FastCgi, Uwsgi], 3, &names).unwrap();
        assert_eq!(
            sources,
            vec![
                Source::Inherited { fd: 1, protocol: Http },
                Source::Inherited { fd: 0, protocol: FastCgi },
                Source::Bind { socket: 2 },
                Source::Inherited { fd: 2, protocol: Http },
            ]
        );
        let only: Vec<String> = vec!["socket".into()];
        assert_eq!(
            assign(&[], 1, &only).unwrap(),
            vec![Source::Inherited { fd: 0, protocol: Uwsgi }]
        );
    }

    #[test]
    fn notify_addresses_and_messages() {
        assert!(notify_addr("/run/systemd/notify").is_some());
        assert!(notify_addr("@abstract").is_some());
        assert!(notify_addr("relative").is_none());
        let dir = std::env::temp_dir().join(format!("rwsgi-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            addr: notify_addr(path.to_str().unwrap()).unwrap(),
        };
        notifier.notify("READY=1\nSTATUS=serving");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        assert!(reloading_message().starts_with("RELOADING=1\nMONOTONIC_USEC="));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
