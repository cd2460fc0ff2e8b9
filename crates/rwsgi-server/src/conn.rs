//! The one connection loop, generic over the protocol's [`ServerCodec`].
//!
//! Per request: read the head (deadline from its first byte), pre-read a
//! small body, run the app (inline on this thread when the dispatch allows,
//! otherwise on a Python thread), then write the
//! [`Event`]s that come back, answering body reads in between. Errors in the
//! request are answered through the codec (`encode_error`) and close the
//! connection; a failed write means the client is gone, which the Python
//! side sees as a closed channel.

use crate::date::with_date;
use crate::load::{Active, Connections, Load, Open};
use crate::stream::Stream;
use bytes::{Bytes, BytesMut};
use rwsgi_proto::{
    BodyLength, BodyMsg, BodySource, ConnInfo, Environ, Event, Fault, Frame, OutBuf, ProtoError,
    Request, RequestHead, Responder, ServerCodec,
};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout;

/// Shared by every connection of a worker.
#[derive(Debug)]
pub(crate) struct Context<R> {
    pub(crate) config: crate::ServerConfig,
    pub(crate) responder: R,
    /// Requests whose app runs or is ready to, counted only with an
    /// `accept_limit`.
    pub(crate) load: Option<Arc<Load>>,
    /// Open connections, within `worker-connections`.
    pub(crate) connections: Arc<Connections>,
}

impl<R> Context<R> {
    pub(crate) fn new(config: crate::ServerConfig, responder: R) -> Self {
        let load = config.accept_limit.map(|_| Arc::new(Load::default()));
        let limit = config.max_connections.unwrap_or_else(crate::load::default_connection_limit);
        Context { config, responder, load, connections: Arc::new(Connections::new(limit)) }
    }

    /// Counts a request's Python work, if anyone is counting.
    fn enter(&self) -> Option<Active> {
        self.load.as_ref().map(Load::enter)
    }
}

/// Room made in the read buffer before a read: the first read of a request
/// gets the smallest (a head fits, and a waiting connection pins no more),
/// each read that fills it doubles it, up to the largest (bulk bodies).
const MIN_READ: usize = 4 * 1024;
const MAX_READ: usize = 64 * 1024;
/// Body pieces read ahead that are smaller than this are copied together
/// instead of kept as they came: a piece shares its read buffer, and a
/// client trickling a body a byte at a time must not pin a buffer a byte.
const COALESCE_BELOW: usize = 16 * 1024;
/// Flush the output once this much is queued, even if more is coming.
const FLUSH_AT: usize = 256 * 1024;
/// After an error, how much unread input we drain so the peer reads our
/// answer instead of a reset (a "lingering close", as nginx does).
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How long a stopping server still waits for a request on its way: on a
/// connection accepted just before the stop, or sent on a keep-alive
/// connection before the client could know of it.
const REQUEST_ON_ITS_WAY: Duration = Duration::from_secs(1);

/// How the previous request left the connection.
enum Next {
    KeepAlive,
    Close,
    /// Close, reading what the client still sends for a while first.
    Linger,
    /// Answer `err` (if anyone is listening) and close.
    Fail(ProtoError),
}

pub(crate) struct Connection<S, C, R> {
    io: S,
    codec: C,
    info: ConnInfo,
    ctx: Arc<Context<R>>,
    rbuf: BytesMut,
    /// How much room the next read makes (see [`MIN_READ`]).
    read_size: usize,
    out: OutBuf,
    /// True once the server stops: responses then announce the close.
    shutdown: watch::Receiver<bool>,
    /// A request was served: waiting for the next one, this is an idle
    /// keep-alive connection, the first to close at `worker-connections`.
    served: bool,
    /// Counted among the worker's open connections while it lives.
    _open: Open,
}

