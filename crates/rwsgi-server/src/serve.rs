//! The runtime: accept loops, signals, graceful shutdown.

use crate::conn::{Connection, Context};
use crate::doorbell::Doorbell;
use crate::error::ServerError;
use crate::listener::{Listener, ListenerKind};
use crate::stream::{Acceptor, LazyStream, Stream};
use crate::{Protocol, ServerConfig};
use rwsgi_fastcgi::FastCgiCodec;
use rwsgi_http1::Http1Codec;
use rwsgi_proto::{ConnInfo, Responder, ServerCodec, SocketAddress};
use rwsgi_uwsgi::UwsgiCodec;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// Serves `listeners` until SIGINT or SIGTERM (graceful: stop accepting,
/// finish requests in flight within `shutdown_timeout`) or SIGQUIT
/// (immediate), handing every request to `responder`. Runs a
/// current-thread runtime on the calling thread; `ready` is called once
/// every listener is being accepted on. Returns once everything in flight
/// is done.
///
/// The runtime may not get to see a signal, or to end in time: a request
/// running inline ([`Responder::runs_inline`]) holds its thread, and one
/// stuck on a Python thread holds the stop. A watchdog thread sees the
/// signals too and ends the process when the runtime has not stopped in
/// time: after [`QUIT_GRACE`] for SIGQUIT (status 0, as asked), after
/// `shutdown_timeout` for SIGINT and SIGTERM (status 1: requests were
/// cut), calling [`Exits`]' hooks first.
pub fn serve<R: Responder>(
    listeners: Vec<Listener>,
    responder: R,
    config: ServerConfig,
    ready: impl FnOnce() + Send,
    exits: Exits,
) -> Result<(), ServerError> {
    let (runtime, doorbell) = crate::doorbell::runtime().map_err(ServerError::Runtime)?;
    // The runtime's own signal handlers first: a stop signal arriving from
    // now on is seen by it, not only by the watchdog.
    let signals = runtime.block_on(async { Signals::new() }).map_err(ServerError::Runtime)?;
    let last_listeners = Arc::clone(&exits.last_listeners);
    let watchdog = StopWatchdog::start(config.shutdown_timeout, exits)?;
    let served = runtime.block_on(run(
        listeners,
        responder,
        config,
        signals,
        last_listeners,
        ready,
        doorbell,
    ));
    drop(watchdog);
    rwsgi_log::flush(Duration::from_secs(2));
    served
}

/// What the stop asks of the caller (the watchdog's hooks run before it
/// ends the process).
pub struct Exits {
    /// Whether this process's listeners are the last open ones, so that
    /// closing them would reset the connections still queued: then they
    /// are taken first. (Not in a reload, where siblings stay.)
    pub last_listeners: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Says what is still running (requests, their Python stacks) when a
    /// graceful stop runs out of time.
    pub report_stuck: Box<dyn FnOnce() + Send>,
    /// The clean-up the caller would have done after [`serve`] returned
    /// (systemd's `STOPPING=1`, `vacuum`).
    pub clean_up: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Exits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exits")
    }
}

/// How long SIGQUIT leaves the runtime to stop by itself before the
/// watchdog ends the process.
const QUIT_GRACE: Duration = Duration::from_millis(200);

/// How long the watchdog's report and clean-up may take before the
/// process ends without them.
const EXIT_DEADLINE: Duration = Duration::from_secs(3);

/// The exit status of a graceful stop that had to cut requests.
pub const CUT_STATUS: i32 = 1;

/// A thread with its own small runtime listening for the stop signals
/// (tokio tells every runtime listening for a signal).
struct StopWatchdog {
    /// Dropped when the main runtime has stopped.
    done: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StopWatchdog {
    fn start(shutdown_timeout: Duration, exits: Exits) -> Result<StopWatchdog, ServerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        // Registered here, before the main runtime can be busy.
        let mut signals =
            runtime.block_on(async { Signals::new() }).map_err(ServerError::Runtime)?;
        let (done, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stop-watchdog".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let graceful = tokio::select! {
                        graceful = signals.wait() => graceful,
                        _ = &mut stopped => return,
                    };
                    let grace = if graceful { shutdown_timeout } else { QUIT_GRACE };
                    if tokio::time::timeout(grace, &mut stopped).await.is_ok() {
                        return;
                    }
                    // Whatever the hooks do (a panic included), the
                    // process ends: a stop that ran out of time never
                    // leaves it behind. Writing the report may block (a
                    // full stderr pipe whose reader stalled): past
                    // EXIT_DEADLINE the process ends without it.
                    let status = if graceful { CUT_STATUS } else { 0 };
                    std::thread::spawn(move || {
                        std::thread::sleep(EXIT_DEADLINE);
                        std::process::exit(status)
                    });
                    let Exits { report_stuck, clean_up, .. } = exits;
                    if graceful {
                        tracing::error!(
                            "requests still running {grace:?} after the stop signal: cutting them"
                        );
                        let _ =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(report_stuck));
                    } else {
                        tracing::info!("shutting down now (the request running inline is cut)");
                    }
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(clean_up));
                    rwsgi_log::flush(Duration::from_millis(500));
                    std::process::exit(status);
                });
            })
            .map_err(ServerError::Runtime)?;
        Ok(StopWatchdog { done: Some(done), thread: Some(thread) })
    }
}

