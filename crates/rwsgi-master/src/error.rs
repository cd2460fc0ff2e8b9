//! The master's one error type: everything that stops the server from
//! starting, or the master from going on.

use std::path::PathBuf;

/// A failure of the process model. Each is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A socket could not be bound or adopted.
    #[error(transparent)]
    Server(#[from] rwsgi_server::ServerError),
    /// The app could not be loaded (`need-app`).
    #[error(transparent)]
    App(#[from] rwsgi_python::BridgeError),
    /// Sockets passed by systemd (or a previous master) do not fit the
    /// configuration.
    #[error("socket activation: {0}")]
    Activation(String),
    /// A resource limit could not be set.
    #[error("{0}")]
    Limit(String),
    /// `chdir` failed.
    #[error("chdir {path}: {source}")]
    Chdir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The pidfile could not be written.
    #[error("master-fifo {path}: {source}")]
    Fifo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stats {addr}: {source}")]
    Stats {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// `logger = syslog…`/`rsyslog…` that cannot be used.
    #[error("syslog logger: {0}")]
    Syslog(String),
    #[error("log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pidfile {path}: {source}")]
    Pidfile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `uid`/`gid` name no known user or group, or cannot be switched to.
    #[error("{option} {value}: {reason}")]
    Privileges {
        /// `uid` or `gid`.
        option: &'static str,
        /// As given.
        value: String,
        /// Why it failed.
        reason: String,
    },
    /// A system call the master depends on failed.
    #[error("{call}: {source}")]
    System {
        /// What was being done.
        call: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// A lazy-apps worker could not load the app before any worker started:
    /// the worker logged why.
    #[error("the app could not be loaded (need-app)")]
    NoApp,
    /// A graceful stop ran out of `reload-mercy`: requests still running
    /// were cut (each was logged, with the Python stacks).
    #[error("stopped, but requests still running after reload-mercy were cut")]
    RequestsCut,
}

impl MasterError {
    /// Wraps a failed system call.
    pub(crate) fn system(call: &'static str) -> impl FnOnce(nix::Error) -> MasterError {
        move |source| MasterError::System { call, source }
    }
}
