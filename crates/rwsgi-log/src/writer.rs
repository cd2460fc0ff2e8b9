//! Where request lines go: one writer thread per process, fed by a
//! bounded queue, so a request never waits for a slow disk. Lines go to
//! the process's stderr, which `logto` points at the log file. When the
//! disk cannot keep up and the queue is full, lines are counted and the
//! count is logged instead of blocking.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lines waiting for the writer.
const QUEUE: usize = 16 * 1024;

/// The writer gathers lines this long after the first before writing
/// them at once: under load a line costs no wake-up and no system call of
/// its own, and a line is never more than this late.
const GATHER: Duration = Duration::from_millis(5);

static QUEUE_TX: OnceLock<flume::Sender<Vec<u8>>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn sender() -> &'static flume::Sender<Vec<u8>> {
    QUEUE_TX.get_or_init(|| {
        let (tx, rx) = flume::bounded::<Vec<u8>>(QUEUE);
        let spawned = std::thread::Builder::new().name("rwsgi-log".into()).spawn(move || {
            let stderr = std::io::stderr();
            let mut batch = Vec::with_capacity(64 * 1024);
            while let Ok(line) = rx.recv() {
                batch.extend_from_slice(&line);
                std::thread::sleep(GATHER);
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                }
                let mut out = stderr.lock();
                let _ = out.write_all(&batch);
                batch.clear();
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = writeln!(
                        out,
                        "rwsgi: {dropped} request log lines dropped: the log could not keep up"
                    );
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

/// Queues a line for the log; never blocks.
pub fn write_line(line: Vec<u8>) {
    if sender().try_send(line).is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits (up to `limit`) until the queued lines are written: before a
/// process exits.
pub fn flush(limit: Duration) {
    let Some(tx) = QUEUE_TX.get() else { return };
    let deadline = Instant::now() + limit;
    while !tx.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // The last line taken may still be in write_all: give it a moment.
    std::thread::sleep(Duration::from_millis(5));
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
}