impl Drop for StopWatchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run<R: Responder>(
    listeners: Vec<Listener>,
    responder: R,
    config: ServerConfig,
    mut signals: Signals,
    last_listeners: Arc<dyn Fn() -> bool + Send + Sync>,
    ready: impl FnOnce() + Send,
    doorbell: Arc<Doorbell>,
) -> Result<(), ServerError> {
    let shutdown_timeout = config.shutdown_timeout;
    let ctx = Arc::new(Context::new(config, responder));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    for listener in listeners {
        let accept = AcceptLoop {
            ctx: Arc::clone(&ctx),
            stop: stop_rx.clone(),
            tracker: tracker.clone(),
            doorbell: Arc::clone(&doorbell),
            last_listeners: Arc::clone(&last_listeners),
        };
        doorbell.spawn(&tracker, Box::pin(accept.run(listener)));
    }
    // Not tracked: they never end by themselves.
    tokio::spawn(crate::doorbell::keep_time(Arc::clone(&ctx.connections)));
    let (spare, connections) = (Arc::clone(&ctx.spare_files), Arc::clone(&ctx.connections));
    tokio::spawn(crate::conn::trim_spare_files(spare, connections));
    if ctx.config.no_master {
        let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Runtime)?;
        // Not tracked: the stop does not wait for it.
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::warn!(
                    "SIGHUP: without a master there are no workers to reload (run with \
                     --master for graceful reloads); ignored"
                );
            }
        });
    }
    // The accept loops register their sockets when first polled; `ready`
    // means the sockets are listening (the kernel queues connections).
    ready();
    let graceful = signals.wait().await;
    let _ = stop_tx.send(true);
    ctx.connections.stop();
    tracker.close();
    if graceful {
        // Past `shutdown_timeout` the watchdog ends the process.
        tracing::info!("shutting down: finishing requests in flight (up to {shutdown_timeout:?})");
        tracker.wait().await;
    } else {
        tracing::info!("shutting down now");
    }
    Ok(())
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// Waits for a stop signal; true when the stop is graceful.
    async fn wait(&mut self) -> bool {
        tokio::select! {
            _ = self.int.recv() => true,
            _ = self.term.recv() => true,
            _ = self.quit.recv() => false,
        }
    }
}

/// How long a stopping worker goes on taking queued connections, at most.
const DRAIN_FOR: Duration = Duration::from_millis(100);

