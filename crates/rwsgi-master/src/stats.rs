//! The stats server: uWSGI's JSON document on a TCP or unix socket
//! (`stats`), what uwsgitop and the Prometheus uwsgi exporter read; with
//! `stats-http`, behind a minimal HTTP answer. Served by the master from
//! its own loop (the socket is polled with the signals): a client gets
//! the document and the connection closes. No worker and no Python
//! thread is involved: the workers publish into the scoreboard. A client
//! gets 100 ms in all and a turn of the loop 50 ms: a slow client cannot
//! keep the master from supervising its workers.

use crate::error::MasterError;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A client must be answered within this, or is dropped: the master
/// never waits long for one.
const CLIENT_DEADLINE: Duration = Duration::from_millis(100);
/// What one turn of the master's loop spends on stats clients at most;
/// the others wait in the backlog for the next turn.
const TURN_BUDGET: Duration = Duration::from_millis(50);

/// The stats options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSettings {
    /// `stats`: `HOST:PORT`, `:PORT` or a unix socket path.
    pub addr: Option<String>,
    /// `stats-http`: answer HTTP requests.
    pub http: bool,
    /// `stats-minified`: no indentation.
    pub minified: bool,
    /// `stats-vars-unredacted`: in-flight requests' cookies and
    /// credentials shown too.
    pub vars_unredacted: bool,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// The listening stats socket.
#[derive(Debug)]
pub(crate) struct StatsServer {
    socket: Socket,
    http: bool,
    minified: bool,
    /// The master removes a unix socket's file when it goes; a forked
    /// worker only closes its copy.
    owned: bool,
}

impl StatsServer {
    pub(crate) fn bind(
        settings: &StatsSettings,
        chmod: Option<u32>,
    ) -> Result<Option<StatsServer>, MasterError> {
        let Some(addr) = &settings.addr else { return Ok(None) };
        let error = |source: std::io::Error| MasterError::Stats { addr: addr.clone(), source };
        let socket = if addr.contains(':') {
            let addr = if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.clone() };
            Socket::Tcp(TcpListener::bind(&addr).map_err(error)?)
        } else {
            let path = PathBuf::from(addr);
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(error)?;
            if let Some(mode) = chmod {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(error)?;
            }
            Socket::Unix(listener, path)
        };
        match &socket {
            Socket::Tcp(listener) => listener.set_nonblocking(true),
            Socket::Unix(listener, _) => listener.set_nonblocking(true),
        }
        .map_err(error)?;
        tracing::info!("stats server on {addr}{}", if settings.http { " (HTTP)" } else { "" });
        Ok(Some(StatsServer {
            socket,
            http: settings.http,
            minified: settings.minified,
            owned: true,
        }))
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Tcp(listener) => listener.as_fd(),
            Socket::Unix(listener, _) => listener.as_fd(),
        }
    }

    /// Answers the clients waiting: the JSON `document`, or with
    /// `stats-http` the answer to their request (`metrics` for
    /// `GET /metrics`). Each client has [`CLIENT_DEADLINE`] in all, the
    /// turn [`TURN_BUDGET`]: a slow or silent client costs the master's
    /// loop little and is dropped.
    pub(crate) fn answer(
        &self,
        document: impl Fn() -> serde_json::Value,
        metrics: impl Fn() -> String,
    ) {
        let turn = Instant::now();
        while turn.elapsed() < TURN_BUDGET {
            let accepted: std::io::Result<Box<dyn Client>> = match &self.socket {
                Socket::Tcp(listener) => {
                    listener.accept().map(|(s, _)| Box::new(s) as Box<dyn Client>)
                }
                Socket::Unix(listener, _) => {
                    listener.accept().map(|(s, _)| Box::new(s) as Box<dyn Client>)
                }
            };
            let Ok(mut client) = accepted else { return };
            let deadline = Instant::now() + CLIENT_DEADLINE;
            if client.set_nonblocking().is_err() {
                continue;
            }
            let json = |doc: serde_json::Value| {
                if self.minified {
                    serde_json::to_vec(&doc)
                } else {
                    serde_json::to_vec_pretty(&doc)
                }
                .unwrap_or_default()
            };
            let reply = if self.http {
                let Some(path) = read_path(&mut *client, deadline) else { continue };
                let (kind, body) = match path.as_str() {
                    "/metrics" => {
                        ("text/plain; version=0.0.4; charset=utf-8", metrics().into_bytes())
                    }
                    _ => ("application/json", json(document())),
                };
                let mut reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                reply.extend_from_slice(&body);
                reply
            } else {
                json(document())
            };
            if write_by(&mut *client, &reply, deadline) {
                let _ = client.shutdown_write();
            }
        }
    }
}

