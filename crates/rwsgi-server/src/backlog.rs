//! A listening socket's accept queue, read from the kernel: `TCP_INFO`
//! for TCP, `sock_diag` for unix sockets: what the master's stats and
//! its full-queue check read, beside the listeners it describes.
//!
//! The kernel is asked with `getsockopt` and a netlink socket: this module
//! is allowed unsafe code, each block with its SAFETY comment.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

/// A listening socket's accept queue, TCP or unix: (waiting, the
/// backlog's size); `None` if the kernel cannot tell.
pub fn accept_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    listen_queue(fd).or_else(|| unix_listen_queue(fd))
}

/// `TCP_LISTEN` of the kernel's TCP states (`include/net/tcp_states.h`).
const TCP_LISTEN: u8 = 10;

/// A listening TCP socket's accept queue: (waiting, the backlog's size),
/// from the kernel (`TCP_INFO`); `None` for other sockets.
fn listen_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most
    // `len` bytes into it and reports how many.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let status = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    // For a listening socket the kernel reports the accept queue in
    // `unacked` and its limit in `sacked`.
    (status == 0 && info.tcpi_state == TCP_LISTEN).then_some((info.tcpi_unacked, info.tcpi_sacked))
}

/// A listening unix socket's accept queue: (waiting, the backlog's size),
/// asked of the kernel through `sock_diag` (`UNIX_DIAG_RQLEN`); `None` if
/// it cannot tell.
fn unix_listen_queue(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: fstat fills the zeroed buffer for `fd` and nothing else.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    let inode = u32::try_from(stat.st_ino).ok()?;
    // SAFETY: a plain socket(2) call; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let netlink = unsafe { OwnedFd::from_raw_fd(raw) };
    let request = diag_request(inode);
    // SAFETY: an all-zero sockaddr_nl addresses the kernel; both buffers
    // are live for the calls and their lengths are theirs.
    let sent = unsafe {
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        libc::sendto(
            netlink.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if usize::try_from(sent).ok() != Some(request.len()) {
        return None;
    }
    let mut reply = [0u8; 1024];
    // SAFETY: receives into a live buffer of its length; MSG_DONTWAIT after
    // a short wait keeps the master from blocking on a silent kernel.
    let mut pollfd = libc::pollfd { fd: netlink.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    if unsafe { libc::poll(&mut pollfd, 1, 50) } != 1 {
        return None;
    }
    let got = unsafe {
        libc::recv(netlink.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), libc::MSG_DONTWAIT)
    };
    parse_rqlen(&reply[..usize::try_from(got).ok()?])
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_RQLEN: u16 = 4;
const NLMSG_HEADER: usize = 16;
const UNIX_DIAG_MSG: usize = 16;

/// `nlmsghdr` + `unix_diag_req` asking about one listening socket.
fn diag_request(inode: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&40u32.to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    out.extend_from_slice(&[0; 8]); // sequence, port id
    out.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    out.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    out.extend_from_slice(&inode.to_ne_bytes());
    out.extend_from_slice(&UDIAG_SHOW_RQLEN.to_ne_bytes());
    out.extend_from_slice(&[0xff; 8]); // no cookie
    out
}

/// The `UNIX_DIAG_RQLEN` attribute of a `sock_diag` reply.
fn parse_rqlen(reply: &[u8]) -> Option<(u32, u32)> {
    let word =
        |at: usize| reply.get(at..at + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let half = |at: usize| reply.get(at..at + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let length = usize::try_from(word(0)?).ok()?.min(reply.len());
    if half(4)? == NLMSG_ERROR {
        return None;
    }
    let mut at = NLMSG_HEADER + UNIX_DIAG_MSG;
    while at + 4 <= length {
        let attr_len = usize::from(half(at)?);
        if attr_len < 4 {
            return None;
        }
        if half(at + 2)? == UNIX_DIAG_RQLEN {
            return Some((word(at + 4)?, word(at + 8)?));
        }
        at += (attr_len + 3) & !3;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    #[test]
    fn a_unix_listen_queue_is_read_from_the_kernel() {
        let path = std::env::temp_dir().join(format!("rwsgi-queue-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let waiting: Vec<_> =
            (0..3).map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap()).collect();
        let (queue, backlog) = unix_listen_queue(listener.as_fd()).expect("sock_diag answers");
        assert_eq!(queue, 3, "three connections not accepted yet");
        assert!(backlog >= 3, "the backlog: {backlog}");
        drop(waiting);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_tcp_listen_queue_is_read_from_the_kernel() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let waiting: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(50));
        let (queue, backlog) = listen_queue(listener.as_fd()).unwrap();
        assert_eq!(queue, 2);
        assert!(backlog >= 2);
        drop(waiting);
    }
}
