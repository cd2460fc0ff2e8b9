//! `logger = syslog…` and `req-logger = syslog…`: the lines go to syslog
//! through a relay, a small process of its own. The process that starts
//! it (the master, or a lone worker) puts a pipe in place of the
//! descriptors that carry those lines (stdout and stderr, or the request
//! lines' own), so every worker forked later writes there too, and the
//! app's `print()` as well, as with uWSGI's log master.
//!
//! The relay sends each line as one datagram and never blocks on syslog:
//! a line it cannot send now is dropped and counted, and the count said
//! once it can again. It ignores the signals a stop sends the whole
//! process group and ends at the pipe's end, once the last process that
//! writes to it has gone, so the last lines of a stop are not lost.

use crate::error::MasterError;
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::ForkResult;
use rwsgi_log::syslog::{Syslog, SyslogAddr};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// Lines longer than this are sent in pieces of it.
const LONGEST_LINE: usize = 64 * 1024;

/// Where the relay sends.
enum Sender {
    Unix(UnixDatagram, std::path::PathBuf),
    Udp(std::net::UdpSocket, std::net::SocketAddr),
}

impl Sender {
    fn open(addr: &SyslogAddr) -> Result<Sender, String> {
        match addr {
            SyslogAddr::Unix(path) => {
                let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
                socket.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok(Sender::Unix(socket, path.clone()))
            }
            SyslogAddr::Udp(addr) => {
                use std::net::ToSocketAddrs;
                let target = addr
                    .to_socket_addrs()
                    .map_err(|e| format!("{addr}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{addr}: no address"))?;
                let any: std::net::SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = std::net::UdpSocket::bind(any).map_err(|e| e.to_string())?;
                socket.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok(Sender::Udp(socket, target))
            }
        }
    }

    fn send(&self, message: &[u8]) -> bool {
        match self {
            Sender::Unix(socket, path) => socket.send_to(message, path).is_ok(),
            Sender::Udp(socket, target) => socket.send_to(message, target).is_ok(),
        }
    }
}

/// Starts a relay for `syslog` and makes each of `onto` write to it.
/// Call it while this process has no other thread.
pub(crate) fn start(syslog: &Syslog, onto: &[RawFd]) -> Result<(), MasterError> {
    let system = |call| move |source| MasterError::System { call, source };
    // Resolved and opened here, so a bad address stops the start.
    let sender = Sender::open(&syslog.addr).map_err(MasterError::Syslog)?;
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(system("pipe2"))?;
    // SAFETY: called before any thread exists (the master's start, or a
    // lone process before its runtime): the child may do anything.
    match unsafe { nix::unistd::fork() }.map_err(system("fork"))? {
        ForkResult::Child => {
            drop(write);
            relay(read, &sender, syslog)
        }
        ForkResult::Parent { .. } => {
            drop(read);
            for &fd in onto {
                // SAFETY: dup2 replaces `fd` (stdout, stderr, or the
                // request lines' descriptor, none owned by a Rust object)
                // with the pipe's writing end.
                if unsafe { libc::dup2(write.as_raw_fd(), fd) } < 0 {
                    return Err(MasterError::System { call: "dup2", source: nix::Error::last() });
                }
            }
            Ok(())
        }
    }
}

/// A fresh descriptor for request lines sent to syslog (`req-logger`),
/// pointed at a relay of their own.
pub(crate) fn start_for_requests(syslog: &Syslog) -> Result<(), MasterError> {
    // A descriptor that lives as long as the process, replaced by the
    // pipe below; its number is what the request log writes to.
    let placeholder = std::fs::File::open("/dev/null")
        .map_err(|source| MasterError::Log { path: "/dev/null".into(), source })?;
    let fd = std::os::fd::IntoRawFd::into_raw_fd(placeholder);
    start(syslog, &[fd])?;
    rwsgi_log::send_requests_to(fd);
    Ok(())
}

/// The relay's life: lines from `read` to syslog until every writer has
/// gone. Never returns.
fn relay(read: OwnedFd, sender: &Sender, syslog: &Syslog) -> ! {
    for stop in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGPIPE]
    {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { signal(stop, SigHandler::SigIgn) };
    }
    close_others(read.as_raw_fd(), sender);
    let _ = nix::unistd::setsid();
    // SAFETY: the descriptor is ours (from the pipe), owned by `input` alone.
    let mut input =
        unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(read)) };
    let mut pending: Vec<u8> = Vec::with_capacity(LONGEST_LINE);
    let mut chunk = vec![0u8; LONGEST_LINE];
    let mut dropped = 0u64;
    let send = |line: &[u8], dropped: &mut u64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if *dropped > 0 {
            let notice = format!("rwsgi: {dropped} log lines dropped: syslog did not take them");
            if sender.send(&syslog.message(now, notice.as_bytes())) {
                *dropped = 0;
            }
        }
        if !sender.send(&syslog.message(now, line)) {
            *dropped += 1;
        }
    };
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            send(&pending[start..start + end], &mut dropped);
            start += end + 1;
        }
        pending.drain(..start);
        while pending.len() >= LONGEST_LINE {
            send(&pending[..LONGEST_LINE], &mut dropped);
            pending.drain(..LONGEST_LINE);
        }
    }
    if !pending.is_empty() {
        send(&pending, &mut dropped);
    }
    // SAFETY: ends this process at once, without running the parent's
    // exit handlers (the interpreter's among them) a second time.
    unsafe { libc::_exit(0) }
}

/// Closes every descriptor the relay inherited but does not use (listening
/// sockets, log files): it may outlive the server by a little, and must
/// not keep a port bound.
fn close_others(read: RawFd, sender: &Sender) {
    let socket = match sender {
        Sender::Unix(socket, _) => socket.as_raw_fd(),
        Sender::Udp(socket, _) => socket.as_raw_fd(),
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let open: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd > 2 && fd != read && fd != socket)
        .collect();
    for fd in open {
        // SAFETY: closing a descriptor nothing in this process uses any
        // more (the child only runs `relay`, which uses `read` and the
        // socket); the one read_dir used is already closed.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_refuse_what_cannot_be_resolved() {
        assert!(Sender::open(&SyslogAddr::Udp("no-such-host.invalid:514".into())).is_err());
        assert!(Sender::open(&SyslogAddr::Udp("127.0.0.1:5140".into())).is_ok());
        assert!(Sender::open(&SyslogAddr::Unix("/nonexistent/log".into())).is_ok());
    }
}
