//! One connection's socket and buffers: reads that hold no buffer while
//! they wait, writes within `socket-timeout`, `sendfile`, and the
//! lingering close. It knows no protocol.

use crate::stream::Stream;
use bytes::{BufMut, BytesMut};
use rwsgi_proto::{ConnInfo, Frame, InPlace, LentBody, OutBuf, ProtoError, ServerCodec};
use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout, timeout_at};

/// Room made in the read buffer before a read: the first read of a request
/// gets the smallest (a head fits, and a waiting connection pins no more),
/// each read that fills it doubles it, up to the largest (bulk bodies).
const MIN_READ: usize = 4 * 1024;
const MAX_READ: usize = 64 * 1024;
/// What a read for a body the app waits for takes at most ([`Transport::fill_bulk`]):
/// all the kernel holds, so that one trip between the app's thread and
/// this one answers several of its reads. Only a running request reads
/// its body on demand, so a worker holds at most one such buffer per
/// Python thread.
const BULK_READ: usize = 512 * 1024;
/// A body sent unframed is read into one buffer of its size (see
/// [`Transport::gather`]) once this much of it (and a sixteenth) came
/// without a wait, if it all comes within `GATHER_TIME`, and while the
/// worker's buffers waiting so stay within `GATHER_BUDGET`.
const GATHER_AFTER: usize = 64 * 1024;
const GATHER_TIME: Duration = Duration::from_secs(1);
/// How long a read may wait for more of a body before [`GATHER_AFTER`] is
/// reached: TCP delivers a fast client's body in bursts, with gaps.
const GATHER_PATIENCE: Duration = Duration::from_millis(2);
const GATHER_BUDGET: usize = 64 << 20;
/// How long [`Transport::gather`] waits for lent memory before it reads on
/// into its own buffer (see [`Lending::wait_briefly`]).
const LEND_WAIT: Duration = Duration::from_millis(5);
/// After an error, how much unread input we drain so the peer reads our
/// answer instead of a reset (a "lingering close", as nginx does).
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);
/// Buffers kept for reuse by the worker's thread: enough for the
/// connections busy at once, not one per waiting connection.
const SPARE_BUFFERS: usize = 64;

