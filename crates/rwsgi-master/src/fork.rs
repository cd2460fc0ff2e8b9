//! Forking the master, with CPython's fork protocol when the master has
//! loaded the app (preload).

use crate::error::MasterError;
use nix::unistd::{ForkResult, Pid};
use pyo3::Python;
use pyo3::prelude::PyAnyMethods;

/// Which side of the fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Child,
    Parent(Pid),
}

/// Forks. The caller must be single-threaded (the master always is).
/// Once the interpreter is initialised in this process (the master loaded
/// the app, or rwsgi runs inside `python`), the fork follows CPython's
/// protocol so the child's interpreter is consistent: the GIL and the
/// import lock are taken around the fork and the child's thread state is
/// reinitialised (what `os.fork()` does), after the collector is told to
/// leave what the master holds alone (see [`freeze_for_fork`]).
pub(crate) fn fork() -> Result<Side, MasterError> {
    // SAFETY: Py_IsInitialized may be called at any time, GIL or not.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return fork_plain();
    }
    Python::attach(|py| {
        freeze_for_fork(py);
        // SAFETY: the GIL is held (inside `attach`), as PyOS_BeforeFork requires.
        unsafe { pyo3::ffi::PyOS_BeforeFork() };
        let side = fork_plain();
        match side {
            // SAFETY: in the new child, right after the fork, with the GIL
            // that PyOS_BeforeFork took still held by this thread.
            Ok(Side::Child) => unsafe { pyo3::ffi::PyOS_AfterFork_Child() },
            // SAFETY: in the parent after fork (or a failed fork), GIL held,
            // pairing the PyOS_BeforeFork above.
            _ => unsafe { pyo3::ffi::PyOS_AfterFork_Parent() },
        }
        side
    })
}

/// Moves every object the master holds (the preloaded app) into the
/// collector's permanent generation, as CPython's documentation advises
/// before a fork without exec. Otherwise the first full collection in a
/// worker writes to every object's header and so copies every page of the
/// app: a Django worker's PSS goes from 12 to 22 MiB. The objects live on
/// as before; cycles among them are never collected, as they would not be
/// in the master either. An app may still call `gc.unfreeze()`.
fn freeze_for_fork(py: Python<'_>) {
    if let Err(err) = py.import("gc").and_then(|gc| gc.call_method0("freeze")) {
        tracing::warn!("gc.freeze() before fork: {err}");
    }
}

fn fork_plain() -> Result<Side, MasterError> {
    // SAFETY: the master never starts threads (no runtime, no Python
    // threads, blocking system calls only), so the child is a complete copy
    // and may go on running arbitrary code.
    match unsafe { nix::unistd::fork() }.map_err(MasterError::system("fork"))? {
        ForkResult::Child => Ok(Side::Child),
        ForkResult::Parent { child } => Ok(Side::Parent(child)),
    }
}
