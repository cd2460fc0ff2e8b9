//! systemd's side of things: socket activation (`LISTEN_FDS`), which the
//! master also uses to hand its sockets to itself across a re-exec, and
//! `sd_notify` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=`).

use crate::error::MasterError;
use rwsgi_server::{Listener, Protocol, ServerConfig};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// The first inherited descriptor, by the protocol.
pub(crate) const FIRST_FD: RawFd = 3;

/// What `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` say, for `pid`.
/// `None` when they are absent or meant for another process.
fn parse_listen_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
    pid: u32,
) -> Result<Option<(usize, Vec<String>)>, String> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(None);
    }
    let count: usize = listen_fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={listen_fds:?} is not a number"))?;
    let names: Vec<String> = match names {
        Some(names) if !names.is_empty() => names.split(':').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(Some((count, names)))
}

/// The protocol an fd name (systemd's `FileDescriptorName=`) stands for.
fn protocol_named(name: &str) -> Option<Protocol> {
    match name {
        "http-socket" | "http" => Some(Protocol::Http),
        "socket" | "uwsgi-socket" | "uwsgi" => Some(Protocol::Uwsgi),
        "fastcgi-socket" | "fastcgi" => Some(Protocol::FastCgi),
        _ => None,
    }
}

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

/// The listeners: inherited from systemd or a previous master when
/// `LISTEN_FDS` is for us, else bound. The variables are removed, so the
/// app and the workers never see them.
pub(crate) fn listeners(config: &ServerConfig) -> Result<Vec<Owned>, MasterError> {
    let var = |name: &str| std::env::var(name).ok();
    let parsed = parse_listen_env(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )
    .map_err(MasterError::Activation)?;
    let reexec = var(crate::reexec::REEXEC_VAR).is_some();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", crate::reexec::REEXEC_VAR] {
        // SAFETY: called while the process has one thread (before any fork,
        // pool or runtime), so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    let Some((count, names)) = parsed else {
        if config.sockets.is_empty() {
            return Err(rwsgi_server::ServerError::NoSockets.into());
        }
        return config
            .sockets
            .iter()
            .map(|spec| Ok(Owned { listener: Listener::bind(spec, config)?, ours: true }))
            .collect();
    };
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
    let sources = assign(&protocols, count, &names).map_err(MasterError::Activation)?;
    tracing::info!(
        "{} {count} inherited socket(s)",
        if reexec { "reloaded with" } else { "socket activation:" }
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
                Ok(Owned { listener: Listener::adopt(fd, protocol)?, ours: reexec })
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
    fn listen_env_is_for_our_pid_only() {
        assert_eq!(parse_listen_env(None, None, None, 7), Ok(None));
        assert_eq!(parse_listen_env(Some("8"), Some("2"), None, 7), Ok(None));
        assert_eq!(parse_listen_env(Some("7"), Some("2"), None, 7), Ok(Some((2, vec![]))));
        assert_eq!(
            parse_listen_env(Some("7"), Some("2"), Some("http-socket:socket"), 7),
            Ok(Some((2, vec!["http-socket".into(), "socket".into()])))
        );
        assert!(parse_listen_env(Some("7"), Some("x"), None, 7).is_err());
    }

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
