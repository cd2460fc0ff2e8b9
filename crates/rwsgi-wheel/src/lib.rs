//! `rwsgi._rwsgi`: the native half of the Python package. Its `run()` is
//! what the `rwsgi` console script and `python -m rwsgi` call: rwsgi's
//! command line, run inside the interpreter that imported it, so the app
//! gets that interpreter's virtualenv, `sys.executable`, `site` and `.pth`
//! files as they are, and a reload starts the same interpreter again.

use pyo3::prelude::*;

/// Same allocator as the binary (see `src/main.rs` at the workspace root).
#[global_allocator]
static ALLOCATOR: rwsgi_cli::Allocator = rwsgi_cli::Allocator;

#[pymodule]
mod _rwsgi {
    use pyo3::prelude::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    /// Runs rwsgi with `sys.argv`, then ends the process with its exit
    /// status. The GIL is released meanwhile: rwsgi takes it where it
    /// runs Python.
    #[pyfunction]
    fn run(py: Python<'_>) -> PyResult<()> {
        let sys = py.import("sys")?;
        let argv: Vec<OsString> = sys.getattr("argv")?.extract()?;
        let executable: PathBuf = sys.getattr("executable")?.extract()?;
        let orig_argv: Vec<OsString> = sys.getattr("orig_argv")?.extract()?;
        let launch = rwsgi_cli::Launch::Interpreter { executable, argv: orig_argv };
        // Python's own SIGINT handler would raise KeyboardInterrupt in
        // whatever app code runs on this thread next: rwsgi handles SIGINT
        // itself (a graceful stop), as the binary, whose embedded
        // interpreter installs no handlers.
        // SAFETY: restores the default action; no handler code involved.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
        let status = py.detach(|| rwsgi_cli::main(argv, launch));
        // Ended as the binary ends: Python's own output flushed, the
        // interpreter not finalised (which would wait for the app's
        // non-daemon threads, and run `atexit` handlers the workers
        // already ran).
        let _ = py.run(c"import sys\nsys.stdout.flush()\nsys.stderr.flush()", None, None);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        std::process::exit(i32::from(status))
    }
}