struct AcceptLoop<R> {
    ctx: Arc<Context<R>>,
    stop: watch::Receiver<bool>,
    tracker: TaskTracker,
    /// Connections are spawned through it: their responses are answered
    /// from other threads.
    doorbell: Arc<Doorbell>,
    /// See [`Exits::last_listeners`].
    last_listeners: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl<R: Responder> AcceptLoop<R> {
    async fn run(mut self, listener: Listener) {
        let local = listener.local.clone();
        let (fd, tcp) = match listener.kind {
            ListenerKind::Tcp(std) => (OwnedFd::from(std), true),
            ListenerKind::Unix(std, _) => (OwnedFd::from(std), false),
        };
        let acceptor = match Acceptor::new(fd) {
            Ok(acceptor) => acceptor,
            Err(err) => return tracing::error!("{local}: {err}"),
        };
        loop {
            if !self.room_for_more().await {
                return self.drain(&acceptor, &local, tcp, listener.protocol).await;
            }
            // The stop is seen here, or while the accept waits: a queued
            // connection is taken without putting the loop among the stop
            // signal's waiters and taking it out again.
            if self.stop.has_changed().unwrap_or(true) {
                return self.drain(&acceptor, &local, tcp, listener.protocol).await;
            }
            let accepted = tokio::select! {
                biased;
                accepted = acceptor.accept() => accepted,
                _ = self.stop.changed() => {
                    return self.drain(&acceptor, &local, tcp, listener.protocol).await;
                }
            };
            match accepted {
                Ok((socket, peer)) => self.take(socket, peer, &local, tcp, listener.protocol).await,
                Err(err) => accept_failed(err).await,
            }
        }
    }

    /// On a graceful stop, before the listener closes: first shrinks its
    /// backlog to nothing, so the kernel stops queueing new connections
    /// (a load balancer's connect fails and it tries the next host), then
    /// serves those already queued (their clients sent their requests,
    /// and closing the socket over them would reset each), then lets the
    /// listener go. For [`DRAIN_FOR`] at most. Not at all in a reload:
    /// the socket stays open in the siblings, which take them.
    async fn drain(
        &self,
        acceptor: &Acceptor,
        local: &SocketAddress,
        tcp: bool,
        protocol: Protocol,
    ) {
        if !(self.last_listeners)() {
            return;
        }
        acceptor.stop_queueing();
        let until = std::time::Instant::now() + DRAIN_FOR;
        while std::time::Instant::now() < until {
            match acceptor.try_accept() {
                Ok((socket, peer)) => self.take(socket, peer, local, tcp, protocol).await,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    async fn take(
        &self,
        socket: socket2::Socket,
        peer: socket2::SockAddr,
        local: &SocketAddress,
        tcp: bool,
        protocol: Protocol,
    ) {
        let peer = match peer.as_socket() {
            Some(addr) => SocketAddress::Tcp(addr),
            None => SocketAddress::Unix(None),
        };
        let info = ConnInfo::new(peer, local.clone());
        if tcp {
            let _ = socket.set_tcp_nodelay(true);
            self.serve(LazyStream::<TcpStream>::new(socket), info, protocol).await;
        } else {
            self.serve(LazyStream::<UnixStream>::new(socket), info, protocol).await;
        }
    }

    /// Waits while the worker cannot take one more connection: at
    /// `worker-connections` with no idle connection to close for it, or,
    /// with siblings, while its responder's threads are all taken
    /// (`accept_limit`). False when the server stops meanwhile.
    async fn room_for_more(&mut self) -> bool {
        let connections = &self.ctx.connections;
        let responder_free = async {
            if let (Some(load), Some(limit)) = (&self.ctx.load, self.ctx.config.accept_limit) {
                load.below(limit).await;
            }
        };
        // Room first: there usually is some, and a stop meanwhile is seen
        // before the next accept.
        tokio::select! {
            biased;
            () = async { connections.room().await; responder_free.await } => true,
            _ = self.stop.changed() => false,
        }
    }

    async fn serve<S: Stream>(&self, stream: S, info: ConnInfo, protocol: Protocol) {
        let limits = self.ctx.config.limits;
        match protocol {
            Protocol::Http => self.serve_with(stream, info, Http1Codec::new(limits)).await,
            Protocol::Uwsgi => self.serve_with(stream, info, UwsgiCodec::new(limits)).await,
            Protocol::FastCgi => {
                let values = self.ctx.config.fastcgi;
                self.serve_with(stream, info, FastCgiCodec::new(limits, values)).await
            }
        }
    }

    /// Runs the connection here until it first has to wait, and only then
    /// makes it a task of its own. A connection-per-request exchange whose
    /// request is already there and whose app runs inline ends in that
    /// first poll, without a task to schedule, track and free.
    async fn serve_with<S: Stream, C: ServerCodec>(&self, stream: S, info: ConnInfo, codec: C) {
        let open = self.ctx.connections.open();
        // Room is made (the oldest idle connection closed) only for a
        // connection that is here to take it.
        self.ctx.connections.accepted();
        let conn = Connection::new(stream, codec, info, Arc::clone(&self.ctx), open);
        let mut run = Box::pin(conn.run());
        // Whatever it registered to wait on is registered again, with the
        // task's waker, when the task first polls it.
        let done = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx).is_ready())).await;
        if !done {
            self.doorbell.spawn(&self.tracker, run);
        }
    }
}

/// Out of descriptors or memory: say so and let in-flight work finish
/// before trying again, instead of spinning.
async fn accept_failed(err: std::io::Error) {
    tracing::error!("accept: {err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rwsgi_proto::{Replies, Request, SocketAddress};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// Stops the server at the first request, and leaves it unanswered.
    struct StopsAtFirstRequest(watch::Sender<bool>);

    impl Responder for StopsAtFirstRequest {
        async fn respond(&self, _: Request) -> Replies {
            let _ = self.0.send(true);
            Replies::default()
        }
    }

    /// The stop is seen before the next accept. The first queued
    /// connection's request stops the server while the loop serves it; the
    /// loop then takes none of those queued behind it (in a reload, as
    /// here, the siblings take them).
    #[test]
    fn a_stop_is_seen_before_the_next_accept() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let mut first = TcpStream::connect(address).unwrap();
        first.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let _queued: Vec<_> = (0..3).map(|_| TcpStream::connect(address).unwrap()).collect();
        let probe = listener.try_clone().unwrap();

        let (runtime, doorbell) = crate::doorbell::runtime().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let responder = StopsAtFirstRequest(stop_tx);
        let accept = AcceptLoop {
            ctx: Arc::new(Context::new(crate::ServerConfig::default(), responder)),
            stop,
            tracker: TaskTracker::new(),
            doorbell,
            last_listeners: Arc::new(|| false),
        };
        let local = SocketAddress::Tcp(address);
        let listener =
            Listener { kind: ListenerKind::Tcp(listener), protocol: Protocol::Http, local };
        runtime.block_on(accept.run(listener));
        assert_eq!(std::iter::from_fn(|| probe.accept().ok()).count(), 3);
    }
}
