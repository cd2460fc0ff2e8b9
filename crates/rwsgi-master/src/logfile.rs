//! `logto`: every line of every process, the request log and the app's
//! own output go to a file, as in uWSGI: the file is opened in append
//! mode and put in place of the process's stdout and stderr, which forked
//! workers inherit.
//!
//! Rotation needs no signal. `copytruncate` just works (appends continue
//! at the new end). A file renamed or removed (logrotate's `create`, or
//! `log-maxsize`/`touch-logrotate` here) is noticed by every process
//! within a second: its path no longer names the file it writes, so it
//! opens the path again. The master checks on its tick; a worker or a
//! lone process has a small thread that does.

use crate::error::MasterError;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a process looks at its log file's path.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The log file options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `logto` (opened before privileges are dropped), `logto2` (after),
    /// `daemonize`.
    pub path: Option<PathBuf>,
    pub after_drop: bool,
    /// `log-maxsize`: rotate once the file is this big.
    pub maxsize: Option<u64>,
    /// `log-backupname`: the rotated file's name (default: the path and a
    /// timestamp, `app.log.1733334723`).
    pub backup: Option<PathBuf>,
    /// `logger = syslog…`/`rsyslog…`: every line to syslog instead.
    pub syslog: Option<rwsgi_log::syslog::Syslog>,
    /// `req-logger`: request lines apart from the rest.
    pub requests: Option<LogTo>,
}

/// Where a logger of its own sends its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTo {
    /// `file:PATH`.
    File(PathBuf),
    /// `syslog…` or `rsyslog…`.
    Syslog(rwsgi_log::syslog::Syslog),
}

/// The open log file of this process.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    /// The descriptors that write to it: stdout and stderr for `logto`,
    /// one of its own for `req-logger`.
    targets: Vec<RawFd>,
    /// (device, inode) of the file stdout and stderr point at.
    id: (u64, u64),
    /// Since when the path cannot be opened: retried every
    /// [`RETRY_EVERY`], said once.
    failing: Option<std::time::Instant>,
}

/// How often a log file that cannot be opened again is retried.
const RETRY_EVERY: Duration = Duration::from_secs(10);

fn open(path: &Path) -> std::io::Result<File> {
    // uWSGI's mode: owner read-write, group read.
    OpenOptions::new().append(true).create(true).mode(0o640).open(path)
}

