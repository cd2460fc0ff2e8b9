//! Accepted connections, registered with the runtime only when they must wait.
//!
//! Most connections never wait: nginx writes a uwsgi or FastCGI request
//! right after connecting, so it is there when we accept, and a small
//! response fits the socket buffer. Registering such a socket with epoll
//! would cost an `epoll_ctl` add and delete and a trip through
//! `epoll_wait` for nothing, so a [`LazyStream`] reads and writes the
//! non-blocking socket directly and registers only when an operation would
//! block. From then on tokio drives it as usual.

use rwsgi_proto::LentBody;
use socket2::{SockAddr, Socket};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// What the connection loop needs of an accepted stream beyond async I/O:
/// reading without waiting, waiting without a buffer, and sending a file
/// straight from the page cache.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads what is there now into `buf`'s spare room (appending), without
    /// waiting: `WouldBlock` when nothing is.
    fn try_read_buf(&mut self, buf: &mut impl bytes::BufMut) -> io::Result<usize>;

    /// As [`Self::try_read_buf`], into up to `first_max` bytes of lent
    /// memory's room (across its parts: [`LentBody::room`]) and then up to
    /// `then_max` of `then`'s spare room, in one `readv`: a body's bytes
    /// straight into the memory, the framing after them (a record's
    /// padding, the next header) into the read buffer. How many bytes went
    /// into each.
    fn try_read_split(
        &mut self,
        first: &mut LentBody,
        first_max: usize,
        then: &mut impl bytes::BufMut,
        then_max: usize,
    ) -> io::Result<(usize, usize)>;

    /// Ready once a read would not block. The caller holds no buffer
    /// meanwhile: what an idle connection costs is what it keeps here.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Makes closing reset the connection (TCP RST, `SO_LINGER` 0) instead
    /// of queueing a FIN behind unsent data: for a client that stopped
    /// reading, whose response the kernel would otherwise keep trying to
    /// send after the close.
    fn reset_on_close(&mut self);

    /// Sends `len` bytes of `file` from `offset` with `sendfile(2)`.
    fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = io::Result<()>> + Send;
}

/// A tokio stream type that a non-blocking socket can become.
pub(crate) trait Register: AsyncRead + AsyncWrite + AsFd + Unpin + Send + 'static {
    /// Registers `socket` with the current runtime.
    fn register(socket: Socket) -> io::Result<Self>
    where
        Self: Sized;

    /// Ready once the socket is readable.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// See [`Stream::reset_on_close`]; nothing to do for a unix socket.
    fn reset_on_close(&self);

    /// Waits until the socket is writable.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Runs `op` if the socket is writable, clearing readiness on `WouldBlock`.
    fn try_write_io<R>(&self, op: impl FnOnce() -> io::Result<R>) -> io::Result<R>;

    /// Runs `op` if the socket is readable, clearing readiness on `WouldBlock`.
    fn try_read_io<R>(&self, op: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

macro_rules! impl_register {
    ($tokio:ty, $std:ty, $reset:expr) => {
        impl Register for $tokio {
            fn reset_on_close(&self) {
                let reset: fn(&$tokio) = $reset;
                reset(self);
            }

            fn register(socket: Socket) -> io::Result<Self> {
                <$tokio>::from_std(<$std>::from(OwnedFd::from(socket)))
            }

            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$tokio>::poll_read_ready(self, cx)
            }

            fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$tokio>::writable(self)
            }

            fn try_write_io<R>(&self, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::WRITABLE, op)
            }

            fn try_read_io<R>(&self, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                self.try_io(Interest::READABLE, op)
            }
        }
    };
}

// A zero linger never blocks the close (tokio warns of the others).
impl_register!(tokio::net::TcpStream, std::net::TcpStream, |stream| {
    let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
});
impl_register!(tokio::net::UnixStream, std::os::unix::net::UnixStream, |_| {});