impl StatsServer {
    /// In a forked worker: closes its copy, leaves the socket to the master.
    pub(crate) fn close_in_child(mut self) {
        self.owned = false;
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        if let (Socket::Unix(_, path), true) = (&self.socket, self.owned) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An accepted stats client.
trait Client: Read + Write + AsRawFd {
    fn set_nonblocking(&self) -> std::io::Result<()>;
    /// Says the answer is over, so a close with bytes unread (the rest of
    /// an HTTP request) cannot reset it away.
    fn shutdown_write(&self) -> std::io::Result<()>;
}

impl Client for std::net::TcpStream {
    fn set_nonblocking(&self) -> std::io::Result<()> {
        std::net::TcpStream::set_nonblocking(self, true)
    }

    fn shutdown_write(&self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Client for std::os::unix::net::UnixStream {
    fn set_nonblocking(&self) -> std::io::Result<()> {
        std::os::unix::net::UnixStream::set_nonblocking(self, true)
    }

    fn shutdown_write(&self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// Waits until `fd` is ready for `flags`, at most until `deadline`.
fn wait(fd: RawFd, flags: PollFlags, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    // SAFETY: the client owns `fd` for the whole call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(borrowed, flags)];
    let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
    matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
}

/// The path of an HTTP request, read (to the end of its head, at most
/// 4 KiB) before `deadline`.
fn read_path(client: &mut dyn Client, deadline: Instant) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if !wait(client.as_raw_fd(), PollFlags::POLLIN, deadline) {
                    break;
                }
            }
            Err(_) => return None,
        }
    }
    let line = std::str::from_utf8(&buf[..len]).ok()?.lines().next()?;
    let mut parts = line.split(' ');
    let _method = parts.next()?;
    let target = parts.next()?;
    Some(target.split('?').next().unwrap_or(target).to_string())
}

/// Writes all of `bytes` before `deadline`; false if the client did not
/// take them in time (it is dropped).
fn write_by(client: &mut dyn Client, mut bytes: &[u8], deadline: Instant) -> bool {
    while !bytes.is_empty() {
        match client.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if !wait(client.as_raw_fd(), PollFlags::POLLOUT, deadline) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// (vsz, rss) of a process, in bytes, from `/proc`.
pub(crate) fn memory_of(pid: i32) -> (u64, u64) {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let mut pages = statm.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    // SAFETY: sysconf only reads a system constant.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    (pages.next().unwrap_or(0) * page, pages.next().unwrap_or(0) * page)
}

/// A listening socket's accept queue as the master's tick (once a second)
/// finds it, as uWSGI's master checks it: full when connections wait and
/// their number reaches the backlog's size, so the kernel drops or
/// refuses new ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueWatch {
    full: bool,
    /// Ticks that found it full: `listen_queue_errors` and the metric.
    pub(crate) full_ticks: u64,
}

/// What a tick found that the log says: once when the queue fills, once
/// when it drains, rather than once a second (as uWSGI does) meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueChange {
    Filled,
    Drained,
}

impl QueueWatch {
    pub(crate) fn observe(&mut self, waiting: u32, backlog: u32) -> Option<QueueChange> {
        let full = waiting > 0 && waiting >= backlog;
        self.full_ticks += u64::from(full);
        let change = match (self.full, full) {
            (false, true) => Some(QueueChange::Filled),
            (true, false) => Some(QueueChange::Drained),
            _ => None,
        };
        self.full = full;
        change
    }
}

/// The kernel's count of TCP connections dropped because a listen queue
/// was full (`TcpExt: ListenOverflows`): for the whole network namespace,
/// every TCP listener's, as the kernel keeps no count per socket.
pub(crate) fn tcp_listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    netstat_value(&text, "TcpExt:", "ListenOverflows")
}

/// A value of `/proc/net/netstat`'s text: a line of names, then a line of
/// values, per group.
fn netstat_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if names.starts_with(group) && values.starts_with(group) {
            let at = names.split_whitespace().position(|n| n == name)?;
            return values.split_whitespace().nth(at)?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_is_said_once_per_episode_and_counted_every_tick() {
        let mut watch = QueueWatch::default();
        assert_eq!(watch.observe(0, 0), None, "no backlog known, nothing waiting");
        assert_eq!(watch.observe(3, 10), None);
        assert_eq!(watch.observe(10, 10), Some(QueueChange::Filled));
        assert_eq!(watch.observe(11, 10), None);
        assert_eq!(watch.observe(9, 10), Some(QueueChange::Drained));
        assert_eq!(watch.observe(10, 10), Some(QueueChange::Filled));
        assert_eq!(watch.full_ticks, 3);
    }

    #[test]
    fn netstat_values_by_group_and_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 17 19\n\
                    IpExt: InNoRoutes ListenOverflows\nIpExt: 5 6\n";
        assert_eq!(netstat_value(text, "TcpExt:", "ListenOverflows"), Some(17));
        assert_eq!(netstat_value(text, "IpExt:", "ListenOverflows"), Some(6));
        assert_eq!(netstat_value(text, "TcpExt:", "Nothing"), None);
        assert!(tcp_listen_overflows().is_some(), "this kernel has /proc/net/netstat");
    }
}
