//! Errors of the bridge: loading the app and starting Python.

use std::path::PathBuf;

/// A failure to prepare the interpreter or load the app. Each one is a single
/// line for the operator; the Python traceback, if any, is logged apart.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Neither `wsgi-file` nor `module` was given.
    #[error(
        "no app to load: give --wsgi-file FILE, --module MODULE[:CALLABLE] or --mount /PREFIX=APP"
    )]
    NoApp,
    /// The `wsgi-file` does not exist or cannot be read.
    #[error("wsgi-file {path}: {source}")]
    WsgiFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be opened.
        source: std::io::Error,
    },
    /// The virtualenv given by `home` (or `VIRTUAL_ENV`) is unusable.
    #[error("virtualenv {path}: {reason}")]
    Virtualenv {
        /// The virtualenv directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Importing or running the app's module raised.
    #[error("cannot load app from {what}: {summary}")]
    Import {
        /// The file or module.
        what: String,
        /// The exception, one line: `ModuleNotFoundError: No module named 'x' (file.py:3)`.
        summary: String,
    },
    /// The module has no attribute of the callable's name.
    #[error("{what} has no callable named {callable:?}")]
    NoCallable {
        /// The file or module.
        what: String,
        /// The name looked up.
        callable: String,
    },
    /// The attribute exists but cannot be called.
    #[error("{what}: {callable:?} is not callable (it is a {kind})")]
    NotCallable {
        /// The file or module.
        what: String,
        /// The name looked up.
        callable: String,
        /// Its Python type name.
        kind: String,
    },
    /// Any other Python failure while preparing the interpreter.
    #[error("python: {0}")]
    Python(String),
}