/// An accepted non-blocking socket, registered with the runtime (as `T`)
/// the first time an operation on it would block.
pub(crate) enum LazyStream<T> {
    Direct(Socket),
    Registered(T),
    /// Only while registering; an error there leaves it so and every later
    /// operation fails.
    Gone,
}

impl<T: Register> LazyStream<T> {
    /// Wraps a socket accepted with `SOCK_NONBLOCK`.
    pub(crate) fn new(socket: Socket) -> Self {
        LazyStream::Direct(socket)
    }

    /// The registered stream, registering it now if need be.
    fn registered(&mut self) -> io::Result<&mut T> {
        if let LazyStream::Direct(_) = self {
            let LazyStream::Direct(socket) = std::mem::replace(self, LazyStream::Gone) else {
                unreachable!("matched just above")
            };
            *self = LazyStream::Registered(T::register(socket)?);
        }
        match self {
            LazyStream::Registered(stream) => Ok(stream),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "socket registration failed")),
        }
    }

    /// Tries `op` on the bare socket; `None` when it would block (the
    /// caller then registers and lets tokio wait).
    fn direct<R>(&self, mut op: impl FnMut(&Socket) -> io::Result<R>) -> Option<io::Result<R>> {
        let LazyStream::Direct(socket) = self else { return None };
        loop {
            match op(socket) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                done => return Some(done),
            }
        }
    }

    fn poll_registered<R>(
        &mut self,
        poll: impl FnOnce(Pin<&mut T>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match self.registered() {
            Ok(stream) => poll(Pin::new(stream)),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl<T: Register> AsyncRead for LazyStream<T> {
    // Reading straight into the caller's uninitialised buffer, as tokio's
    // own streams do, instead of zeroing 16 KiB before every read.
    #[allow(unsafe_code)]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: `recv` only writes into the slice (it never de-initialises
        // bytes), and we mark as initialised exactly the `n` bytes it wrote.
        let unfilled: &mut [MaybeUninit<u8>] = unsafe { buf.unfilled_mut() };
        if let Some(done) = this.direct(|socket| socket.recv(unfilled)) {
            let n = done?;
            // SAFETY: the first `n` bytes of the unfilled part were just written.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.poll_registered(|stream| stream.poll_read(cx, buf))
    }
}

impl<T: Register> AsyncWrite for LazyStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.direct(|socket| socket.send(buf)) {
            return Poll::Ready(done);
        }
        this.poll_registered(|stream| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.direct(|socket| socket.send_vectored(bufs)) {
            return Poll::Ready(done);
        }
        this.poll_registered(|stream| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LazyStream::Registered(stream) => Pin::new(stream).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(done) = this.direct(|socket| socket.shutdown(std::net::Shutdown::Write)) {
            return Poll::Ready(done);
        }
        this.poll_registered(|stream| stream.poll_shutdown(cx))
    }
}

impl<T: Register> Stream for LazyStream<T> {
    // Reading straight into the buffer's spare room, uninitialised, as
    // tokio's own reads do.
    #[allow(unsafe_code)]
    fn try_read_buf(&mut self, buf: &mut impl bytes::BufMut) -> io::Result<usize> {
        // SAFETY: only written to below (by the kernel or tokio's read),
        // never de-initialised.
        let room = unsafe { buf.chunk_mut().as_uninit_slice_mut() };
        let n = match self {
            LazyStream::Direct(socket) => loop {
                match socket.recv(room) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    done => break done?,
                }
            },
            // A poll that need not wake anyone: tokio's read keeps track of
            // readiness (a read that leaves room means the socket is
            // drained, so the next one waits for the kernel, not a syscall).
            LazyStream::Registered(stream) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut read = ReadBuf::uninit(room);
                match Pin::new(stream).poll_read(&mut cx, &mut read) {
                    Poll::Ready(done) => done.map(|()| read.filled().len())?,
                    Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
                }
            }
            LazyStream::Gone => return Err(io::ErrorKind::NotConnected.into()),
        };
        // SAFETY: the read wrote `n` bytes at the start of the spare room.
        unsafe { buf.advance_mut(n) };
        Ok(n)
    }

    // One `readv` into the lent memory's room and a buffer's spare room,
    // uninitialised, as above.
    #[allow(unsafe_code)]
    fn try_read_split(
        &mut self,
        first: &mut LentBody,
        first_max: usize,
        then: &mut impl bytes::BufMut,
        then_max: usize,
    ) -> io::Result<(usize, usize)> {
        let (n, room) = {
            let head = first.room(first_max);
            let room = head.iter().map(|slice| slice.len()).sum();
            // SAFETY: only written to below (by the kernel), never
            // de-initialised.
            let tail = unsafe { then.chunk_mut().as_uninit_slice_mut() };
            let tail_room = tail.len().min(then_max);
            let mut bufs: Vec<_> = head.into_iter().map(socket2::MaybeUninitSlice::new).collect();
            bufs.push(socket2::MaybeUninitSlice::new(&mut tail[..tail_room]));
            let mut recv = |socket: socket2::SockRef<'_>| loop {
                match socket.recv_vectored(&mut bufs) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    done => break done.map(|(n, _)| n),
                }
            };
            let n = match self {
                LazyStream::Direct(socket) => recv(socket2::SockRef::from(&*socket))?,
                LazyStream::Registered(stream) => {
                    stream.try_read_io(|| recv(socket2::SockRef::from(&*stream)))?
                }
                LazyStream::Gone => return Err(io::ErrorKind::NotConnected.into()),
            };
            (n, room)
        };
        let (into_first, into_then) = (n.min(room), n.saturating_sub(room));
        // SAFETY: the read wrote `n` bytes: the first `room` into `first`'s
        // room, in order, the rest at the start of `then`'s spare room.
        unsafe {
            bytes::BufMut::advance_mut(first, into_first);
            then.advance_mut(into_then);
        }
        Ok((into_first, into_then))
    }

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.registered() {
            Ok(stream) => stream.poll_read_ready(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn reset_on_close(&mut self) {
        match self {
            // Harmless on a unix socket, which has no linger to set.
            LazyStream::Direct(socket) => drop(socket.set_linger(Some(std::time::Duration::ZERO))),
            LazyStream::Registered(stream) => stream.reset_on_close(),
            LazyStream::Gone => {}
        }
    }

    async fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        let stream = self.registered()?;
        let mut offset = i64::try_from(offset).map_err(io::Error::other)?;
        let mut left = len;
        while left > 0 {
            stream.writable().await?;
            let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            let sent = stream.try_write_io(|| {
                nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), chunk)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than expected",
                    ));
                }
                Ok(n) => left -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A listening socket whose readiness the runtime watches. Accepted
