//! The tokio core of rwsgi: binds the sockets, accepts connections, and runs
//! one generic connection loop for any [`rwsgi_proto::ServerCodec`], handing
//! each request to a [`rwsgi_proto::Responder`] and writing what comes back.
//!
//! All socket I/O happens here, on one current-thread runtime per worker
//! process. The core knows no Python: a responder answers on threads of its
//! own, or on the runtime's thread when it can answer at once (a static
//! file, a WSGI call run inline). Every read and write has a deadline,
//! every buffer a limit.

#![deny(unsafe_code)]

mod backlog;
mod conn;
mod date;
mod doorbell;
mod error;
mod listener;
mod load;
mod sched;
mod serve;
mod stream;

pub use backlog::accept_queue;
pub use error::ServerError;
pub use listener::{BindAddr, Listener, bind};
pub use sched::prefer_batching;
pub use serve::{CUT_STATUS, Exits, serve};

use rwsgi_proto::Limits;

pub use rwsgi_fastcgi::ManagementValues;
use std::time::Duration;

/// Which protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (`http-socket`), for browsers and nginx `proxy_pass`.
    Http,
    /// The uwsgi binary protocol (`socket`, `uwsgi-socket`), for nginx `uwsgi_pass`.
    Uwsgi,
    /// FastCGI (`fastcgi-socket`), for nginx `fastcgi_pass`.
    FastCgi,
}

impl Protocol {
    /// The option that declares a socket of this protocol.
    pub const fn option(self) -> &'static str {
        match self {
            Protocol::Http => "http-socket",
            Protocol::Uwsgi => "uwsgi-socket",
            Protocol::FastCgi => "fastcgi-socket",
        }
    }
}

/// One socket to serve: where, and which protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// The address to bind.
    pub addr: BindAddr,
    /// The protocol spoken on it.
    pub protocol: Protocol,
}

/// Who owns unix socket files: a user and a group, either kept if `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOwner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Everything the core needs to know, already validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The sockets to bind, in order.
    pub sockets: Vec<SocketSpec>,
    /// Size limits (`buffer-size`, `limit-post`).
    pub limits: Limits,
    /// Deadline for each phase of a request: reading its head, each wait for
    /// body bytes, each write (`socket-timeout`).
    pub socket_timeout: Duration,
    /// How long an idle keep-alive connection may wait for its next request
    /// (`http-keepalive-timeout`); zero disables keep-alive.
    pub keepalive_timeout: Duration,
    /// Bodies up to this many bytes are read into memory before the app
    /// is called, longer ones into a temporary file, so a slow client never
    /// holds a Python thread (`post-buffering`; 0: every body streams).
    pub post_buffering: u64,
    /// The most of a body kept in a temporary file; the rest streams
    /// (`post-buffering-disk`; 0: none, beyond `post_buffering` it streams).
    pub spool_limit: u64,
    /// Permissions for unix sockets (`chmod-socket`).
    pub chmod_socket: Option<u32>,
    /// Owner for unix sockets (`chown-socket`).
    pub chown_socket: Option<SocketOwner>,
    /// Remove unix socket files on exit (`vacuum`).
    pub vacuum: bool,
    /// Listen backlog (`listen`).
    pub listen_backlog: u32,
    /// The request log: which requests get a line, and its format.
    /// `None`: no request is logged.
    pub access_log: Option<std::sync::Arc<rwsgi_log::AccessLog>>,
    /// This worker's number, for the request log (0 without a master).
    pub worker_id: usize,
    /// Told of every answered request (the master's counters).
    pub on_answered: Option<AnsweredHook>,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// What FastCGI `GET_VALUES` reports.
    pub fastcgi: ManagementValues,
    /// With sibling workers on the same sockets: accept a connection only
    /// while fewer than this many requests have their app running or ready
    /// to run, so a worker whose Python threads are all taken leaves new
    /// connections to an idle one instead of queueing them behind a slow
    /// request (as uWSGI's workers do). Connections that only wait (for a
    /// head, a body, the next request, a slow reader) do not count. `None`
    /// for a lone worker, which gains nothing by leaving them in the backlog.
    pub accept_limit: Option<usize>,
    /// Open connections per worker (`worker-connections`): at the limit the
    /// oldest idle keep-alive connection closes to make room; with none
    /// idle, new ones wait in the listen queue. `None`: from `ulimit -n`.
    pub max_connections: Option<usize>,
    /// No master: SIGHUP cannot reload anything, and the log says so
    /// (a master's workers ignore it; the master reloads them).
    pub no_master: bool,
}

/// What the core tells of each request it answered.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    /// `http`, `uwsgi` or `fastcgi`.
    pub protocol: &'static str,
    pub status: u16,
    /// Response body bytes.
    pub bytes: u64,
    /// Bytes read from the connection since the previous request ended
    /// (this request's head and body, as on the wire).
    pub received: u64,
    pub duration: Duration,
    /// The app, a static file or a route rule.
    pub answerer: rwsgi_proto::Answerer,
}

/// Called once per answered request, on the I/O thread: must be quick.
#[derive(Clone)]
pub struct AnsweredHook(pub std::sync::Arc<dyn Fn(&Answered) + Send + Sync>);

impl std::fmt::Debug for AnsweredHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnsweredHook")
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            sockets: Vec::new(),
            limits: Limits::default(),
            socket_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(75),
            post_buffering: 1 << 20,
            spool_limit: 64 << 20,
            chmod_socket: None,
            chown_socket: None,
            vacuum: false,
            listen_backlog: 1024,
            access_log: None,
            worker_id: 0,
            on_answered: None,
            shutdown_timeout: Duration::from_secs(30),
            fastcgi: ManagementValues { max_conns: 65, max_reqs: 1 },
            accept_limit: None,
            max_connections: None,
            no_master: false,
        }
    }
}
