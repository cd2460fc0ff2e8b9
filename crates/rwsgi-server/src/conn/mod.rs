//! The one connection loop, generic over the protocol's [`ServerCodec`]
//! and the [`Responder`] that answers.
//!
//! A connection is a [`State`] machine; [`Connection::run`] moves it from
//! state to state, and only there:
//!
//! ```text
//!  Fresh ──first byte──▶ ReadingHead ──head──▶ ReadingBody ──planned──▶ Running
//!    ▲                        │                    │ aborted               │ last event
//!    │                        │ error, EOF         ▼                       ▼
//!  IdleKeepAlive ◀──reuse── Writing ◀──────────────┴───────────────────── Writing
//!    │                        │ close, linger, answer an error
//!    └── timeout, EOF ──────▶ Closing
//! ```
//!
//! Whether a connection carries another request is [`Reuse`]'s to decide,
//! before a response head (which must announce a close) and after it.
//! The socket and its buffers are [`transport`]'s; reading the body
//! ahead or on demand is [`body`]'s; the responder's events are
//! [`response`]'s.

mod body;
mod response;
mod transport;

use crate::date::with_date;
use crate::load::{Active, Connections, Load, Open, Told};
use crate::stream::Stream;
use body::BodyEnd;
use body::BodyPlan;
pub(crate) use body::trim_spare_files;
use response::Outcome;
use rwsgi_log::{Captured, Facts};
use rwsgi_proto::{
    BodySource, ConnInfo, Fault, Frame, ProtoError, RequestHead, Responder, ServerCodec, SpareFiles,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tokio::time::timeout;
use transport::Transport;

/// Shared by every connection of a worker.
#[derive(Debug)]
pub(crate) struct Context<R> {
    pub(crate) config: crate::ServerConfig,
    pub(crate) responder: R,
    /// Requests whose responder runs or is ready to, counted only with an
    /// `accept_limit`.
    pub(crate) load: Option<Arc<Load>>,
    /// Open connections, within `worker-connections`.
    pub(crate) connections: Arc<Connections>,
    /// Spool files of bodies past `post-buffering`, kept for the next ones.
    pub(crate) spare_files: Arc<SpareFiles>,
}

impl<R> Context<R> {
    pub(crate) fn new(config: crate::ServerConfig, responder: R) -> Self {
        let load = config.accept_limit.map(|_| Arc::new(Load::default()));
        let limit = config.max_connections.unwrap_or_else(crate::load::default_connection_limit);
        Context {
            config,
            responder,
            load,
            connections: Arc::new(Connections::new(limit)),
            spare_files: Arc::default(),
        }
    }

    /// Counts a request's responder work, if anyone is counting.
    fn enter(&self) -> Option<Active> {
        self.load.as_ref().map(Load::enter)
    }
}

/// Requests this process has answered, for the request log's count.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// How long a stopping server still waits for a request on its way: on a
/// connection accepted just before the stop, or sent on a keep-alive
/// connection before the client could know of it.
const REQUEST_ON_ITS_WAY: Duration = Duration::from_secs(1);

/// Where a connection is between two steps of [`Connection::run`].
enum State<H> {
    /// Accepted, nothing received: `socket-timeout` for a first byte.
    Fresh,
    /// Between requests: the keep-alive time for a first byte, and the
    /// first to be closed when the worker is at `worker-connections`.
    IdleKeepAlive,
    /// A request began (its first byte came) at this instant; its head
    /// must be complete within `socket-timeout` of it.
    ReadingHead(Instant),
    /// The head is in: the body is read ahead, or planned to stream.
    ReadingBody(Box<Exchange<H>>),
    /// The responder answers; what it says is written as it comes.
    Running(Box<Exchange<H>>),
    /// The responder's part is over: what is queued goes out, the request
    /// is logged, and [`Reuse`] decides what comes next.
    Writing(Box<Exchange<H>>),
    /// The connection ends, as said.
    Closing(Close),
}

/// One request from its head to its end, in one allocation: what the
/// states from `ReadingBody` to `Writing` hold, each filling its part.
struct Exchange<H> {
    head: H,
    /// When its first byte came: a request's time, as uWSGI counts it,
    /// includes receiving its head.
    started: Instant,
    /// What the responder reads its body from (`ReadingBody` plans it,
    /// `Running` hands it over).
    source: Option<BodySource>,
    /// How the connection serves that body.
    plan: BodyPlan,
    /// How it went (`Running` records it).
    outcome: Outcome,
    /// What the request line needs of the environ, when requests are logged.
    captured: Option<Box<Captured>>,
}

impl<H> Exchange<H> {
    fn new(head: H, started: Instant) -> Box<Self> {
        Box::new(Exchange {
            head,
            started,
            source: None,
            plan: BodyPlan::default(),
            outcome: Outcome::default(),
            captured: None,
        })
    }
}

/// How a connection ends.
enum Close {
    /// At once: nothing more to say or hear.
    Now,
    /// After reading what the client still sends for a while: its request
    /// body was left unread, and closing on it would reset the connection
    /// under the response.
    Linger,
    /// After answering a request that failed before its response began,
    /// if anyone is there to hear it.
    Answer(ProtoError),
}

/// Whether a connection carries another request, decided here only.
#[derive(Debug, Clone, Copy)]
struct Reuse {
    /// `http-keepalive-timeout` is not zero.
    keepalive: bool,
    /// The server is stopping.
    stopping: bool,
}

impl Reuse {
    /// Before a response head: whether it must announce that the
    /// connection closes after it (a body left unread is not skipped;
    /// keep-alive off; the server stopping), so the client sends nothing
    /// more on it.
    fn announce_close(self, body_done: bool) -> bool {
        !body_done || !self.keepalive || self.stopping
    }

    /// After an exchange (`flushed`: its last bytes went out): the next
    /// request, or how to close.
    fn after(self, ended: &mut Outcome, flushed: bool) -> Option<Close> {
        if ended.status.is_none()
            && let Some(err) = ended.body_error.take()
        {
            // The client gets the protocol's answer to its broken body.
            return Some(Close::Answer(err));
        }
        if !ended.body_done {
            // A client still waiting for `100 Continue` sends no body.
            return Some(if ended.continue_pending { Close::Now } else { Close::Linger });
        }
        let reusable = ended.reusable && flushed && ended.body_error.is_none() && !self.stopping;
        if reusable { None } else { Some(Close::Now) }
    }
}

pub(crate) struct Connection<S, C, R> {
    wire: Transport<S>,
    codec: C,
    ctx: Arc<Context<R>>,
    /// Counted among the worker's open connections while it lives; told
    /// to stop waiting when room is needed or the server stops.
    open: Open,
}

impl<S: Stream, C: ServerCodec, R: Responder> Connection<S, C, R> {
    pub(crate) fn new(io: S, codec: C, info: ConnInfo, ctx: Arc<Context<R>>, open: Open) -> Self {
        let wire = Transport::new(io, info, C::NAME, ctx.config.socket_timeout);
        Connection { wire, codec, ctx, open }
    }

    /// Serves requests until the connection ends. Every transition is
    /// here; each step's work is a method. The steps that hold the most
    /// state are boxed, so a connection's future is the size of the
    /// state it waits in, not of the largest: one idle between requests
    /// holds almost nothing.
    pub(crate) async fn run(mut self) {
        let mut state = State::Fresh;
        loop {
            state = match state {
                State::Fresh | State::IdleKeepAlive => {
                    let kept_alive = matches!(state, State::IdleKeepAlive);
                    if self.await_request(kept_alive).await {
                        State::ReadingHead(Instant::now())
                    } else {
                        State::Closing(Close::Now)
                    }
                }
                State::ReadingHead(began) => match self.read_head(began).await {
                    Ok(Some(head)) => State::ReadingBody(Exchange::new(head, began)),
                    Ok(None) => State::Closing(Close::Now),
                    Err(err) => State::Closing(Close::Answer(err)),
                },
                State::ReadingBody(mut exchange) => {
                    let planned = match self.plan_no_body(&exchange.head) {
                        Some(planned) => planned,
                        None => Box::pin(self.plan_body(&mut exchange.head)).await,
                    };
                    match planned {
                        Ok((source, plan)) => {
                            exchange.source = Some(source);
                            exchange.plan = plan;
                            State::Running(exchange)
                        }
                        Err(BodyEnd::Aborted) => {
                            let reusable = self.codec.encode_end(false, &mut self.wire.out);
                            exchange.outcome = Outcome::aborted(reusable);
                            State::Writing(exchange)
                        }
                        Err(BodyEnd::Failed(err)) => self.body_failed(&exchange.head, err),
                    }
                }
                State::Running(mut exchange) => {
                    Box::pin(self.exchange(&mut exchange)).await;
                    State::Writing(exchange)
                }
                State::Writing(mut exchange) => {
                    let flushed = self.finish(&exchange).await;
                    match self.reuse().after(&mut exchange.outcome, flushed) {
                        None => State::IdleKeepAlive,
                        Some(Close::Answer(err)) => self.body_failed(&exchange.head, err),
                        Some(close) => State::Closing(close),
                    }
                }
                State::Closing(close) => {
                    Box::pin(self.close(close)).await;
                    // Dropping the stream closes it: a separate shutdown()
                    // first would cost a syscall per connection and change
                    // nothing the peer sees.
                    return;
                }
            };
        }
    }

    fn reuse(&self) -> Reuse {
        Reuse {
            keepalive: !self.ctx.config.keepalive_timeout.is_zero(),
            stopping: self.ctx.connections.stopping(),
        }
    }

    /// Waits for the first byte of a request. False: the peer closed,
    /// sent nothing within `socket-timeout` (a fresh connection) or the
    /// idle keep-alive time (after a request), was told to make room
    /// (`worker-connections`), the codec ended the conversation, or the
    /// server is stopping and no request arrived within
    /// [`REQUEST_ON_ITS_WAY`] (a reload must not drop a request the
    /// client had already sent).
    async fn await_request(&mut self, kept_alive: bool) -> bool {
        loop {
            if !self.wire.out.is_empty() && self.wire.flush().await.is_err() {
                return false;
            }
            if self.codec.is_finished() {
                return false;
            }
            if !self.wire.rbuf.is_empty() {
                // Pipelined: the next request is here already.
                return true;
            }
            // Under load the next request is usually in the socket already:
            // no timer, no eviction ticket, no wait.
            match self.wire.try_fill() {
                Ok(n) => return n > 0,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
            if self.ctx.connections.stopping() {
                return matches!(
                    timeout(REQUEST_ON_ITS_WAY, self.wire.fill()).await,
                    Ok(Ok(n)) if n > 0
                );
            }
            let idle = if kept_alive {
                // Between requests, the connection may be told to make room
                // (`worker-connections`), oldest idle first.
                self.open.idle();
                self.ctx.config.keepalive_timeout
            } else {
                self.ctx.config.socket_timeout
            };
            // The read first: a request usually arrives with its
            // connection, and the stop is seen on the next round anyway.
            let arrived = tokio::select! {
                biased;
                read = timeout(idle, self.wire.fill()) => Some(matches!(read, Ok(Ok(n)) if n > 0)),
                told = self.open.told() => match told {
                    Told::Evicted => Some(false),
                    // Round again, to the stopping branch.
                    Told::Stopping => None,
                },
            };
            self.open.busy();
            if let Some(arrived) = arrived {
                return arrived;
            }
        }
    }

    /// Reads until the codec yields a request head, within `socket-timeout`
    /// of its first byte (`began`). `Ok(None)`: the peer closed, or the
    /// codec ended the conversation.
    async fn read_head(&mut self, began: Instant) -> Result<Option<C::Head>, ProtoError> {
        let deadline = began + self.ctx.config.socket_timeout;
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
            if !self.wire.out.is_empty() {
                self.wire.flush().await?;
            }
            if self.codec.is_finished() {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.wire.fill()).await {
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
        self.wire.decode(&mut self.codec)
    }

    fn decode_eof(&mut self) -> Result<Option<Frame<C::Head>>, ProtoError> {
        self.wire.decode_eof(&mut self.codec)
    }

    /// Writes what is left of a response and logs the request. True when
    /// everything went out.
    async fn finish(&mut self, exchange: &Exchange<C::Head>) -> bool {
        let ended = &exchange.outcome;
        let flushed = !ended.unwritable && self.wire.flush().await.is_ok();
        let head = &exchange.head;
        if ended.responded {
            let served = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(hook) = &self.ctx.config.on_answered {
                (hook.0)(&crate::Answered {
                    protocol: C::NAME,
                    status: ended.status.unwrap_or(0),
                    bytes: ended.bytes,
                    received: std::mem::take(&mut self.wire.received),
                    duration: exchange.started.elapsed(),
                    answerer: ended.answerer,
                });
            }
            if let (Some(log), Some(captured), false) =
                (&self.ctx.config.access_log, &exchange.captured, ended.quiet)
            {
                let duration = exchange.started.elapsed();
                let facts = Facts {
                    request: (**captured).clone(),
                    status: ended.status.unwrap_or(0),
                    body_bytes: ended.bytes,
                    head_bytes: ended.head_bytes,
                    headers: ended.headers,
                    started: SystemTime::now()
                        .checked_sub(duration)
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    duration,
                    pid: std::process::id(),
                    worker: self.ctx.config.worker_id,
                    core: 0,
                    requests: served,
                    sendfile: ended.sendfile,
                    read_errors: u32::from(ended.body_error.is_some()),
                    write_errors: u32::from(ended.unwritable || !flushed),
                    peer: if log.shows_peer() {
                        self.wire.info.peer.to_string()
                    } else {
                        String::new()
                    },
                    protocol: C::NAME,
                };
                if log.wants(&facts) {
                    rwsgi_log::write_line(log.line(&facts));
                }
            }
        }
        if ended.aborted {
            tracing::info!(
                "{} {} {}: aborted by the peer",
                self.wire.info.peer,
                C::NAME,
                head.describe()
            );
        }
        flushed
    }

    async fn close(&mut self, close: Close) {
        match close {
            Close::Now => {}
            Close::Linger => self.wire.linger().await,
            Close::Answer(err) => self.answer_error(err).await,
        }
    }

    /// Logs a request that failed before its response began and answers
    /// it, if anyone listens.
    async fn answer_error(&mut self, err: ProtoError) {
        let status = err.status();
        let peer = &self.wire.info.peer;
        match (err.fault(), status) {
            // A client that hangs up mid-request has nobody to answer, but
            // a truncated request is still worth a line.
            (Fault::Client, None) => tracing::info!("{peer} {}: {err}", C::NAME),
            (_, None) => tracing::debug!("{peer} {}: {err}", C::NAME),
            (Fault::Client, Some(status)) => {
                tracing::warn!("{peer} {}: {err} => {status}", C::NAME)
            }
            (_, Some(status)) => tracing::error!("{peer} {}: {err} => {status}", C::NAME),
        }
        let Some(status) = status else { return };
        self.codec.close_after_response();
        with_date(|date| self.codec.encode_error(status, date, &mut self.wire.out));
        if self.wire.flush().await.is_ok() {
            self.wire.linger().await;
        }
    }
}

#[cfg(test)]
mod tests;