impl<S: Stream, C: ServerCodec, R: Responder> Connection<S, C, R> {
    pub(crate) fn new(
        io: S,
        codec: C,
        info: ConnInfo,
        ctx: Arc<Context<R>>,
        shutdown: watch::Receiver<bool>,
        open: Open,
    ) -> Self {
        Connection {
            io,
            codec,
            info,
            // Allocated at the first read that finds bytes (see `fill`).
            rbuf: BytesMut::new(),
            read_size: MIN_READ,
            out: OutBuf::new(),
            shutdown,
            served: false,
            _open: open,
            ctx,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let next = match self.read_head(&mut shutdown).await {
                Ok(Some(head)) => self.serve(head).await,
                Ok(None) => Next::Close,
                Err(err) => Next::Fail(err),
            };
            match next {
                Next::KeepAlive if !*shutdown.borrow() => {
                    self.served = true;
                    continue;
                }
                Next::KeepAlive | Next::Close => break,
                // The last steps of a connection that went wrong are boxed
                // for the same reason.
                Next::Linger => {
                    Box::pin(self.linger()).await;
                    break;
                }
                Next::Fail(err) => {
                    Box::pin(self.answer_error(err)).await;
                    break;
                }
            }
        }
        // Dropping the stream closes it: a separate shutdown() first would
        // cost a syscall per connection and change nothing the peer sees.
    }