thread_local! {
    /// Buffers of connections that went idle, for the next that reads or
    /// writes: a keep-alive connection waits holding none, yet a busy
    /// worker does not allocate (and set up for sharing) two buffers a
    /// request. The runtime is single-threaded, so this is the worker's.
    static SPARE: RefCell<(Vec<BytesMut>, Vec<OutBuf>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Bytes of the buffers [`Transport::gather`] holds while it waits.
    static GATHERING: Cell<usize> = const { Cell::new(0) };
}

#[cfg(test)]
thread_local! {
    /// Body bytes copied from the read buffer into lent memory: the tests
    /// check that a body in records is read in place, not copied.
    static ABSORBED: Cell<usize> = const { Cell::new(0) };
    /// Reads into lent memory that brought bytes: the tests check that a
    /// body lent in parts is not read a part at a time.
    static READS_IN_PLACE: Cell<usize> = const { Cell::new(0) };
}

/// A buffer's share of the worker's [`GATHER_BUDGET`], given back on drop
/// (also when the connection's task is dropped mid-wait).
struct Gathering(usize);

impl Gathering {
    fn reserve(len: usize) -> Option<Gathering> {
        let held = GATHERING.get();
        (held + len <= GATHER_BUDGET).then(|| {
            GATHERING.set(held + len);
            Gathering(len)
        })
    }
}

impl Drop for Gathering {
    fn drop(&mut self) {
        GATHERING.set(GATHERING.get() - self.0);
    }
}

pub(super) struct Transport<S> {
    io: S,
    /// Both ends, for the environ and log lines.
    pub(super) info: ConnInfo,
    /// The protocol's name, for log lines.
    protocol: &'static str,
    /// Each write's deadline (`socket-timeout`).
    write_timeout: Duration,
    /// Read and not yet decoded. Allocated at the first read that finds
    /// bytes (see [`Transport::fill`]).
    pub(super) rbuf: BytesMut,
    /// How much room the next read makes (see [`MIN_READ`]).
    read_size: usize,
    /// Encoded and not yet written.
    pub(super) out: OutBuf,
    /// Bytes read since the last request was counted (see
    /// [`crate::Answered::received`]).
    pub(super) received: u64,
}

impl<S: Stream> Transport<S> {
    pub(super) fn new(
        io: S,
        info: ConnInfo,
        protocol: &'static str,
        write_timeout: Duration,
    ) -> Self {
        Transport {
            io,
            info,
            protocol,
            write_timeout,
            rbuf: BytesMut::new(),
            read_size: MIN_READ,
            out: OutBuf::new(),
            received: 0,
        }
    }

    /// Reads more input. A read that has to wait holds no spare buffer
    /// meanwhile: a connection idle between requests keeps none, one
    /// waiting for the rest of its head only the bytes it has, so that
    /// thousands of waiting connections cost little memory.
    pub(super) async fn fill(&mut self) -> io::Result<usize> {
        loop {
            match self.try_fill() {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            self.release_spare();
            self.read_size = MIN_READ;
            std::future::poll_fn(|cx| self.io.poll_read_ready(cx)).await?;
        }
    }

    /// As [`Self::fill`], for a body the app waits for: a read that finds
    /// input takes up to [`BULK_READ`] of it. After a wait the reads are
    /// sized as [`Self::fill`]'s, so that a client sending a byte at a
    /// time does not cost a bulk buffer a byte.
    pub(super) async fn fill_bulk(&mut self) -> io::Result<usize> {
        self.read_size = BULK_READ;
        self.fill().await
    }

    /// Reads what is there now, without waiting: `WouldBlock` when nothing is.
    pub(super) fn try_fill(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() == 0 || self.out.capacity() == 0 {
            self.take_spare_buffers();
        }
        self.rbuf.reserve(self.read_size);
        let room = self.rbuf.capacity() - self.rbuf.len();
        let read = self.read_now();
        if read.as_ref().is_ok_and(|&n| n == room) {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        read
    }

    /// Spare buffers in place of those this connection gave back (or never
    /// had): a read that finds bytes usually leads to a response.
    fn take_spare_buffers(&mut self) {
        SPARE.with_borrow_mut(|(reads, outs)| {
            if self.rbuf.capacity() == 0
                && let Some(spare) = reads.pop()
            {
                self.rbuf = spare;
            }
            if self.out.capacity() == 0
                && let Some(spare) = outs.pop()
            {
                self.out = spare;
            }
        });
    }

    /// Reads into the room the read buffer has, without waiting.
    fn read_now(&mut self) -> io::Result<usize> {
        let read = self.io.try_read_buf(&mut self.rbuf);
        if let Ok(n) = read {
            self.received += n as u64;
        }
        read
    }

    /// Reads a body of `len` bytes (known length) into one allocation, so
    /// that it reaches the responder as the one piece it was read into, not
    /// copied together from pieces: into memory the responder lends
    /// (`lend`, asked once the gathering starts), which it then takes as it
    /// is. The codec says how the body lies on the wire
    /// ([`ServerCodec::body_in_place`]): each read takes the body bytes
    /// that come next straight into that memory, and the framing after
    /// them (FastCGI's record headers) into the read buffer, for the codec.
    /// Without lent memory, a body sent unframed is read into a buffer of
    /// its size instead; a framed one is left to be read piece by piece.
    ///
    /// Only for a client that keeps up, so that a slow one cannot make us
    /// hold a buffer of its declared size: one that has sent less than
    /// [`GATHER_AFTER`] (and a sixteenth of `len`) when a read would have
    /// to wait keeps its buffer as it is, and one that has not sent the
    /// whole within [`GATHER_TIME`] stops there. Buffers waiting so hold
    /// at most [`GATHER_BUDGET`] per worker; beyond, bodies are not
    /// gathered.
    pub(super) async fn gather<C: ServerCodec, F>(
        &mut self,
        codec: &mut C,
        len: usize,
        lend: impl FnOnce(usize) -> F,
    ) -> Result<Gathered<C::Head>, ProtoError>
    where
        F: Future<Output = Option<LentBody>>,
    {
        let mut gathered = Gathered { lent: None, frame: None };
        if len <= GATHER_AFTER {
            // Too short to gather: read as it comes.
            return Ok(gathered);
        }
        // The whole body comes as it is: a buffer of its size can hold it.
        let unframed = codec.body_in_place().is_some_and(|place| place.body >= len as u64);
        let deadline = Instant::now() + GATHER_TIME;
        // Bulk reads from the start: growing the buffer from a head's size
        // would copy what came so far at each step.
        self.read_size = MAX_READ;
        let mut share = None;
        let mut lend = Some(lend);
        let mut lending: Option<Lending<F>> = None;
        loop {
            match &mut gathered.lent {
                Some(lent) => {
                    // What the read buffer holds goes in first, decoded.
                    gathered.frame = self.absorb(codec, lent)?;
                    if lent.is_full() || gathered.frame.is_some() {
                        break;
                    }
                    if self.rbuf.is_empty() && self.rbuf.capacity() > MAX_READ {
                        // A buffer of the body's size, emptied into the memory.
                        self.rbuf = BytesMut::new();
                    }
                }
                None if unframed && self.rbuf.len() >= len => break,
                None => {}
            }
            if share.is_none() && self.rbuf.len() >= GATHER_AFTER.max(len / 16) {
                let Some(reserved) = Gathering::reserve(len) else { break };
                share = Some(reserved);
                if let Some(lend) = lend.take() {
                    let mut asked = Lending::new(lend(len));
                    gathered.lent = fits(asked.wait_briefly().await, len);
                    lending = Some(asked);
                }
                match gathered.lent {
                    Some(_) => continue,
                    // Framed, it would be copied out of any buffer of ours:
                    // piece by piece, as it comes.
                    None if !unframed => break,
                    None => {
                        // One copy of what is here, into a buffer of the body's size.
                        let mut buffer = BytesMut::with_capacity(len);
                        buffer.extend_from_slice(&self.rbuf);
                        self.rbuf = buffer;
                    }
                }
            }
            let read = match (&mut gathered.lent, codec.body_in_place()) {
                (Some(lent), Some(place)) => {
                    self.read_in_place(lent, place).map(|(body, framing)| {
                        codec.body_taken(body as u64);
                        body + framing
                    })
                }
                // The codec has no more body to read in place.
                (Some(_), None) => break,
                // A buffer of the body's size has room for the rest
                // exactly: nothing past the body is read into it.
                (None, _) if share.is_some() => self.read_now(),
                (None, _) => self.try_fill(),
            };
            match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if share.is_none() {
                        // Between two packets of a client that keeps up, or
                        // a client that does not: it has a moment to tell.
                        let ready = std::future::poll_fn(|cx| self.io.poll_read_ready(cx));
                        match timeout(GATHER_PATIENCE, ready).await {
                            Ok(ready) => {
                                ready?;
                                continue;
                            }
                            Err(_) => {
                                // Not keeping up: the bulk-sized buffer
                                // goes, what came stays, at its size.
                                self.trim_read_buffer();
                                break;
                            }
                        }
                    }
                    let ready = std::future::poll_fn(|cx| self.io.poll_read_ready(cx));
                    let memory = std::future::poll_fn(|cx| match &mut lending {
                        Some(lending) if gathered.lent.is_none() => lending.poll_lent(cx),
                        _ => Poll::Pending,
                    });
                    tokio::select! {
                        biased;
                        memory = memory => gathered.lent = fits(memory, len),
                        ready = timeout_at(deadline, ready) => match ready {
                            Ok(ready) => ready?,
                            Err(_) => break,
                        },
                    }
                }
                Err(err) => return Err(err.into()),
            }
            if gathered.lent.is_none() {
                gathered.lent = fits(lending.as_mut().and_then(Lending::lent_now), len);
            }
        }
        if gathered.lent.is_none() && share.is_some() && unframed {
            self.trim_read_buffer();
        }
        Ok(gathered)
    }

    /// Decodes the body bytes the read buffer holds into `lent`, until it
    /// is full: a frame other than body data (the body's early end, an
    /// abort) stops it and is returned.
    fn absorb<C: ServerCodec>(
        &mut self,
        codec: &mut C,
        lent: &mut LentBody,
    ) -> Result<Option<Frame<C::Head>>, ProtoError> {
        while !lent.is_full() {
            match self.decode(codec)? {
                Some(Frame::Data(data)) if data.len() <= lent.remaining_mut() => {
                    #[cfg(test)]
                    ABSORBED.set(ABSORBED.get() + data.len());
                    lent.put_slice(&data);
                }
                Some(Frame::Data(_)) => {
                    return Err(ProtoError::BadRequest("request body longer than its length"));
                }
                None => break,
                Some(other) => return Ok(Some(other)),
            }
        }
        Ok(None)
    }

    /// Reads, without waiting, the body bytes that come next into `lent`
    /// and the framing after them into the read buffer, in one read. How
    /// many bytes went into each.
    fn read_in_place(&mut self, lent: &mut LentBody, place: InPlace) -> io::Result<(usize, usize)> {
        let body = usize::try_from(place.body).unwrap_or(usize::MAX);
        let framing = place.framing.min(MAX_READ);
        self.rbuf.reserve(framing);
        let read = self.io.try_read_split(lent, body, &mut self.rbuf, framing);
        if let Ok((body, framing)) = read {
            self.received += (body + framing) as u64;
            #[cfg(test)]
            READS_IN_PLACE.set(READS_IN_PLACE.get() + usize::from(body + framing > 0));
        }
        read
    }

    /// Decodes the next frame from the read buffer, and moves what the
    /// codec produced on its own into the output.
    pub(super) fn decode<C: ServerCodec>(
        &mut self,
        codec: &mut C,
    ) -> Result<Option<Frame<C::Head>>, ProtoError> {
        let frame = codec.decode(&mut self.rbuf);
        codec.take_control(&mut self.out);
        frame
    }

    /// As [`Self::decode`], at the end of the input.
    pub(super) fn decode_eof<C: ServerCodec>(
        &mut self,
        codec: &mut C,
    ) -> Result<Option<Frame<C::Head>>, ProtoError> {
        let frame = codec.decode_eof(&mut self.rbuf);
        codec.take_control(&mut self.out);
        frame
    }

    /// Gives back the memory a waiting connection does not need: the
    /// output buffers, and the read buffer beyond the bytes it holds.
    fn release_spare(&mut self) {
        self.give_back_empty_buffers();
        if !self.rbuf.is_empty() {
            self.trim_read_buffer();
        }
    }

    /// Keeps in the read buffer only the room its bytes take.
    fn trim_read_buffer(&mut self) {
        if self.rbuf.capacity() > self.rbuf.len() {
            self.rbuf = BytesMut::from(&self.rbuf[..]);
        }
    }

    /// Writes everything queued, within `socket-timeout`. Most flushes
    /// complete at the first try: the timer (a clock read, and a place in
    /// the timer wheel once it waits) is set only when one has to wait.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
        let io = &mut self.io;
        let out = &mut self.out;
        // A poll function, not an async block: the slices live on the stack
        // of each try, not in the future, which every step that flushes
        // holds (1 KiB more each, and in a waiting connection's task).
        let mut write_all = std::pin::pin!(std::future::poll_fn(|cx| {
            while !out.is_empty() {
                let written = {
                    let mut slices = [IoSlice::new(&[]); 64];
                    let n = out.io_slices(&mut slices);
                    ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?
                };
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                out.advance(written);
            }
            Poll::Ready(Ok(()))
        }));
        let first_try = std::future::poll_fn(|cx| Poll::Ready(write_all.as_mut().poll(cx))).await;
        let written = match first_try {
            Poll::Ready(done) => Ok(done),
            Poll::Pending => timeout(self.write_timeout, write_all).await,
        };
        written.unwrap_or_else(|_| Err(self.write_timed_out()))
    }

    /// Sends `len` bytes of `file` from `offset` with `sendfile(2)`, after
    /// what is queued. A big file may take long; what must not stall is
    /// each step of it.
    pub(super) async fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        self.flush().await?;
        let limit = self.write_timeout + Duration::from_secs(len >> 20);
        let sent = timeout(limit, self.io.send_file(file, offset, len)).await;
        sent.unwrap_or_else(|_| Err(self.write_timed_out()))
    }

    /// A client that did not take the response within `socket-timeout`:
    /// the connection is reset rather than closed behind what is unsent.
    fn write_timed_out(&mut self) -> io::Error {
        tracing::info!(
            "{} {}: the client took no response bytes for {:?}: connection reset",
            self.info.peer,
            self.protocol,
            self.write_timeout
        );
        self.io.reset_on_close();
        io::ErrorKind::TimedOut.into()
    }

    /// Half-closes, then reads what the peer still sends for a while, so our
    /// last answer is not destroyed by a reset when we close with unread
    /// input (a "lingering close", as nginx does).
    pub(super) async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let _ = timeout(LINGER_TIME, async {
            let mut drained = 0;
            while drained < LINGER_BYTES {
                self.rbuf.clear();
                match self.fill().await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        })
        .await;
    }
}