/// Puts `file` in place of the `targets` descriptors.
fn install(file: &File, targets: &[RawFd]) -> std::io::Result<()> {
    for &target in targets {
        // SAFETY: dup2 atomically replaces the target with the open log
        // file; no Rust object owns those descriptors (std's handles only
        // borrow 1 and 2; a req-logger's is leaked for the process's
        // life), and a write racing with it lands in one file or the other.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl LogFile {
    /// Opens `path` and makes it this process's stdout and stderr.
    /// A relative path is relative to where rwsgi started (before
    /// `chdir`), and stays so for every later reopening.
    pub(crate) fn start(path: &Path) -> Result<LogFile, MasterError> {
        let error = |source| MasterError::Log { path: path.to_path_buf(), source };
        let path = std::path::absolute(path).map_err(error)?;
        let file = open(&path).map_err(error)?;
        let targets = vec![libc::STDOUT_FILENO, libc::STDERR_FILENO];
        install(&file, &targets).map_err(error)?;
        let id = identity(&file.metadata().map_err(error)?);
        Ok(LogFile { path, targets, id, failing: None })
    }

    /// `req-logger = file:PATH`: a descriptor of its own for the request
    /// lines, which every forked worker inherits.
    pub(crate) fn start_requests(path: &Path) -> Result<LogFile, MasterError> {
        let error = |source| MasterError::Log { path: path.to_path_buf(), source };
        let path = std::path::absolute(path).map_err(error)?;
        let file = open(&path).map_err(error)?;
        let id = identity(&file.metadata().map_err(error)?);
        let fd = file.into_raw_fd();
        rwsgi_log::send_requests_to(fd);
        Ok(LogFile { path, targets: vec![fd], id, failing: None })
    }

    /// The log file a forked worker inherited on its stdout and stderr.
    pub(crate) fn inherited(&self) -> LogFile {
        let (path, targets) = (self.path.clone(), self.targets.clone());
        // SAFETY: fstat only fills the zeroed buffer for the first target.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let id = if unsafe { libc::fstat(targets[0], &mut stat) } == 0 {
            (stat.st_dev, stat.st_ino)
        } else {
            (0, 0)
        };
        LogFile { path, targets, id, failing: None }
    }

    /// Opens the path again if it no longer names the file written to
    /// (renamed, removed, replaced). True when it did.
    pub(crate) fn follow(&mut self) -> bool {
        let current = std::fs::metadata(&self.path).ok().map(|m| identity(&m));
        if current == Some(self.id)
            || self.failing.is_some_and(|since| since.elapsed() < RETRY_EVERY)
        {
            return false;
        }
        self.reopen()
    }

    /// Opens the path again (`touch-logreopen`, or after a rotation).
    pub(crate) fn reopen(&mut self) -> bool {
        match open(&self.path).and_then(|file| {
            install(&file, &self.targets)?;
            Ok(identity(&file.metadata()?))
        }) {
            Ok(id) => {
                self.id = id;
                self.failing = None;
                true
            }
            Err(err) => {
                // Still writing to the old file: better than nothing.
                if self.failing.is_none() {
                    tracing::error!(
                        "cannot reopen the log file {} (retried every {}s): {err}",
                        self.path.display(),
                        RETRY_EVERY.as_secs()
                    );
                }
                self.failing = Some(std::time::Instant::now());
                false
            }
        }
    }

    /// Moves the file aside to `backup` (or the path and a timestamp) and
    /// starts a new one.
    pub(crate) fn rotate(&mut self, backup: Option<&Path>) {
        let aside = backup.map_or_else(
            || {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut name = self.path.clone().into_os_string();
                name.push(format!(".{secs}"));
                PathBuf::from(name)
            },
            Path::to_path_buf,
        );
        match std::fs::rename(&self.path, &aside) {
            Ok(()) => {
                if self.reopen() {
                    tracing::info!("log rotated: the old lines are in {}", aside.display());
                }
            }
            Err(err) => {
                tracing::error!("cannot rotate the log file {}: {err}", self.path.display())
            }
        }
    }

    /// Whether the file has grown to `maxsize`.
    pub(crate) fn full(&self, maxsize: u64) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= maxsize)
    }
}

/// In a worker (or a lone process): a thread that follows the log path
/// every second; `rotate_at` (a lone process only, the master rotates
/// for its workers) also rotates by size.
pub(crate) fn watch(mut files: Vec<LogFile>, rotate_at: Option<(u64, Option<PathBuf>)>) {
    if files.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new().name("rwsgi-logfile".into()).spawn(move || {
        loop {
            std::thread::sleep(WATCH_EVERY);
            for (n, file) in files.iter_mut().enumerate() {
                // Size rotation is the main log's (`log-maxsize`).
                if let (0, Some((maxsize, backup))) = (n, &rotate_at)
                    && file.full(*maxsize)
                {
                    file.rotate(backup.as_deref());
                }
                file.follow();
            }
        }
    });
    if let Err(err) = spawned {
        tracing::warn!("no thread to follow the log file (rotation by rename is not seen): {err}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_file_is_followed_and_a_full_one_rotated() {
        let dir = std::env::temp_dir().join(format!("rwsgi-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.log");
        // Not `start`: the test process's own stderr stays where it is.
        let file = open(&path).unwrap();
        let mut log = LogFile {
            path: path.clone(),
            targets: vec![],
            id: identity(&file.metadata().unwrap()),
            failing: None,
        };
        assert!(!log.follow(), "nothing changed");
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        let moved = log.id;
        // Reopening installs onto stdout/stderr: here only the identity is
        // checked, through a fresh open of the path.
        let _ = open(&path).unwrap();
        let now = identity(&std::fs::metadata(&path).unwrap());
        assert_ne!(now, moved, "a new file at the path");
        assert!(!log.full(1 << 30));
        std::fs::write(&path, vec![b'x'; 100]).unwrap();
        assert!(log.full(100));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
