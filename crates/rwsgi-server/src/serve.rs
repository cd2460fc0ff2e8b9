//! The runtime: accept loops, signals, graceful shutdown.

use crate::conn::{Connection, Context};
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
/// every listener is being accepted on.
///
/// A responder that runs application code on this thread
/// ([`Responder::runs_inline`]) keeps the runtime from seeing signals
/// while it does: SIGINT and SIGTERM take effect after it, and SIGQUIT is
/// seen by a watchdog thread, which ends the process if the runtime has
/// not stopped within [`QUIT_GRACE`], after calling `on_quit` (the
/// clean-up the caller would have done after this returned).
pub fn serve<R: Responder>(
    listeners: Vec<Listener>,
    responder: R,
    config: ServerConfig,
    ready: impl FnOnce() + Send,
    on_quit: impl FnOnce() + Send + 'static,
) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let watchdog = if responder.runs_inline() { Some(QuitWatchdog::start(on_quit)?) } else { None };
    let served = runtime.block_on(run(listeners, responder, config, ready));
    drop(watchdog);
    rwsgi_log::flush(Duration::from_secs(2));
    served
}

/// How long SIGQUIT leaves the runtime to stop by itself before the
/// watchdog ends the process.
const QUIT_GRACE: Duration = Duration::from_millis(200);

/// A thread with its own small runtime listening for SIGQUIT (tokio tells
/// every runtime listening for a signal): when a request running inline
/// keeps the main runtime from seeing it, the process exits from here, as
/// the main runtime would have (status 0, requests cut).
struct QuitWatchdog {
    /// Dropped when the main runtime has stopped.
    done: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl QuitWatchdog {
    fn start(on_quit: impl FnOnce() + Send + 'static) -> Result<QuitWatchdog, ServerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        // Registered here, before the main runtime can be busy.
        let mut quit =
            runtime.block_on(async { signal(SignalKind::quit()) }).map_err(ServerError::Runtime)?;
        let (done, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("quit-watchdog".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = quit.recv() => {}
                        _ = &mut stopped => return,
                    }
                    if tokio::time::timeout(QUIT_GRACE, &mut stopped).await.is_err() {
                        tracing::info!("shutting down now (the request running inline is cut)");
                        on_quit();
                        rwsgi_log::flush(Duration::from_millis(500));
                        std::process::exit(0);
                    }
                });
            })
            .map_err(ServerError::Runtime)?;
        Ok(QuitWatchdog { done: Some(done), thread: Some(thread) })
    }
}

impl Drop for QuitWatchdog {
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
    ready: impl FnOnce() + Send,
) -> Result<(), ServerError> {
    let shutdown_timeout = config.shutdown_timeout;
    let ctx = Arc::new(Context::new(config, responder));
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    let mut signals = Signals::new().map_err(ServerError::Runtime)?;
    for listener in listeners {
        let accept =
            AcceptLoop { ctx: Arc::clone(&ctx), stop: stop_rx.clone(), tracker: tracker.clone() };
        tracker.spawn(accept.run(listener));
    }
    // The sockets are registered with the runtime when the accept loops
    // first run: yield once so they have.
    tokio::task::yield_now().await;
    ready();
    let graceful = signals.wait().await;
    let _ = stop_tx.send(true);
    ctx.connections.stop();
    tracker.close();
    if graceful {
        tracing::info!("shutting down: finishing requests in flight (up to {shutdown_timeout:?})");
        if tokio::time::timeout(shutdown_timeout, tracker.wait()).await.is_err() {
            tracing::warn!("requests still running after {shutdown_timeout:?}; stopping anyway");
        }
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

/// Queued connections a stopping worker still takes, at most: the most
/// a listen queue can hold here.
const DRAIN_AT_MOST: usize = 65_536;

struct AcceptLoop<R> {
    ctx: Arc<Context<R>>,
    stop: watch::Receiver<bool>,
    tracker: TaskTracker,
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
            let accepted = tokio::select! {
                biased;
                _ = self.stop.changed() => {
                    return self.drain(&acceptor, &local, tcp, listener.protocol).await;
                }
                accepted = acceptor.accept() => accepted,
            };
            match accepted {
                Ok((socket, peer)) => self.take(socket, peer, &local, tcp, listener.protocol).await,
                Err(err) => accept_failed(err).await,
            }
        }
    }

    /// On a graceful stop, before the listener closes: serves the
    /// connections the kernel has already queued (their clients sent
    /// their requests, and a load balancer would otherwise get a reset
    /// for each), then lets the listener go, so new ones are refused and
    /// sent elsewhere. (With several workers the socket closes with the
    /// last one; each takes what it finds.)
    async fn drain(
        &self,
        acceptor: &Acceptor,
        local: &SocketAddress,
        tcp: bool,
        protocol: Protocol,
    ) {
        for _ in 0..DRAIN_AT_MOST {
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
        let info = ConnInfo {
            peer: match peer.as_socket() {
                Some(addr) => SocketAddress::Tcp(addr),
                None => SocketAddress::Unix(None),
            },
            local: local.clone(),
        };
        if tcp {
            let _ = socket.set_tcp_nodelay(true);
            self.serve(LazyStream::<TcpStream>::new(socket), info, protocol).await;
        } else {
            self.serve(LazyStream::<UnixStream>::new(socket), info, protocol).await;
        }
    }

    /// Waits while the worker cannot take one more connection: at
    /// `worker-connections` with no idle connection to close for it, or,
    /// with siblings, while its Python threads are all taken
    /// (`accept_limit`). False when the server stops meanwhile.
    async fn room_for_more(&mut self) -> bool {
        let connections = &self.ctx.connections;
        let python = async {
            if let (Some(load), Some(limit)) = (&self.ctx.load, self.ctx.config.accept_limit) {
                load.below(limit).await;
            }
        };
        tokio::select! {
            () = async { connections.room().await; python.await } => true,
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
            self.tracker.spawn(run);
        }
    }
}

/// Out of descriptors or memory: say so and let in-flight work finish
/// before trying again, instead of spinning.
async fn accept_failed(err: std::io::Error) {
    tracing::error!("accept: {err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