/// What [`Transport::gather`] read.
pub(super) struct Gathered<H> {
    /// Lent memory with the body's first bytes in it, decoded: the whole
    /// body when it is full; else the rest is read piece by piece.
    pub(super) lent: Option<LentBody>,
    /// A frame other than body data that came within the body: its early
    /// end (a FastCGI stream shorter than `CONTENT_LENGTH`), an abort.
    pub(super) frame: Option<Frame<H>>,
}

/// Lent memory, if it is of the body's size.
fn fits(memory: Option<LentBody>, len: usize) -> Option<LentBody> {
    memory.filter(|memory| memory.size() == len)
}

/// Memory asked of the responder for a body
/// ([`rwsgi_proto::Responder::lend_body`]), until it comes.
struct Lending<F> {
    asked: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = Option<LentBody>>> Lending<F> {
    fn new(asked: F) -> Self {
        Lending { asked: Some(Box::pin(asked)) }
    }

    /// Waits for the memory a little: a pool thread makes it once it runs,
    /// and with one core that is when this thread stops reading. Later,
    /// [`Self::lent_now`] takes it when it comes.
    async fn wait_briefly(&mut self) -> Option<LentBody> {
        timeout(LEND_WAIT, std::future::poll_fn(|cx| self.poll_lent(cx))).await.ok().flatten()
    }

    /// The responder's answer (memory, or none to lend), once; pending
    /// for ever after.
    fn poll_lent(&mut self, cx: &mut Context<'_>) -> Poll<Option<LentBody>> {
        let Some(asked) = &mut self.asked else { return Poll::Pending };
        let answer = asked.as_mut().poll(cx);
        if answer.is_ready() {
            self.asked = None;
        }
        answer
    }

    /// The memory, if it has come.
    fn lent_now(&mut self) -> Option<LentBody> {
        match self.poll_lent(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(memory) => memory,
            Poll::Pending => None,
        }
    }
}

impl<S> Transport<S> {
    /// Empty buffers of a usual size go to the worker's spares.
    fn give_back_empty_buffers(&mut self) {
        if self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            if out.capacity() > 0 && out.capacity() <= MAX_READ {
                // Not while the thread ends (its spares are gone then).
                let _ = SPARE.try_with(|spare| keep(&mut spare.borrow_mut().1, out));
            }
        }
        if self.rbuf.is_empty() {
            let rbuf = std::mem::take(&mut self.rbuf);
            if rbuf.capacity() > 0 && rbuf.capacity() <= MAX_READ {
                let _ = SPARE.try_with(|spare| keep(&mut spare.borrow_mut().0, rbuf));
            }
        }
    }
}