    /// Waits for the next request head. `Ok(None)`: the peer closed, sent
    /// nothing within `socket-timeout` (a fresh connection) or the idle
    /// keep-alive time (after a request), or the server is shutting down and no
    /// request arrived within [`REQUEST_ON_ITS_WAY`] (a reload must not drop
    /// a request the client had already sent).
    async fn read_head(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<C::Head>, ProtoError> {
        let mut deadline = None;
        loop {
            match self.decode()? {
                Some(Frame::Head(head)) => return Ok(Some(head)),
                // An abort for a request already ended: nothing to stop.
                Some(Frame::Abort) => continue,
                Some(Frame::Data(_) | Frame::End) => {
                    return Err(ProtoError::BadRequest(
                        "body data where a request head was expected",
                    ));
                }
                None => {}
            }
            if !self.out.is_empty() {
                self.flush().await?;
            }
            if self.codec.is_finished() {
                return Ok(None);
            }
            if self.rbuf.is_empty() && deadline.is_none() {
                // Idle between requests: wait for a first byte, or give up.
                if *shutdown.borrow() {
                    match timeout(REQUEST_ON_ITS_WAY, self.fill()).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(None),
                        Ok(Ok(_)) => {}
                    }
                } else {
                    // A fresh connection gets `socket-timeout` to start its
                    // request; one that served a request, the keep-alive time.
                    let idle = if self.served {
                        self.ctx.config.keepalive_timeout
                    } else {
                        self.ctx.config.socket_timeout
                    };
                    // Between requests, the connection may be told to make
                    // room (`worker-connections`), oldest idle first.
                    let close = self.served.then(|| Arc::new(tokio::sync::Notify::new()));
                    let _ticket = close.as_ref().map(|close| self.ctx.connections.idle(close));
                    let evicted = async {
                        match &close {
                            Some(close) => close.notified().await,
                            None => std::future::pending().await,
                        }
                    };
                    // The read first: a request usually arrives with its
                    // connection, and the stop is seen on the next round
                    // anyway (`shutdown.borrow()` above).
                    tokio::select! {
                        biased;
                        read = timeout(idle, self.fill()) => match read {
                            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(None),
                            Ok(Ok(_)) => {}
                        },
                        // Stopping: round again, to the shutdown branch.
                        changed = shutdown.changed() => {
                            if changed.is_err() {
                                return Ok(None);
                            }
                            continue;
                        }
                        () = evicted => return Ok(None),
                    }
                }
                deadline = Some(Instant::now() + self.ctx.config.socket_timeout);
                continue;
            }
            let deadline =
                *deadline.get_or_insert_with(|| Instant::now() + self.ctx.config.socket_timeout);
            match tokio::time::timeout_at(deadline.into(), self.fill()).await {
                Ok(Ok(0)) => {
                    return match self.decode_eof()? {
                        Some(Frame::Head(head)) => Ok(Some(head)),
                        _ => Ok(None),
                    };
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => return Err(self.codec.head_timeout()),
            }
        }
    }

    /// Decodes the next frame, collecting what the codec wants to send on
    /// its own (management replies, refusals) into the output.
    fn decode(&mut self) -> Result<Option<Frame<C::Head>>, ProtoError> {
        let frame = self.codec.decode(&mut self.rbuf);
        self.codec.take_control(&mut self.out);
        frame
    }

    fn decode_eof(&mut self) -> Result<Option<Frame<C::Head>>, ProtoError> {
        let frame = self.codec.decode_eof(&mut self.rbuf);
        self.codec.take_control(&mut self.out);
        frame
    }

    /// Reads more input. A read that has to wait holds no spare buffer
    /// meanwhile: a connection idle between requests keeps none, one
    /// waiting for the rest of its head only the bytes it has, so that
    /// thousands of waiting connections cost little memory.
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.rbuf.reserve(self.read_size);
        let room = self.rbuf.capacity() - self.rbuf.len();
        let read = match self.io.try_read_buf(&mut self.rbuf) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                self.release_spare();
                self.read_size = MIN_READ;
                self.io.readable().await?;
                self.rbuf.reserve(self.read_size);
                self.io.read_buf(&mut self.rbuf).await
            }
            done => done,
        };
        if read.as_ref().is_ok_and(|&n| n == room) {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        read
    }

    /// Gives back the memory a waiting connection does not need: the
    /// output buffers, and the read buffer beyond the bytes it holds.
    fn release_spare(&mut self) {
        self.out.release();
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
        } else if self.rbuf.capacity() > self.rbuf.len() {
            self.rbuf = BytesMut::from(&self.rbuf[..]);
        }
    }

    /// The next body frame, reading as needed within `socket-timeout`.
    async fn next_body_frame(&mut self) -> Result<Frame<C::Head>, ProtoError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(frame);
            }
            if !self.out.is_empty() {
                self.flush().await?;
            }
            match timeout(self.ctx.config.socket_timeout, self.fill()).await {
                Ok(Ok(0)) => {
                    if let Some(frame) = self.decode_eof()? {
                        return Ok(frame);
                    }
                    return Err(ProtoError::UnexpectedEof);
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => return Err(ProtoError::Timeout),
            }
        }
    }

    /// Decides how the body reaches the app, reading it ahead when it is
    /// small enough (`post-buffering`), so a slow client never holds a
    /// Python thread: an empty body, one of known length within the limit,
    /// or one of unknown length (chunked; FastCGI without CONTENT_LENGTH,
    /// as nginx sends a GET) that ends within it. A larger body, or one
    /// the client sends only after `100 Continue`, streams on demand.
    /// `Err`: the request ended here (aborted, or its body failed).
    async fn plan_body(
        &mut self,
        head: &mut C::Head,
        expects_continue: bool,
    ) -> Result<BodyPlan, Next> {
        let post_buffering = self.ctx.config.post_buffering;
        let limit = match head.body_length() {
            BodyLength::Empty => 0,
            BodyLength::Known(n) if n <= post_buffering && !expects_continue => n,
            BodyLength::Streamed if !expects_continue => post_buffering,
            BodyLength::Known(_) | BodyLength::Streamed => {
                return Ok(BodyPlan::streamed(VecDeque::new()));
            }
        };
        if (self.rbuf.len() as u64) < limit {
            // The body is not all here: waiting for it must not pin the
            // buffer the head was read into.
            head.detach();
        }
        match self.read_ahead(limit).await {
            Ok(ReadAhead::Whole(body)) => Ok(BodyPlan::buffered(body)),
            Ok(ReadAhead::Partial(pieces)) => Ok(BodyPlan::streamed(pieces)),
            Ok(ReadAhead::Aborted) => Err(self.end_aborted(head).await),
            Err(err) => Err(self.body_failed(head, err)),
        }
    }

    /// Reads the body before the app runs, up to `limit` bytes, so a slow
    /// client never holds a Python thread. A longer body stops there: the
    /// pieces read so far go to `wsgi.input` first, the rest streams.
    async fn read_ahead(&mut self, limit: u64) -> Result<ReadAhead, ProtoError> {
        let mut pieces = Pieces::default();
        loop {
            if self.rbuf.is_empty() {
                // The next piece must be read, perhaps waited for.
                pieces.settle();
            }
            match self.next_body_frame().await? {
                Frame::Data(data) => {
                    pieces.push(data);
                    if pieces.total > limit {
                        return Ok(ReadAhead::Partial(pieces.into_queue()));
                    }
                }
                Frame::End => break,
                Frame::Abort => return Ok(ReadAhead::Aborted),
                Frame::Head(_) => return Err(ProtoError::BadRequest("request head inside a body")),
            }
        }
        let mut queue = pieces.into_queue();
        Ok(ReadAhead::Whole(match queue.len() {
            0 => Bytes::new(),
            1 => queue.pop_front().unwrap_or_default(),
            _ => queue.into_iter().collect::<Vec<_>>().concat().into(),
        }))
    }

    /// A body that could not be read: a peer that went away or stalled gets
    /// no answer, but the request it started is worth one log line.
    fn body_failed(&self, head: &C::Head, err: ProtoError) -> Next {
        if err.status().is_none() {
            tracing::warn!(
                "{} {} {}: request body incomplete: {err}",
                self.info.peer,
                C::NAME,
                head.describe()
            );
        }
        Next::Fail(err)
    }

    /// Ends a request the peer aborted before the app ran.
    async fn end_aborted(&mut self, head: &C::Head) -> Next {
        tracing::info!("{} {} {}: aborted by the peer", self.info.peer, C::NAME, head.describe());
        let keep = self.codec.encode_end(false, &mut self.out);
        match self.flush().await {
            Ok(()) if keep => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    /// While the app runs, reads what the peer sends (for codecs that need
    /// it: an abort, a management record). `Ok(true)`: the request was
    /// aborted. An error or the peer's close ends the request.
    async fn input_during_response(
        &mut self,
        read: std::io::Result<usize>,
    ) -> Result<bool, ProtoError> {
        match read {
            Ok(0) => return Err(ProtoError::UnexpectedEof),
            Ok(_) => {}
            Err(err) => return Err(err.into()),
        }
        match self.decode()? {
            None => {}
            Some(Frame::Abort) => return Ok(true),
            Some(_) => return Err(ProtoError::BadRequest("request data after the request's end")),
        }
        if !self.out.is_empty() {
            self.flush().await?;
        }
        Ok(false)
    }

    /// Serves one request whose head has been read.
    async fn serve(&mut self, mut head: C::Head) -> Next {
        let started = Instant::now();
        let expects_continue = head.expects_continue();
        // Each phase is boxed, so a connection holds the state of the phase
        // it is in, not the largest: one waiting for its body holds a small
        // one, and one idle between requests none.
        let plan = match Box::pin(self.plan_body(&mut head, expects_continue)).await {
            Ok(plan) => plan,
            Err(next) => return next,
        };
        Box::pin(self.respond(head, plan, expects_continue, started)).await
    }

    /// Runs the app on a request whose body is planned, and writes what it answers.
    async fn respond(
        &mut self,
        head: C::Head,
        plan: BodyPlan,
        expects_continue: bool,
        started: Instant,
    ) -> Next {
        let BodyPlan { source, replies, mut read_ahead, done: mut body_done } = plan;
        // From here to its last event the request is Python work: it counts
        // toward the worker being full (`accept_limit`); waiting for its
        // head or body did not, and writing what is left will not.
        let mut python = self.ctx.enter();
        // Built once the body is in: a request waiting for it holds no environ.
        let mut environ = Environ::with_capacity(32);
        head.write_environ(&self.info, &mut environ);
        let mut events = self.ctx.responder.respond(Request { environ, body: source }).await;

        let mut log = RequestLog { status: 0, bytes: 0 };
        let mut asked_continue = false;
        let mut body_error: Option<ProtoError> = None;
        let mut aborted = false;
        let keep_alive = loop {
            let watch = C::READS_DURING_RESPONSE
                && body_done
                && !aborted
                && self.rbuf.len() < self.ctx.config.limits.max_head;
            let event = if watch {
                tokio::select! {
                    event = events.recv() => event,
                    read = self.fill() => match self.input_during_response(read).await {
                        Ok(false) => continue,
                        Ok(true) => {
                            aborted = true;
                            let keep = self.codec.encode_end(false, &mut self.out);
                            break self.flush().await.is_ok() && keep;
                        }
                        Err(err) => {
                            body_error = Some(err);
                            break false;
                        }
                    },
                }
            } else {
                events.recv().await
            };
            let Ok(event) = event else {
                tracing::error!("{}: the responder ended without a response", head.describe());
                break false;
            };
            let finished = match event {
                Event::ReadBody => {
                    let Some(replies) = &replies else { break false };
                    if expects_continue && !asked_continue {
                        asked_continue = true;
                        self.codec.encode_continue(&mut self.out);
                        if self.flush().await.is_err() {
                            break false;
                        }
                    }
                    let reply = if let Some(piece) = read_ahead.pop_front() {
                        BodyMsg::Data(piece)
                    } else if body_done {
                        BodyMsg::Eof
                    } else {
                        match self.next_body_frame().await {
                            Ok(Frame::Data(data)) => BodyMsg::Data(data),
                            Ok(Frame::End) => {
                                body_done = true;
                                BodyMsg::Eof
                            }
                            Ok(Frame::Abort) => {
                                aborted = true;
                                BodyMsg::Failed("request aborted by the web server".into())
                            }
                            Ok(Frame::Head(_)) => {
                                BodyMsg::Failed("request head inside a body".into())
                            }
                            Err(err) => {
                                let why = format!("request body: {err}");
                                body_error = Some(err);
                                BodyMsg::Failed(why)
                            }
                        }
                    };
                    let _ = replies.send(reply);
                    if aborted {
                        let keep = self.codec.encode_end(false, &mut self.out);
                        break self.flush().await.is_ok() && keep;
                    }
                    None
                }
                // The app answered a request whose body broke: the client
                // gets the protocol's answer to the broken body instead.
                Event::Head { .. } | Event::Whole { .. } if body_error.is_some() => break false,
                Event::Head { head: response, body } => {
                    log.status = response.status;
                    self.announce_close(body_done);
                    with_date(|date| self.codec.encode_head(&response, date, &mut self.out));
                    self.put_body(body, &mut log);
                    None
                }
                Event::Whole { head: response, body, complete } => {
                    log.status = response.status;
                    self.announce_close(body_done);
                    with_date(|date| self.codec.encode_head(&response, date, &mut self.out));
                    self.put_body(body, &mut log);
                    Some(self.codec.encode_end(complete, &mut self.out))
                }
                Event::Data(data) => {
                    self.put_body(vec![data], &mut log);
                    None
                }
                Event::File { file, offset, len } => {
                    log.bytes += len;
                    if self.send_file(file, offset, len).await.is_err() {
                        break false;
                    }
                    None
                }
                Event::Stderr(text) => {
                    self.codec.encode_stderr(text, &mut self.out);
                    None
                }
                Event::End { complete } => Some(self.codec.encode_end(complete, &mut self.out)),
            };
            if let Some(keep_alive) = finished {
                drop(python.take());
                break self.flush().await.is_ok() && keep_alive;
            }
            if (self.out.len() >= FLUSH_AT || events.is_empty()) && self.flush().await.is_err() {
                break false;
            }
        };
        // Dropping the channels tells a still-running app the client is gone.
        drop(events);
        drop(replies);
        if self.ctx.config.log_requests {
            tracing::info!(
                target: "rwsgi::request",
                "{} {} {} => {} ({} bytes) in {:.2?}",
                self.info.peer, C::NAME, head.describe(), log.status, log.bytes, started.elapsed()
            );
        }
        if let Some(err) = body_error {
            return self.body_failed(&head, err);
        }
        if aborted {
            tracing::info!(
                "{} {} {}: aborted by the peer",
                self.info.peer,
                C::NAME,
                head.describe()
            );
            // The codec has forgotten the request: the rest of its body is not ours.
            body_done = true;
        }
        match (keep_alive, body_done) {
            (true, true) => Next::KeepAlive,
            (_, true) => Next::Close,
            // A client still waiting for `100 Continue` sends no body.
            (_, false) if expects_continue && !asked_continue => Next::Close,
            (_, false) => Next::Linger,
        }
    }

    /// A body the app left unread when its response started (too large to
    /// have been read ahead, or chunked) is not skipped: the connection
    /// closes, and the head says so. The same while the server stops: the
    /// client must not send another request on this connection.
    fn announce_close(&mut self, body_done: bool) {
        if !body_done || self.ctx.config.keepalive_timeout.is_zero() || *self.shutdown.borrow() {
            self.codec.close_after_response();
        }
    }

    fn put_body(&mut self, body: Vec<Bytes>, log: &mut RequestLog) {
        for piece in body {
            log.bytes += piece.len() as u64;
            self.codec.encode_data(piece, &mut self.out);
        }
    }

    async fn send_file(
        &mut self,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> std::io::Result<()> {
        match self.codec.raw_data_framing(len) {
            Some((prefix, suffix)) => {
                self.out.put_bytes(prefix);
                self.flush().await?;
                let sent =
                    timeout(self.sendfile_timeout(len), self.io.send_file(&file, offset, len));
                sent.await.unwrap_or_else(|_| Err(self.write_timed_out()))?;
                self.out.put_bytes(suffix);
                Ok(())
            }
            None => {
                // The protocol frames every piece: read the file through it.
                let mut file = tokio::fs::File::from_std(file);
                tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
                let mut left = len;
                while left > 0 {
                    let mut chunk = BytesMut::with_capacity(left.min(64 * 1024) as usize);
                    let n = file.read_buf(&mut chunk).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    chunk.truncate(n.min(left as usize));
                    left -= chunk.len() as u64;
                    self.codec.encode_data(chunk.freeze(), &mut self.out);
                    self.flush().await?;
                }
                Ok(())
            }
        }
    }

    /// A big file may take long; what must not stall is each step of it.
    fn sendfile_timeout(&self, len: u64) -> Duration {
        self.ctx.config.socket_timeout + Duration::from_secs(len >> 20)
    }

    /// Writes everything queued, within `socket-timeout`.
    async fn flush(&mut self) -> std::io::Result<()> {
        let limit = self.ctx.config.socket_timeout;
        let io = &mut self.io;
        let out = &mut self.out;
        let written = timeout(limit, async {
            while !out.is_empty() {
                let written = {
                    let mut slices = [IoSlice::new(&[]); 64];
                    let n = out.io_slices(&mut slices);
                    io.write_vectored(&slices[..n]).await?
                };
                if written == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                out.advance(written);
            }
            Ok(())
        })
        .await;
        written.unwrap_or_else(|_| Err(self.write_timed_out()))
    }

    /// A client that did not take the response within `socket-timeout`:
    /// the connection is reset rather than closed behind what is unsent.
    fn write_timed_out(&mut self) -> std::io::Error {
        tracing::info!(
            "{} {}: the client took no response bytes for {:?}: connection reset",
            self.info.peer,
            C::NAME,
            self.ctx.config.socket_timeout
        );
        self.io.reset_on_close();
        std::io::ErrorKind::TimedOut.into()
    }

    /// Logs a request the app never saw and answers it, if anyone listens.
    async fn answer_error(&mut self, err: ProtoError) {
        let status = err.status();
        match (err.fault(), status) {
            // A client that hangs up mid-request has nobody to answer, but
            // a truncated request is still worth a line.
            (Fault::Client, None) => tracing::info!("{} {}: {err}", self.info.peer, C::NAME),
            (_, None) => tracing::debug!("{} {}: {err}", self.info.peer, C::NAME),
            (Fault::Client, Some(status)) => {
                tracing::warn!("{} {}: {err} => {status}", self.info.peer, C::NAME)
            }
            (_, Some(status)) => {
                tracing::error!("{} {}: {err} => {status}", self.info.peer, C::NAME)
            }
        }
        let Some(status) = status else { return };
        self.codec.close_after_response();
        with_date(|date| self.codec.encode_error(status, date, &mut self.out));
        if self.flush().await.is_ok() {
            self.linger().await;
        }
    }

    /// Half-closes, then reads what the peer still sends for a while, so our
    /// last answer is not destroyed by a reset when we close with unread
    /// input (a "lingering close", as nginx does).
    async fn linger(&mut self) {
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

/// How a request's body reaches the app.
struct BodyPlan {
    /// What `wsgi.input` reads from.
    source: BodySource,
    /// Where the app's body reads are answered, for a streamed body.
    replies: Option<flume::Sender<BodyMsg>>,
    /// Pieces already read, handed out before reading more.
    read_ahead: VecDeque<Bytes>,
    /// The whole body is off the connection.
    done: bool,
}

impl BodyPlan {
    fn buffered(body: Bytes) -> Self {
        let source = BodySource::Buffered(body);
        BodyPlan { source, replies: None, read_ahead: VecDeque::new(), done: true }
    }

    fn streamed(read_ahead: VecDeque<Bytes>) -> Self {
        let (tx, rx) = flume::bounded(1);
        BodyPlan { source: BodySource::Streamed(rx), replies: Some(tx), read_ahead, done: false }
    }
}

/// Body pieces read ahead. Each piece that comes as it was read shares its
/// read buffer, so small ones are copied together (see [`COALESCE_BELOW`]):
/// what is held stays close to the bytes received, however they trickle
/// in. A body that arrives whole is kept as it came, without a copy.
#[derive(Default)]
struct Pieces {
    queue: VecDeque<Bytes>,
    small: BytesMut,
    total: u64,
}

impl Pieces {
    fn push(&mut self, data: Bytes) {
        self.total += data.len() as u64;
        if self.queue.is_empty() && self.small.is_empty() {
            // Perhaps the whole body: kept as it came until more follows.
            self.queue.push_back(data);
            return;
        }
        if let Some(last) = self.queue.pop_back() {
            if last.len() < COALESCE_BELOW {
                self.small.extend_from_slice(&last);
            } else {
                self.queue.push_back(last);
            }
        }
        if data.len() >= COALESCE_BELOW {
            self.seal();
            self.queue.push_back(data);
        } else {
            self.small.extend_from_slice(&data);
            if self.small.len() >= COALESCE_BELOW {
                self.seal();
            }
        }
    }

    /// Before a wait: a small first piece is copied out of the read buffer
    /// it shares, so the wait holds only its bytes.
    fn settle(&mut self) {
        if self.queue.len() == 1
            && self.small.is_empty()
            && let Some(first) = self.queue.pop_back()
        {
            if first.len() < COALESCE_BELOW {
                self.small.extend_from_slice(&first);
            } else {
                self.queue.push_back(first);
            }
        }
    }

    /// Moves the small pieces copied so far into the queue, in order.
    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.queue.push_back(self.small.split().freeze());
        }
    }

    fn into_queue(mut self) -> VecDeque<Bytes> {
        self.seal();
        self.queue
    }
}

/// What reading a body ahead found.
enum ReadAhead {
    /// The whole body.
    Whole(Bytes),
    /// More than the limit, and the body goes on: these pieces first.
    Partial(VecDeque<Bytes>),
    /// The peer abandoned the request.
    Aborted,
}

struct RequestLog {
    status: u16,
    bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::LazyStream;

    /// The size of what `make` returns, without making one.
    fn size_of_output<T>(_: impl FnOnce() -> T) -> usize {
        std::mem::size_of::<T>()
    }

    fn bodies(pieces: &[&[u8]]) -> (VecDeque<Bytes>, u64) {
        let mut collected = Pieces::default();
        for piece in pieces {
            collected.push(Bytes::copy_from_slice(piece));
        }
        let total = collected.total;
        (collected.into_queue(), total)
    }

    #[test]
    fn small_body_pieces_are_copied_together_and_large_ones_kept() {
        let (queue, total) = bodies(&[b"whole"]);
        assert_eq!((queue.len(), total), (1, 5));
        let trickle: Vec<&[u8]> = vec![b"a"; 40_000];
        let (queue, total) = bodies(&trickle);
        assert_eq!(total, 40_000);
        assert_eq!(queue.iter().map(Bytes::len).sum::<usize>(), 40_000);
        assert!(queue.len() <= 3, "{} pieces for a trickled body", queue.len());
        let big = vec![7u8; COALESCE_BELOW];
        let (queue, _) = bodies(&[b"x", &big, b"y", b"z"]);
        let lens: Vec<usize> = queue.iter().map(Bytes::len).collect();
        assert_eq!(lens, [1, COALESCE_BELOW, 2], "order kept, large piece as it came");
        let joined: Vec<u8> = queue.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(joined.first(), Some(&b'x'));
        assert_eq!(&joined[joined.len() - 2..], b"yz");
    }

    /// A connection's task is what a waiting connection costs (its buffers
    /// are released while it waits): the serving state is boxed apart, so
    /// the task stays small. `benches/idle.py` measures the whole.
    #[test]
    fn a_waiting_connection_task_stays_small() {
        type Tcp = LazyStream<tokio::net::TcpStream>;
        #[derive(Debug)]
        struct Unanswering;
        impl Responder for Unanswering {
            async fn respond(&self, _: Request) -> rwsgi_proto::Replies {
                rwsgi_proto::Replies::default()
            }
        }
        fn http() -> Connection<Tcp, rwsgi_http1::Http1Codec, Unanswering> {
            unreachable!("only its type is used")
        }
        fn uwsgi() -> Connection<Tcp, rwsgi_uwsgi::UwsgiCodec, Unanswering> {
            unreachable!("only its type is used")
        }
        fn fastcgi() -> Connection<Tcp, rwsgi_fastcgi::FastCgiCodec, Unanswering> {
            unreachable!("only its type is used")
        }
        for (protocol, size) in [
            ("http", size_of_output(|| http().run())),
            ("uwsgi", size_of_output(|| uwsgi().run())),
            ("fastcgi", size_of_output(|| fastcgi().run())),
        ] {
            assert!(size <= 2560, "{protocol}: a connection's future is {size} bytes");
        }
    }
}
