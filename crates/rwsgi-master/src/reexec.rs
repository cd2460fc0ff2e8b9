//! A preload reload: the master re-executes itself to import the new code,
//! while its workers keep serving. The listening sockets go to the new
//! image as `LISTEN_FDS` (the systemd activation path) and the workers'
//! pids with them (the format is [`crate::handover`]'s): exec keeps the
//! pid, so they are still the new master's children, and it stops them
//! once its own workers are ready.

use crate::error::MasterError;
use crate::handover::{FIRST_FD, Handover};
use rwsgi_server::Listener;
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How this process was started, so a reload starts it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The `rwsgi` binary: `/proc/self/exe` with the same arguments.
    Binary,
    /// A Python interpreter running the package's `rwsgi` console script
    /// (or `python -m rwsgi`): `sys.executable` with `sys.orig_argv`, never
    /// `/proc/self/exe`, which in a virtualenv names the base interpreter
    /// and would lose the virtualenv.
    Interpreter { executable: PathBuf, argv: Vec<OsString> },
}

static LAUNCH: std::sync::OnceLock<Launch> = std::sync::OnceLock::new();

/// Says how this process was started; once, first thing.
pub fn set_launch(launch: Launch) {
    let _ = LAUNCH.set(launch);
}

/// How this process was started ([`Launch::Binary`] unless told).
pub(crate) fn launch() -> &'static Launch {
    LAUNCH.get_or_init(|| Launch::Binary)
}

/// Why a reload cannot re-execute the master now (the interpreter that
/// started it is gone, say a virtualenv rebuilt meanwhile), if it cannot:
/// then the master serves on rather than fail halfway through an exec.
pub(crate) fn unlaunchable() -> Option<String> {
    let Launch::Interpreter { executable, .. } = launch() else { return None };
    match nix::unistd::access(executable, nix::unistd::AccessFlags::X_OK) {
        Ok(()) => None,
        Err(err) => Some(format!("{}: {err}", executable.display())),
    }
}

/// Replaces this process with a fresh copy of itself (same binary, argv
/// and start directory), handing it the listeners and the workers still
/// serving. Only returns on failure.
pub(crate) fn reexec(listeners: &[Listener], cwd: &Path, handover: &Handover) -> MasterError {
    match reexec_inner(listeners, cwd, handover) {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

fn to_c(bytes: &[u8]) -> Result<CString, MasterError> {
    CString::new(bytes)
        .map_err(|_| MasterError::System { call: "exec", source: nix::Error::EINVAL })
}

fn reexec_inner(
    listeners: &[Listener],
    cwd: &Path,
    handover: &Handover,
) -> Result<std::convert::Infallible, MasterError> {
    let (exe, argv): (OsString, Vec<OsString>) = match launch() {
        Launch::Binary => ("/proc/self/exe".into(), std::env::args_os().collect()),
        Launch::Interpreter { executable, argv } => (executable.clone().into(), argv.clone()),
    };
    let argv: Vec<CString> = argv.iter().map(|a| to_c(a.as_bytes())).collect::<Result<_, _>>()?;
    let protocols: Vec<_> = listeners.iter().map(Listener::protocol).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !k.as_bytes().starts_with(b"LISTEN_"))
        .map(|(k, v)| to_c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    for (key, value) in crate::handover::encode(std::process::id(), &protocols, handover) {
        env.push(to_c(format!("{key}={value}").as_bytes())?);
    }
    // First out of the way (above any descriptor that may be a target),
    // then into place from FIRST_FD; dup2 leaves the copies without CLOEXEC.
    let high: Vec<OwnedFd> = listeners
        .iter()
        .map(|l| {
            nix::fcntl::fcntl(l.as_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100))
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .map_err(MasterError::system("dup"))
        })
        .collect::<Result<_, _>>()?;
    for (target, fd) in (FIRST_FD..).zip(&high) {
        // SAFETY: the process is about to exec; whatever descriptor `target`
        // was is closed by dup2 and never used again by this image.
        let status = unsafe { libc::dup2(fd.as_raw_fd(), target) };
        if status < 0 {
            return Err(MasterError::System { call: "dup2", source: nix::Error::last() });
        }
    }
    std::env::set_current_dir(cwd)
        .map_err(|_| MasterError::System { call: "chdir", source: nix::Error::last() })?;
    let exe = to_c(exe.as_bytes())?;
    nix::unistd::execve(&exe, &argv, &env).map_err(MasterError::system("exec"))
}