/// sockets come out non-blocking and unregistered.
pub(crate) struct Acceptor {
    fd: AsyncFd<Socket>,
}

impl Acceptor {
    /// Registers a non-blocking listening socket with the current runtime.
    #[allow(unsafe_code)]
    pub(crate) fn new(listener: OwnedFd) -> io::Result<Self> {
        // SAFETY: the `Socket` owns its descriptor and the `AsyncFd` owns the
        // `Socket`, so the descriptor stays open, and is the same one, for
        // as long as it is registered.
        let fd =
            unsafe { AsyncFd::register_with_interest(Socket::from(listener), Interest::READABLE) };
        Ok(Acceptor { fd: fd.map_err(io::Error::from)? })
    }

    /// The next connection, waiting for one if the queue is empty.
    pub(crate) async fn accept(&self) -> io::Result<(Socket, SockAddr)> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        self.fd.async_io(Interest::READABLE, |socket| socket.accept4(flags)).await
    }

    /// Makes the backlog as small as the kernel allows (`listen(0)` again:
    /// the queue keeps what it has, a connection more at most), so that
    /// new connections are refused or dropped while the queued ones are
    /// taken. For every process sharing the socket.
    pub(crate) fn stop_queueing(&self) {
        let _ = self.fd.get_ref().listen(0);
    }

    /// A connection the kernel already queued, without waiting:
    /// `WouldBlock` when there is none.
    pub(crate) fn try_accept(&self) -> io::Result<(Socket, SockAddr)> {
        self.fd.get_ref().accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// A connected pair: the client end (blocking, std) and the accepted
    /// end as a `LazyStream`, through a real listener and `Acceptor`.
    async fn pair() -> (std::os::unix::net::UnixStream, LazyStream<tokio::net::UnixStream>) {
        let dir = std::env::temp_dir().join(format!("rwsgi-lazy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:?}.sock", std::thread::current().id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let acceptor = Acceptor::new(OwnedFd::from(listener)).unwrap();
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (socket, _) = acceptor.accept().await.unwrap();
        std::fs::remove_file(&path).unwrap();
        (client, LazyStream::new(socket))
    }

    #[test]
    fn data_already_there_is_read_and_answered_without_registering() {
        runtime().block_on(async {
            let (mut client, mut server) = pair().await;
            std::io::Write::write_all(&mut client, b"ping").unwrap();
            let mut buf = Vec::with_capacity(64);
            assert_eq!(server.read_buf(&mut buf).await.unwrap(), 4);
            assert_eq!(buf, b"ping");
            server.write_all(b"pong").await.unwrap();
            assert!(matches!(server, LazyStream::Direct(_)), "registered without need");
            drop(server);
            let mut answer = String::new();
            std::io::Read::read_to_string(&mut client, &mut answer).unwrap();
            assert_eq!(answer, "pong");
        });
    }

    #[test]
    fn a_read_that_would_block_registers_and_waits() {
        runtime().block_on(async {
            let (mut client, mut server) = pair().await;
            let writer = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                std::io::Write::write_all(&mut client, b"late").unwrap();
                client
            });
            let mut buf = Vec::with_capacity(64);
            assert_eq!(server.read_buf(&mut buf).await.unwrap(), 4);
            assert_eq!(buf, b"late");
            assert!(matches!(server, LazyStream::Registered(_)));
            drop(writer.join().unwrap());
            buf.clear();
            assert_eq!(server.read_buf(&mut buf).await.unwrap(), 0, "EOF after the peer closed");
        });
    }

    #[test]
    fn try_read_takes_what_is_there_and_read_ready_waits_for_more() {
        runtime().block_on(async {
            let (mut client, mut server) = pair().await;
            let mut buf = bytes::BytesMut::with_capacity(64);
            let err = server.try_read_buf(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            std::io::Write::write_all(&mut client, b"here").unwrap();
            std::future::poll_fn(|cx| server.poll_read_ready(cx)).await.unwrap();
            assert_eq!(server.try_read_buf(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..], b"here");
            let writer = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                std::io::Write::write_all(&mut client, b"later").unwrap();
                client
            });
            // Readiness may be stale (it was last seen before "here" was
            // read): a read that would block clears it, and the wait is real.
            let n = loop {
                std::future::poll_fn(|cx| server.poll_read_ready(cx)).await.unwrap();
                match server.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    read => break read.unwrap(),
                }
            };
            assert_eq!(n, 5);
            assert_eq!(&buf[..], b"herelater");
            drop(writer.join().unwrap());
        });
    }

    #[test]
    fn a_write_larger_than_the_socket_buffer_registers_and_completes() {
        runtime().block_on(async {
            let (client, mut server) = pair().await;
            let reader = std::thread::spawn(move || {
                let mut all = Vec::new();
                std::io::Read::read_to_end(&mut &client, &mut all).unwrap();
                all.len()
            });
            let big = vec![7u8; 4 << 20];
            server.write_all(&big).await.unwrap();
            assert!(matches!(server, LazyStream::Registered(_)));
            drop(server);
            assert_eq!(reader.join().unwrap(), big.len());
        });
    }
}
