//! Forking the master, with CPython's fork protocol when the master has
//! loaded the app (preload).

use crate::error::MasterError;
use nix::unistd::{ForkResult, Pid};
use pyo3::Python;

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
/// reinitialised (what `os.fork()` does).
pub(crate) fn fork() -> Result<Side, MasterError> {
    // SAFETY: Py_IsInitialized may be called at any time, GIL or not.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return fork_plain();
    }
    Python::attach(|_py| {
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

fn fork_plain() -> Result<Side, MasterError> {
    // SAFETY: the master never starts threads (no runtime, no Python
    // threads, blocking system calls only), so the child is a complete copy
    // and may go on running arbitrary code.
    match unsafe { nix::unistd::fork() }.map_err(MasterError::system("fork"))? {
        ForkResult::Child => Ok(Side::Child),
        ForkResult::Parent { child } => Ok(Side::Parent(child)),
    }
}