/// A connection that ends gives its buffers to the next: with a connection
/// per request (`uwsgi_pass`, FastCGI without `FCGI_KEEP_CONN`) none ever
/// waits between requests, where buffers are otherwise given back.
impl<S> Drop for Transport<S> {
    fn drop(&mut self) {
        self.give_back_empty_buffers();
    }
}

/// Keeps `buffer` among `spares`, unless there are enough.
fn keep<T>(spares: &mut Vec<T>, buffer: T) {
    if spares.len() < SPARE_BUFFERS {
        spares.push(buffer);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::conn::tests::{pattern, paused, socket_pair};
    use crate::stream::LazyStream;
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixStream;

    const BODY: usize = 300 * 1024;

    /// An HTTP codec that has decoded the head of a POST of [`BODY`]
    /// bytes: the body comes next, unframed.
    fn expecting_body() -> rwsgi_http1::Http1Codec {
        expecting(BODY)
    }

    /// As [`expecting_body`], for a body of `len` bytes.
    fn expecting(len: usize) -> rwsgi_http1::Http1Codec {
        let mut codec = rwsgi_http1::Http1Codec::new(rwsgi_proto::Limits::default());
        let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
        let head =
            tokio_util::codec::Decoder::decode(&mut codec, &mut BytesMut::from(head.as_bytes()));
        assert!(matches!(head, Ok(Some(Frame::Head(_)))));
        codec
    }

    /// Our end of a socket pair as a transport, and the peer's end.
    fn pair() -> (Transport<LazyStream<UnixStream>>, UnixStream) {
        let (stream, info, client) = socket_pair();
        (Transport::new(stream, info, "test", Duration::from_secs(5)), client)
    }

    fn body() -> Vec<u8> {
        pattern(BODY)
    }

    /// A responder with no memory to lend.
    fn no_lend(_: usize) -> std::future::Ready<Option<LentBody>> {
        std::future::ready(None)
    }

    /// A responder that lends memory of the size asked, at once.
    fn lend_at_once(size: usize) -> std::future::Ready<Option<LentBody>> {
        std::future::ready(Some(rwsgi_testkit::lent_heap(size)))
    }

    /// Writes `body` in pieces, yielding between them: more than a socket
    /// buffer holds, so the rest comes while the server reads.
    fn send_keeping_up(mut client: UnixStream, body: &[u8]) -> tokio::task::JoinHandle<UnixStream> {
        let body = body.to_vec();
        tokio::spawn(async move {
            for piece in body.chunks(8 * 1024) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        })
    }

    /// Reads until a gathering would start.
    async fn fast_start(wire: &mut Transport<LazyStream<UnixStream>>) {
        while wire.rbuf.len() < GATHER_AFTER {
            tokio::task::yield_now().await;
            let _ = wire.try_fill();
        }
    }

    #[test]
    fn a_flush_that_fits_the_socket_completes_without_a_wait() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            wire.out.put_slice(b"HTTP/1.1 200 OK\r\n\r\n");
            let started = Instant::now();
            wire.flush().await.unwrap();
            assert_eq!(started.elapsed(), Duration::ZERO);
            let mut got = [0u8; 19];
            tokio::io::AsyncReadExt::read_exact(&mut client, &mut got).await.unwrap();
            assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
        });
    }

    #[test]
    fn a_flush_to_a_peer_that_never_reads_ends_at_the_write_timeout() {
        paused().block_on(async {
            let (mut wire, _client) = pair();
            // More than the socket pair's buffers hold.
            wire.out.put_slice(&pattern(16 * 1024 * 1024));
            let started = Instant::now();
            let err = wire.flush().await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert_eq!(started.elapsed(), Duration::from_secs(5), "socket-timeout, from the wait");
        });
    }

    #[test]
    fn a_body_that_keeps_coming_is_read_into_one_buffer_of_its_size() {
        paused().block_on(async {
            let (mut wire, client) = pair();
            let body = body();
            let writer = send_keeping_up(client, &body);
            fast_start(&mut wire).await;
            let started = Instant::now();
            assert!(
                wire.gather(&mut expecting_body(), BODY, no_lend).await.unwrap().lent.is_none()
            );
            assert!(started.elapsed() < LEND_WAIT, "waited for memory that was not coming");
            assert_eq!((wire.rbuf.len(), wire.rbuf.capacity()), (BODY, BODY));
            assert_eq!(GATHERING.get(), 0, "the budget is given back");
            assert!(wire.rbuf[..] == body[..]);
            drop(writer.await.unwrap());
        });
    }

    #[test]
    fn a_body_that_keeps_coming_is_read_into_memory_lent_at_once_or_later() {
        for late in [false, true] {
            paused().block_on(async {
                let (mut wire, mut client) = pair();
                let body = body();
                let (lending, lent) = flume::bounded(1);
                if !late {
                    lending.send(rwsgi_testkit::lent_heap(BODY)).unwrap();
                }
                // Late: lent once half the body is read, after the server
                // gave up waiting for it and read on into its own buffer.
                let sent = body.clone();
                let writer = tokio::spawn(async move {
                    for (n, piece) in sent.chunks(8 * 1024).enumerate() {
                        if late && n == BODY / 8 / 1024 / 2 {
                            tokio::time::sleep(LEND_WAIT * 2).await;
                            lending.send(rwsgi_testkit::lent_heap(BODY)).unwrap();
                        }
                        client.write_all(piece).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    client
                });
                fast_start(&mut wire).await;
                let lend = |_| async move { lent.recv_async().await.ok() };
                let gathered = wire.gather(&mut expecting_body(), BODY, lend).await.unwrap();
                let mut lent = gathered.lent.expect("read into lent memory");
                assert!(lent.is_full());
                assert!(lent.copy_filled() == body[..], "the body, in order (late: {late})");
                assert_eq!(wire.rbuf.len(), 0, "nothing left in the read buffer");
                assert_eq!(GATHERING.get(), 0, "the budget is given back");
                drop(writer.await.unwrap());
            });
        }
    }

    /// TCP delivers a fast client's body in bursts: a gap shorter than
    /// [`GATHER_PATIENCE`] before [`GATHER_AFTER`] came is not a stall.
    #[test]
    fn a_client_that_pauses_briefly_before_the_threshold_still_keeps_up() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            let body = body();
            let sent = body.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&sent[..40 * 1024]).await.unwrap();
                tokio::time::sleep(GATHER_PATIENCE / 2).await;
                for piece in sent[40 * 1024..].chunks(8 * 1024) {
                    client.write_all(piece).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client
            });
            tokio::task::yield_now().await;
            let gathered = wire.gather(&mut expecting_body(), BODY, lend_at_once).await.unwrap();
            let mut lent = gathered.lent.expect("read into lent memory");
            assert!(lent.copy_filled() == body[..]);
            drop(writer.await.unwrap());
        });
    }

    /// A body lent in parts (as the bridge lends one to an app that reads
    /// in parts) takes no more reads than one lent whole: what the socket
    /// holds goes into as many parts as it fills, in one read.
    #[test]
    fn a_body_lent_in_parts_is_read_across_them_at_once() {
        // Within the socket pair's buffer: all of it there before the
        // gathering, which reads [`MAX_READ`] of it first.
        const SENT: usize = 2 * MAX_READ;
        const PART: usize = 16 * 1024;
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            let body = pattern(SENT);
            client.write_all(&body).await.unwrap();
            READS_IN_PLACE.set(0);
            let lend =
                |size| std::future::ready(Some(rwsgi_testkit::lent_heap_in_parts(size, PART)));
            let gathered = wire.gather(&mut expecting(SENT), SENT, lend).await.unwrap();
            let mut lent = gathered.lent.expect("read into lent memory");
            assert!(lent.is_full() && lent.copy_filled() == body[..]);
            let parts = (SENT - MAX_READ) / PART;
            assert_eq!(READS_IN_PLACE.get(), 1, "the {parts} parts after the first read, at once");
        });
    }

    #[test]
    fn lent_memory_a_client_does_not_fill_holds_what_it_sent() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            client.write_all(&body()[..100 * 1024]).await.unwrap();
            let gathered = wire.gather(&mut expecting_body(), BODY, lend_at_once).await.unwrap();
            let mut part = gathered.lent.expect("lent memory");
            assert!(!part.is_full(), "a stalled body");
            assert!(part.copy_filled() == body()[..100 * 1024], "what it sent, decoded");
            assert!(wire.rbuf.is_empty());
            // Memory of another size is not the body's.
            let (mut wire, client) = pair();
            let writer = send_keeping_up(client, &body());
            fast_start(&mut wire).await;
            let lend = |size| std::future::ready(Some(rwsgi_testkit::lent_heap(size - 1)));
            assert!(wire.gather(&mut expecting_body(), BODY, lend).await.unwrap().lent.is_none());
            assert!(wire.rbuf[..] == body()[..]);
            drop(writer.await.unwrap());
        });
    }

    #[test]
    fn past_the_workers_budget_a_body_is_not_gathered() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            client.write_all(&body()[..100 * 1024]).await.unwrap();
            let taken = Gathering::reserve(GATHER_BUDGET - BODY + 1).unwrap();
            let started = Instant::now();
            wire.gather(&mut expecting_body(), BODY, no_lend).await.unwrap();
            assert_eq!(started.elapsed(), Duration::ZERO, "gathered, and waited for the rest");
            assert!(wire.rbuf.capacity() < BODY, "{} bytes held", wire.rbuf.capacity());
            drop(taken);
            assert_eq!(GATHERING.get(), 0);
        });
    }

    /// With a connection per request none waits between requests, where
    /// buffers are given back: each gives them back as it ends, and the
    /// next takes them at its first read.
    #[test]
    fn a_connection_that_ends_gives_its_buffers_to_the_next() {
        paused().block_on(async {
            let spares = || SPARE.with_borrow(|(reads, outs)| (reads.len(), outs.len()));
            let (mut first, mut client) = pair();
            client.write_all(b"ping").await.unwrap();
            assert_eq!(first.try_fill().unwrap(), 4);
            drop(first.rbuf.split());
            first.out.put_slice(b"pong");
            first.flush().await.unwrap();
            drop(first);
            assert_eq!(spares(), (1, 1));
            let (mut next, mut client) = pair();
            client.write_all(b"ping").await.unwrap();
            assert_eq!(next.try_fill().unwrap(), 4);
            assert_eq!(spares(), (0, 0));
            assert!(next.out.capacity() > 0, "a buffer to write in, before any write");
        });
    }

    #[test]
    fn a_client_that_sends_little_at_once_keeps_no_buffer_of_its_declared_size() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            client.write_all(&body()[..10 * 1024]).await.unwrap();
            wire.gather(&mut expecting_body(), BODY, no_lend).await.unwrap();
            assert_eq!(wire.rbuf.len(), 10 * 1024);
            assert_eq!(wire.rbuf.capacity(), 10 * 1024, "more held than it sent");
        });
    }

    /// A bulk read takes all the kernel holds, but a client that trickles
    /// makes the connection hold no bulk buffer while it waits: only the
    /// bytes not decoded yet (a part of a frame), or nothing.
    #[test]
    fn a_bulk_read_holds_no_bulk_buffer_while_it_waits() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            let sent = pattern(3 * MAX_READ);
            client.write_all(&sent).await.unwrap();
            assert_eq!(wire.fill_bulk().await.unwrap(), sent.len(), "all of it at once");
            // The codec takes all but the start of a frame.
            drop(wire.rbuf.split_to(sent.len() - 5));
            let waited = timeout(Duration::from_secs(1), wire.fill_bulk()).await;
            assert!(waited.is_err(), "nothing more came");
            assert_eq!((wire.rbuf.len(), wire.rbuf.capacity()), (5, 5), "held while waiting");
            drop(wire.rbuf.split());
            let waited = timeout(Duration::from_secs(1), wire.fill_bulk()).await;
            assert!(waited.is_err());
            assert_eq!(wire.rbuf.capacity(), 0, "an empty buffer is given back");
        });
    }

    #[test]
    fn a_client_that_stalls_after_a_fast_start_gets_a_buffer_of_what_it_sent() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            client.write_all(&body()[..100 * 1024]).await.unwrap();
            let started = Instant::now();
            wire.gather(&mut expecting_body(), BODY, no_lend).await.unwrap();
            assert_eq!(started.elapsed(), GATHER_TIME);
            assert_eq!(wire.rbuf.len(), 100 * 1024);
            assert_eq!(wire.rbuf.capacity(), 100 * 1024);
            drop(client);
        });
    }

    #[test]
    fn a_client_that_closes_mid_body_ends_the_gathering_with_what_it_sent() {
        paused().block_on(async {
            let (mut wire, mut client) = pair();
            client.write_all(&body()[..100 * 1024]).await.unwrap();
            drop(client);
            let started = Instant::now();
            wire.gather(&mut expecting_body(), BODY, no_lend).await.unwrap();
            assert_eq!(started.elapsed(), Duration::ZERO);
            assert_eq!(wire.rbuf.len(), 100 * 1024);
        });
    }

    /// A FastCGI codec that has decoded the head of a POST of `declared`
    /// bytes: STDIN records come next.
    fn fastcgi_expecting(declared: usize) -> rwsgi_fastcgi::FastCgiCodec {
        let values = rwsgi_fastcgi::ManagementValues { max_conns: 1, max_reqs: 1 };
        let mut codec = rwsgi_fastcgi::FastCgiCodec::new(rwsgi_proto::Limits::default(), values);
        let length = declared.to_string();
        let pairs: [(&[u8], &[u8]); 2] =
            [(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", length.as_bytes())];
        let head = rwsgi_testkit::fastcgi::head(1, 0, &pairs);
        let head = tokio_util::codec::Decoder::decode(&mut codec, &mut BytesMut::from(&head[..]));
        assert!(matches!(head, Ok(Some(Frame::Head(_)))));
        codec
    }

    /// STDIN records of `size` bytes of `body` (padded to 8), and the end.
    fn stdin(body: &[u8], size: usize) -> Vec<u8> {
        rwsgi_testkit::fastcgi::stream(rwsgi_testkit::fastcgi::STDIN, 1, body, size)
    }

    /// Decodes what the connection sends after a gathering, until the
    /// body's end: its frames, in order.
    async fn rest_of_body(
        wire: &mut Transport<LazyStream<UnixStream>>,
        codec: &mut rwsgi_fastcgi::FastCgiCodec,
    ) -> Vec<Frame<rwsgi_fastcgi::FastCgiHead>> {
        let mut frames = Vec::new();
        loop {
            match wire.decode(codec).unwrap() {
                Some(Frame::End) => return frames,
                Some(frame) => frames.push(frame),
                None => assert!(wire.fill().await.unwrap() > 0, "the body's end never came"),
            }
        }
    }

    /// nginx's 32 KiB records, and records padded by 7: each record's
    /// content is read straight into the lent memory, the padding and the
    /// next header into the read buffer; only what came before the
    /// gathering started is copied.
    #[test]
    fn a_body_in_records_is_read_into_lent_memory_in_place() {
        for size in [32 * 1024, 10_001] {
            paused().block_on(async {
                let (mut wire, client) = pair();
                let body = body();
                let writer = send_keeping_up(client, &stdin(&body, size));
                fast_start(&mut wire).await;
                let before = wire.rbuf.len();
                ABSORBED.set(0);
                let mut codec = fastcgi_expecting(BODY);
                let gathered = wire.gather(&mut codec, BODY, lend_at_once).await.unwrap();
                assert!(gathered.frame.is_none());
                let mut lent = gathered.lent.expect("read into lent memory");
                assert!(lent.is_full());
                assert!(lent.copy_filled() == body[..], "the body, in order (records of {size})");
                let copied = ABSORBED.get();
                assert!(copied <= before + size, "{copied} bytes copied, {before} came first");
                assert!(rest_of_body(&mut wire, &mut codec).await.is_empty(), "then its end");
                assert_eq!(GATHERING.get(), 0, "the budget is given back");
                drop(writer.await.unwrap());
            });
        }
    }

    /// Memory lent in parts (as the bridge lends a body to an app that
    /// reads in parts), smaller and larger than the records: each part is
    /// filled in turn, and content a read took past a part's end is decoded
    /// from the read buffer into the next; the body comes out whole.
    #[test]
    fn a_body_in_records_is_read_into_memory_lent_in_parts() {
        for part in [5_000, 65_536] {
            paused().block_on(async {
                let (mut wire, client) = pair();
                let body = body();
                let writer = send_keeping_up(client, &stdin(&body, 10_001));
                fast_start(&mut wire).await;
                let mut codec = fastcgi_expecting(BODY);
                let lend =
                    |size| std::future::ready(Some(rwsgi_testkit::lent_heap_in_parts(size, part)));
                let gathered = wire.gather(&mut codec, BODY, lend).await.unwrap();
                let mut lent = gathered.lent.expect("read into lent memory");
                assert!(lent.is_full() && lent.copy_filled() == body[..], "parts of {part}");
                assert!(rest_of_body(&mut wire, &mut codec).await.is_empty(), "then its end");
                drop(writer.await.unwrap());
            });
        }
    }

    /// Records that are not the body's (a management query, a record for
    /// another request id) among its records are framing: read into the
    /// read buffer, decoded, answered; the body comes out whole.
    #[test]
    fn records_among_the_bodys_are_decoded_not_read_into_it() {
        use rwsgi_testkit::fastcgi::{STDIN, params_with, record};
        const GET_VALUES: u8 = 9;
        paused().block_on(async {
            let (mut wire, client) = pair();
            let body = body();
            let query = params_with(&[(b"FCGI_MAX_CONNS", b"")], false);
            let mut input = Vec::new();
            for (n, piece) in body.chunks(40_000).enumerate() {
                input.extend(record(STDIN, 1, piece, (n % 8) as u8));
                if n == 3 {
                    input.extend(record(GET_VALUES, 0, &query, 3));
                    input.extend(record(STDIN, 2, &[7; 1000], 0));
                }
            }
            input.extend(record(STDIN, 1, b"", 0));
            let writer = send_keeping_up(client, &input);
            fast_start(&mut wire).await;
            let mut codec = fastcgi_expecting(BODY);
            let gathered = wire.gather(&mut codec, BODY, lend_at_once).await.unwrap();
            let mut lent = gathered.lent.expect("read into lent memory");
            assert!(
                lent.is_full() && lent.copy_filled() == body[..],
                "the body, whole and in order"
            );
            assert!(rest_of_body(&mut wire, &mut codec).await.is_empty());
            let answer = wire.out.take_contiguous();
            assert_eq!(answer.get(1), Some(&10), "GET_VALUES_RESULT: {answer:?}");
            drop(writer.await.unwrap());
        });
    }

    #[test]
    fn a_body_in_records_without_lent_memory_is_left_to_read_in_pieces() {
        paused().block_on(async {
            let (mut wire, client) = pair();
            let body = body();
            let writer = send_keeping_up(client, &stdin(&body, 32 * 1024));
            fast_start(&mut wire).await;
            let mut codec = fastcgi_expecting(BODY);
            let gathered = wire.gather(&mut codec, BODY, no_lend).await.unwrap();
            assert!(gathered.lent.is_none() && gathered.frame.is_none());
            assert!(wire.rbuf.capacity() < BODY, "no buffer of the body's size");
            let pieces: Vec<u8> = rest_of_body(&mut wire, &mut codec)
                .await
                .into_iter()
                .flat_map(|frame| match frame {
                    Frame::Data(data) => data.to_vec(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert!(pieces == body, "the body, in pieces");
            assert_eq!(GATHERING.get(), 0, "the budget is given back");
            drop(writer.await.unwrap());
        });
    }

    /// A stream shorter than `CONTENT_LENGTH` ends the body there (the
    /// client went away; nginx ends the stream); an abort ends the request.
    #[test]
    fn a_stream_that_ends_short_or_is_aborted_stops_the_gathering() {
        let sent = 200 * 1024;
        let abort =
            rwsgi_testkit::fastcgi::record(rwsgi_testkit::fastcgi::ABORT_REQUEST, 1, b"", 0);
        let mut aborted = stdin(&body()[..sent], 32 * 1024);
        aborted.truncate(aborted.len() - 8);
        aborted.extend(abort);
        for (input, ended) in [(stdin(&body()[..sent], 32 * 1024), true), (aborted, false)] {
            paused().block_on(async {
                let (mut wire, client) = pair();
                let writer = send_keeping_up(client, &input);
                fast_start(&mut wire).await;
                let mut codec = fastcgi_expecting(BODY);
                let gathered = wire.gather(&mut codec, BODY, lend_at_once).await.unwrap();
                let mut part = gathered.lent.expect("lent memory");
                assert!(part.copy_filled() == body()[..sent], "what came, decoded");
                match gathered.frame {
                    Some(Frame::End) => assert!(ended),
                    Some(Frame::Abort) => assert!(!ended),
                    other => panic!("{other:?}"),
                }
                drop(writer.await.unwrap());
            });
        }
    }
}
