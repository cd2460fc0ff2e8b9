//! `master-fifo = PATH`: uWSGI's master FIFO. One-letter commands written
//! to it (`echo r > PATH`) reach the master's loop, which polls the FIFO
//! with its signals. The master holds a write end of its own, so the FIFO
//! never reads as closed between writers.

use crate::error::MasterError;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A command of the FIFO, as uWSGI's master reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// `r`, `R`, `w`, `W`: reload (gracefully: rwsgi has no brutal reload).
    Reload,
    /// `c`: chain reload.
    ChainReload,
    /// `q`: graceful stop.
    Stop,
    /// `Q`: immediate stop.
    StopNow,
    /// `+`, `-`: one worker more, one less.
    AddWorker,
    RemoveWorker,
    /// `l`: open the log file again; `L`: rotate it.
    ReopenLog,
    RotateLog,
    /// `s`: the stats document into the log.
    PrintStats,
    /// Anything else uWSGI has (`p` pause, `C` cheap mode, `f`, `E`, the
    /// `0`..`9` FIFO slots...), logged as not supported.
    Unsupported(u8),
}

impl Command {
    pub(crate) fn from_byte(byte: u8) -> Option<Command> {
        Some(match byte {
            b'r' | b'R' | b'w' | b'W' => Command::Reload,
            b'c' => Command::ChainReload,
            b'q' => Command::Stop,
            b'Q' => Command::StopNow,
            b'+' => Command::AddWorker,
            b'-' => Command::RemoveWorker,
            b'l' => Command::ReopenLog,
            b'L' => Command::RotateLog,
            b's' => Command::PrintStats,
            b'\n' | b'\r' | b' ' | b'\t' => return None,
            other => Command::Unsupported(other),
        })
    }
}

#[derive(Debug)]
pub(crate) struct MasterFifo {
    path: PathBuf,
    reader: File,
    /// Keeps the FIFO open for writing, so reads never see end-of-file.
    _writer: File,
    /// The master removes the FIFO when it goes; a forked worker only
    /// closes its copies.
    owned: bool,
}

impl MasterFifo {
    pub(crate) fn create(path: &Path) -> Result<MasterFifo, MasterError> {
        let error = |source: std::io::Error| MasterError::Fifo { path: path.to_path_buf(), source };
        let _ = std::fs::remove_file(path);
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|errno| error(std::io::Error::from(errno)))?;
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(error)?;
        let writer = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(error)?;
        tracing::info!("master FIFO at {}", path.display());
        Ok(MasterFifo { path: path.to_path_buf(), reader, _writer: writer, owned: true })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }

    /// The commands written since the last call.
    pub(crate) fn commands(&mut self) -> Vec<Command> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = self.reader.read(&mut buf) {
            bytes.extend_from_slice(&buf[..n]);
        }
        bytes.into_iter().filter_map(Command::from_byte).collect()
    }
}

impl MasterFifo {
    /// In a forked worker: closes its copies, leaves the FIFO to the master.
    pub(crate) fn close_in_child(mut self) {
        self.owned = false;
    }
}

impl Drop for MasterFifo {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commands_arrive_in_order_and_unknown_ones_are_named() {
        let path = std::env::temp_dir().join(format!("rwsgi-fifo-{}", std::process::id()));
        let mut fifo = MasterFifo::create(&path).unwrap();
        assert!(fifo.commands().is_empty());
        let mut writer = OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all(b"r\nc+ -lLsqQp").unwrap();
        drop(writer);
        assert_eq!(
            fifo.commands(),
            [
                Command::Reload,
                Command::ChainReload,
                Command::AddWorker,
                Command::RemoveWorker,
                Command::ReopenLog,
                Command::RotateLog,
                Command::PrintStats,
                Command::Stop,
                Command::StopNow,
                Command::Unsupported(b'p'),
            ]
        );
        assert!(fifo.commands().is_empty(), "a closed writer is no end of file");
        drop(fifo);
        assert!(!path.exists(), "removed with the master");
    }
}
