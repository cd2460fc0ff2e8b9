//! A preload reload: the master re-executes itself to import the new code,
//! while its workers keep serving. The listening sockets go to the new
//! image as `LISTEN_FDS` (the systemd activation path) and the workers'
//! pids in [`PREVIOUS_VAR`]: exec keeps the pid, so they are still the new
//! master's children, and it stops them once its own workers are ready.

use crate::error::MasterError;
use crate::systemd::FIRST_FD;
use nix::unistd::Pid;
use rwsgi_server::Listener;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Set by a master that re-executes itself: the sockets are its own (so
/// `vacuum` removes them) and the pidfile is already written. (Not
/// `RWSGI_*`: that namespace holds options, and the config warns about
/// names it does not know.)
pub(crate) const REEXEC_VAR: &str = "_RWSGI_REEXEC";
/// The previous generation's workers, as comma-separated pids.
const PREVIOUS_VAR: &str = "_RWSGI_PREVIOUS_WORKERS";
/// Set for a chain reload: the new master starts its workers one at a
/// time, retiring one old worker as each new one is ready.
const CHAIN_VAR: &str = "_RWSGI_CHAIN";

/// What a master hands to its next image besides the sockets.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Handover {
    /// Its workers, still serving the previous code.
    pub(crate) workers: Vec<Pid>,
    /// Replace them one at a time.
    pub(crate) chain: bool,
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
    let argv: Vec<CString> =
        std::env::args_os().map(|a| to_c(a.as_bytes())).collect::<Result<_, _>>()?;
    let names: Vec<&str> = listeners.iter().map(|l| l.protocol().option()).collect();
    let pids: Vec<String> = handover.workers.iter().map(|p| p.to_string()).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !k.as_bytes().starts_with(b"LISTEN_"))
        .map(|(k, v)| to_c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    for (key, value) in [
        ("LISTEN_PID", std::process::id().to_string()),
        ("LISTEN_FDS", listeners.len().to_string()),
        ("LISTEN_FDNAMES", names.join(":")),
        (REEXEC_VAR, "1".to_string()),
        (PREVIOUS_VAR, pids.join(",")),
        (CHAIN_VAR, if handover.chain { "1" } else { "" }.to_string()),
    ] {
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
    let exe = to_c(b"/proc/self/exe")?;
    nix::unistd::execve(&exe, &argv, &env).map_err(MasterError::system("exec"))
}

/// What a previous image of this master handed over, from the environment
/// (removed, so workers and the app never see it).
pub(crate) fn take_handover() -> Handover {
    let workers = std::env::var(PREVIOUS_VAR).unwrap_or_default();
    let chain = std::env::var(CHAIN_VAR).is_ok_and(|v| v == "1");
    for name in [PREVIOUS_VAR, CHAIN_VAR] {
        // SAFETY: called at the master's start, before any fork, pool or
        // runtime: no other thread reads the environment.
        unsafe { std::env::remove_var(name) };
    }
    Handover { workers: parse_pids(&workers), chain }
}

fn parse_pids(text: &str) -> Vec<Pid> {
    text.split(',')
        .filter_map(|p| p.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_workers_parse_and_ignore_junk() {
        assert_eq!(parse_pids(""), vec![]);
        assert_eq!(parse_pids("12,34"), vec![Pid::from_raw(12), Pid::from_raw(34)]);
        assert_eq!(parse_pids("12,,x,-1,0, 7"), vec![Pid::from_raw(12), Pid::from_raw(7)]);
    }
}
