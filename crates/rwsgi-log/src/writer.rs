//! Where request lines go: one writer thread per process, fed by a
//! bounded queue, so a request never waits for a slow disk. Lines go to
//! the process's stderr (fd 2), which `logto` points at the log file.
//! When the disk cannot keep up and the queue is full, lines are counted
//! and the count is logged instead of blocking.
//!
//! Several processes write to the same stderr: to a file opened for
//! appending each write lands whole, so a batch is one write; to a pipe or
//! a socket (systemd, docker) only writes up to `PIPE_BUF` are, so there a
//! batch goes in pieces of at most 4 KiB that end with a line.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

/// Lines waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// The writer gathers lines this long after the first before writing
/// them at once: under load a line costs no wake-up and no system call of
/// its own, and a line is never more than this late.
const GATHER: Duration = Duration::from_millis(5);

/// The largest write a pipe takes whole (`PIPE_BUF` on Linux).
const ATOMIC_WRITE: usize = 4096;

enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written.
    Flush(flume::Sender<()>),
}

static QUEUE_TX: OnceLock<flume::Sender<Message>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Where request lines go: stderr, unless `req-logger` names a file.
static TARGET: AtomicI32 = AtomicI32::new(libc::STDERR_FILENO);

/// Request lines go to `fd` (a `req-logger` file) instead of stderr.
/// Set by the master before it forks, so every worker inherits it.
pub fn send_requests_to(fd: std::os::fd::RawFd) {
    TARGET.store(fd, Ordering::Relaxed);
}

fn sender() -> &'static flume::Sender<Message> {
    QUEUE_TX.get_or_init(|| {
        let (tx, rx) = flume::bounded::<Message>(QUEUE);
        let spawned = std::thread::Builder::new().name("rwsgi-log".into()).spawn(move || {
            let shared = stderr_is_shared_stream();
            let mut batch = Vec::with_capacity(64 * 1024);
            while let Ok(first) = rx.recv() {
                let mut flushes = Vec::new();
                let take = |message: Message, batch: &mut Vec<u8>, flushes: &mut Vec<_>| match message {
                    Message::Line(line) => batch.extend_from_slice(&line),
                    Message::Flush(done) => flushes.push(done),
                };
                take(first, &mut batch, &mut flushes);
                if flushes.is_empty() {
                    std::thread::sleep(GATHER);
                }
                while let Ok(more) = rx.try_recv() {
                    take(more, &mut batch, &mut flushes);
                }
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    batch.extend_from_slice(
                        format!("rwsgi: {dropped} request log lines dropped: the log could not keep up\n")
                            .as_bytes(),
                    );
                }
                write_out(&batch, shared);
                batch.clear();
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        if spawned.is_err() {
            // No thread to spare: lines are dropped (and counted) rather
            // than written from a request's thread.
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        tx
    })
}

/// Whether the target is a pipe or a socket (writes over `PIPE_BUF` may
/// mix with other processes' there).
fn stderr_is_shared_stream() -> bool {
    // SAFETY: fstat fills the zeroed buffer for the target fd, nothing else.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(TARGET.load(Ordering::Relaxed), &mut stat) } != 0 {
        return false;
    }
    matches!(stat.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
}

/// Writes `bytes` to the target fd (no lock shared with other writers of
/// stderr), in [`pieces`].
fn write_out(bytes: &[u8], shared: bool) {
    for piece in pieces(bytes, shared) {
        if !write_all(piece) {
            return;
        }
    }
}

/// `bytes` in the pieces written at once: all of it, or for a `shared`
/// stream pieces that end with a line and fit an atomic pipe write (a
/// longer line alone).
fn pieces(mut bytes: &[u8], shared: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = if shared && bytes.len() > ATOMIC_WRITE {
            match bytes[..ATOMIC_WRITE].iter().rposition(|&b| b == b'\n') {
                Some(end) => end + 1,
                None => bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |end| end + 1),
            }
        } else {
            bytes.len()
        };
        out.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    out
}

fn write_all(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice to the target fd, which stays
        // open for the process's life.
        let n = unsafe {
            libc::write(TARGET.load(Ordering::Relaxed), bytes.as_ptr().cast(), bytes.len())
        };
        match usize::try_from(n) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            }
            Err(_) => return false,
        }
    }
    true
}

/// Queues a line for the log; never blocks.
pub fn write_line(line: Vec<u8>) {
    if sender().try_send(Message::Line(line)).is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits (up to `limit`) until every line queued so far is written:
/// before a process exits.
pub fn flush(limit: Duration) {
    let Some(tx) = QUEUE_TX.get() else { return };
    let (done, written) = flume::bounded(1);
    if tx.send_timeout(Message::Flush(done), limit).is_ok() {
        let _ = written.recv_timeout(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_queued_and_flushed() {
        for n in 0..100 {
            write_line(format!("rwsgi-log test line {n}\n").into_bytes());
        }
        flush(Duration::from_secs(5));
        assert!(QUEUE_TX.get().is_some_and(flume::Sender::is_empty));
    }

    #[test]
    fn pieces_for_a_pipe_end_with_a_line_and_fit_an_atomic_write() {
        let line = |n: usize| format!("{n:0>99}\n").into_bytes();
        let batch: Vec<u8> = (0..100).flat_map(line).collect();
        let shared = pieces(&batch, true);
        assert!(shared.len() > 2);
        assert!(shared.iter().all(|p| p.len() <= ATOMIC_WRITE && p.ends_with(b"\n")));
        assert_eq!(shared.concat(), batch);
        assert_eq!(pieces(&batch, false), [&batch[..]], "a file takes the batch whole");
        let long = [vec![b'x'; 5000], b"\nshort\n".to_vec()].concat();
        let split = pieces(&long, true);
        assert_eq!(
            split.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [5001, 6],
            "a long line alone"
        );
    }
}
