//! The scoreboard: what workers tell the master, in memory shared across
//! `fork` (an anonymous `MAP_SHARED` mapping made before the first fork).
//!
//! Every field is an `AtomicU64`, so master and workers read and write it
//! without locks or torn values. One slot per worker process: whether it is
//! ready, why it asks to be recycled, requests served; inside it one
//! sub-slot per Python thread: when its current request started (0: idle)
//! and its method and URI, for the harakiri log line, and (with `stats`)
//! its variables. The text is written before the start time is published,
//! and read after it; a request that ends meanwhile can only garble a log
//! line. The variables are read only if the start time is the same after
//! the copy as before.

use crate::error::MasterError;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a worker asks to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recycle {
    /// `max-requests` reached.
    MaxRequests = 1,
    /// `reload-on-rss` exceeded.
    Rss = 2,
    /// `max-worker-lifetime` reached (set by the master).
    Lifetime = 3,
}

impl Recycle {
    fn from_word(word: u64) -> Option<Recycle> {
        match word {
            1 => Some(Recycle::MaxRequests),
            2 => Some(Recycle::Rss),
            3 => Some(Recycle::Lifetime),
            _ => None,
        }
    }

    /// What the log says.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Recycle::MaxRequests => "max-requests reached",
            Recycle::Rss => "reload-on-rss exceeded",
            Recycle::Lifetime => "max-worker-lifetime reached",
        }
    }
}

/// Bytes of `METHOD URI` kept per thread for the harakiri log line.
const TEXT_WORDS: usize = 16;
/// The running request's variables for the stats (`KEY=VALUE` entries,
/// each ended by a NUL), after a word with their length: 4 KiB a thread.
const VARS_WORDS: usize = 512;
pub(crate) const VARS_BYTES: usize = (VARS_WORDS - 1) * 8;
/// started, the text, requests run, the variables.
const THREAD_WORDS: usize = 2 + TEXT_WORDS + VARS_WORDS;
/// ready, recycle reason, requests served (by the app), then the
/// counters of every answered request ([`Counters`]), then whether the
/// master has let its listeners go.
const WORKER_WORDS: usize = 3 + COUNTER_WORDS + 1;
const RELEASED_WORD: usize = 3 + COUNTER_WORDS;
/// Where each of a worker's [`Counters`] is, from the first.
const ANSWERED: usize = 0;
const TX: usize = 1;
const MICROS: usize = 2;
const RX: usize = 3;
const EXCEPTIONS: usize = 4;
/// By protocol (http, uwsgi, fastcgi) and status class (1xx..5xx).
const BY_CLASS: usize = 5;
/// By duration ([`DURATION_BUCKETS_US`]; longer ones only in the total).
const BY_DURATION: usize = BY_CLASS + 3 * 5;
/// Those a static file and those a route rule answered.
const STATIC: usize = BY_DURATION + DURATION_BUCKETS_US.len();
const ROUTED: usize = STATIC + 1;
const COUNTER_WORDS: usize = ROUTED + 1;

/// The upper bounds of the request-duration histogram, in µs: 1 ms to 10 s.
pub(crate) const DURATION_BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// The protocols, in the scoreboard's order.
pub(crate) const PROTOCOLS: [&str; 3] = ["http", "uwsgi", "fastcgi"];

/// A worker's counters of answered requests (static files and route
/// answers included), for the stats server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) answered: u64,
    /// Response body bytes sent.
    pub(crate) tx: u64,
    pub(crate) micros: u64,
    /// Request bytes read (heads and bodies, as on the wire).
    pub(crate) rx: u64,
    /// Exceptions the app raised.
    pub(crate) exceptions: u64,
    /// `[protocol][class - 1]`, in [`PROTOCOLS`] order.
    pub(crate) by_protocol_class: [[u64; 5]; 3],
    /// Requests per [`DURATION_BUCKETS_US`] bucket (not cumulative).
    pub(crate) by_duration: [u64; DURATION_BUCKETS_US.len()],
    /// Answered by a static file, by a route rule.
    pub(crate) static_requests: u64,
    pub(crate) routed_requests: u64,
}

/// One answered request, as the scoreboard counts it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    /// `http`, `uwsgi` or `fastcgi`.
    pub(crate) protocol: &'a str,
    pub(crate) status: u16,
    /// Response body bytes.
    pub(crate) sent: u64,
    /// Request bytes read.
    pub(crate) received: u64,
    pub(crate) micros: u64,
    pub(crate) by: AnsweredBy,
}

/// Who answered a request, as the scoreboard counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnsweredBy {
    App,
    Static,
    Route,
}

/// The shared table. Cloning it copies the view, not the memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scoreboard {
    words: &'static [AtomicU64],
    threads: usize,
    slots: usize,
}

/// A request running on a worker's thread, as the master sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Running {
    /// When it started, in [`now_ms`] time.
    pub(crate) started_ms: u64,
    /// `METHOD URI`, cut to fit.
    pub(crate) request: String,
}

impl Counters {
    /// Adds `other` in (a worker gone into its number's running totals).
    pub(crate) fn add(&mut self, other: &Counters) {
        self.answered += other.answered;
        self.tx += other.tx;
        self.micros += other.micros;
        self.rx += other.rx;
        self.exceptions += other.exceptions;
        for (mine, theirs) in self.by_protocol_class.iter_mut().zip(other.by_protocol_class) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for (a, b) in self.by_duration.iter_mut().zip(other.by_duration) {
            *a += b;
        }
        self.static_requests += other.static_requests;
        self.routed_requests += other.routed_requests;
    }
}

impl Scoreboard {
    /// Maps a zeroed table for `slots` workers of `threads` threads each.
    /// It is never unmapped: the master and every worker use it until exit.
    pub(crate) fn new(slots: usize, threads: usize) -> Result<Scoreboard, MasterError> {
        let threads = threads.max(1);
        let count = slots * (WORKER_WORDS + threads * THREAD_WORDS);
        let bytes = NonZeroUsize::new(count * size_of::<AtomicU64>())
            .ok_or(MasterError::System { call: "scoreboard", source: nix::Error::EINVAL })?;
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        // SAFETY: a fresh anonymous mapping, no address hint: it aliases no
        // Rust object.
        let base = unsafe {
            mmap_anonymous(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(MasterError::system("mmap scoreboard"))?;
        // SAFETY: the mapping is page-aligned (so aligned for u64), `count`
        // words long, zero-filled (a valid AtomicU64, same layout as u64),
        // and never unmapped, so `'static` holds. All access is atomic, so
        // sharing it with other processes after fork is sound.
        let words = unsafe { std::slice::from_raw_parts(base.as_ptr().cast::<AtomicU64>(), count) };
        Ok(Scoreboard { words, threads, slots })
    }

    /// How many workers it has room for.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    fn worker_base(&self, slot: usize) -> usize {
        slot * (WORKER_WORDS + self.threads * THREAD_WORDS)
    }

    fn thread_base(&self, slot: usize, thread: usize) -> usize {
        self.worker_base(slot) + WORKER_WORDS + thread.min(self.threads - 1) * THREAD_WORDS
    }

    /// Zeroes a slot before a new worker takes it.
    pub(crate) fn clear(&self, slot: usize) {
        let start = self.worker_base(slot);
        let end = self.worker_base(slot + 1);
        for word in &self.words[start..end] {
            word.store(0, Ordering::Relaxed);
        }
        std::sync::atomic::fence(Ordering::Release);
    }

    /// The worker: its listeners are being served.
    pub(crate) fn set_ready(&self, slot: usize) {
        self.words[self.worker_base(slot)].store(1, Ordering::Release);
    }

    pub(crate) fn is_ready(&self, slot: usize) -> bool {
        self.words[self.worker_base(slot)].load(Ordering::Acquire) == 1
    }

    /// Asks for a replacement; the first reason given stays.
    pub(crate) fn request_recycle(&self, slot: usize, reason: Recycle) {
        let _ = self.words[self.worker_base(slot) + 1].compare_exchange(
            0,
            reason as u64,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn recycle_reason(&self, slot: usize) -> Option<Recycle> {
        Recycle::from_word(self.words[self.worker_base(slot) + 1].load(Ordering::Acquire))
    }

    /// Counts a finished request; returns the count so far.
    pub(crate) fn count_request(&self, slot: usize) -> u64 {
        self.words[self.worker_base(slot) + 2].fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn requests(&self, slot: usize) -> u64 {
        self.words[self.worker_base(slot) + 2].load(Ordering::Relaxed)
    }

    /// Counts a request the core answered.
    pub(crate) fn count_answered(&self, slot: usize, answer: &Answer<'_>) {
        let base = self.worker_base(slot) + 3;
        let add = |offset: usize, n: u64| self.words[base + offset].fetch_add(n, Ordering::Relaxed);
        add(ANSWERED, 1);
        add(TX, answer.sent);
        add(MICROS, answer.micros);
        add(RX, answer.received);
        if let (Some(index), class @ 1..=5) =
            (PROTOCOLS.iter().position(|p| *p == answer.protocol), usize::from(answer.status / 100))
        {
            add(BY_CLASS + index * 5 + class - 1, 1);
        }
        if let Some(bucket) = DURATION_BUCKETS_US.iter().position(|bound| answer.micros <= *bound) {
            add(BY_DURATION + bucket, 1);
        }
        match answer.by {
            AnsweredBy::App => {}
            AnsweredBy::Static => {
                add(STATIC, 1);
            }
            AnsweredBy::Route => {
                add(ROUTED, 1);
            }
        }
    }

    /// The master has closed its copies of the listeners (a shutdown, not
    /// a reload): this worker's are the last, and it takes what is
    /// queued before it closes them.
    pub(crate) fn release_listeners(&self, slot: usize) {
        self.words[self.worker_base(slot) + RELEASED_WORD].store(1, Ordering::Release);
    }

    pub(crate) fn listeners_released(&self, slot: usize) -> bool {
        self.words[self.worker_base(slot) + RELEASED_WORD].load(Ordering::Acquire) == 1
    }

    /// The app's exceptions in this worker so far (the worker's own count).
    pub(crate) fn set_exceptions(&self, slot: usize, exceptions: u64) {
        self.words[self.worker_base(slot) + 3 + EXCEPTIONS].store(exceptions, Ordering::Relaxed);
    }

    pub(crate) fn counters(&self, slot: usize) -> Counters {
        let base = self.worker_base(slot) + 3;
        let get = |offset: usize| self.words[base + offset].load(Ordering::Relaxed);
        let mut by_protocol_class = [[0; 5]; 3];
        for (protocol, classes) in by_protocol_class.iter_mut().enumerate() {
            for (class, count) in classes.iter_mut().enumerate() {
                *count = get(BY_CLASS + protocol * 5 + class);
            }
        }
        let mut by_duration = [0; DURATION_BUCKETS_US.len()];
        for (bucket, count) in by_duration.iter_mut().enumerate() {
            *count = get(BY_DURATION + bucket);
        }
        Counters {
            answered: get(ANSWERED),
            tx: get(TX),
            micros: get(MICROS),
            rx: get(RX),
            exceptions: get(EXCEPTIONS),
            by_protocol_class,
            by_duration,
            static_requests: get(STATIC),
            routed_requests: get(ROUTED),
        }
    }

    /// Requests each Python thread has run, and whether it runs one now.
    pub(crate) fn threads(&self, slot: usize) -> Vec<(u64, bool)> {
        (0..self.threads)
            .map(|thread| {
                let base = self.thread_base(slot, thread);
                let requests = self.words[base + 1 + TEXT_WORDS].load(Ordering::Relaxed);
                (requests, self.words[base].load(Ordering::Acquire) != 0)
            })
            .collect()
    }

    /// A worker's thread starts `request` (`METHOD URI`), with `vars`
    /// (NUL-ended `KEY=VALUE` entries, at most [`VARS_BYTES`]) for the
    /// stats.
    pub(crate) fn request_started(&self, slot: usize, thread: usize, request: &[u8], vars: &[u8]) {
        let base = self.thread_base(slot, thread);
        let mut text = [0u8; TEXT_WORDS * 8];
        let len = request.len().min(text.len());
        text[..len].copy_from_slice(&request[..len]);
        store_bytes(&self.words[base + 1..base + 1 + TEXT_WORDS], &text);
        let vars = &vars[..vars.len().min(VARS_BYTES)];
        let area = &self.words[base + 2 + TEXT_WORDS..base + 2 + TEXT_WORDS + VARS_WORDS];
        area[0].store(vars.len() as u64, Ordering::Relaxed);
        store_bytes(&area[1..], vars);
        // Never 0, which means idle.
        self.words[base].store(now_ms().max(1), Ordering::Release);
    }

    /// The variables of the request thread `thread` runs, and when it
    /// started (in [`now_ms`] time); `None` when it runs none, or it
    /// changed while they were read.
    pub(crate) fn running_vars(&self, slot: usize, thread: usize) -> Option<(u64, Vec<u8>)> {
        let base = self.thread_base(slot, thread);
        let started = self.words[base].load(Ordering::Acquire);
        if started == 0 {
            return None;
        }
        let area = &self.words[base + 2 + TEXT_WORDS..base + 2 + TEXT_WORDS + VARS_WORDS];
        let len = usize::try_from(area[0].load(Ordering::Relaxed)).ok()?.min(VARS_BYTES);
        let bytes: Vec<u8> = area[1..]
            .iter()
            .take(len.div_ceil(8))
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .take(len)
            .collect();
        std::sync::atomic::fence(Ordering::Acquire);
        (self.words[base].load(Ordering::Relaxed) == started).then_some((started, bytes))
    }

    pub(crate) fn request_finished(&self, slot: usize, thread: usize) {
        let base = self.thread_base(slot, thread);
        self.words[base + 1 + TEXT_WORDS].fetch_add(1, Ordering::Relaxed);
        self.words[base].store(0, Ordering::Release);
    }

    /// Every request running on the worker's threads, by thread.
    pub(crate) fn running_requests(&self, slot: usize) -> Vec<(usize, Running)> {
        (0..self.threads)
            .filter_map(|thread| {
                let base = self.thread_base(slot, thread);
                let started_ms = self.words[base].load(Ordering::Acquire);
                (started_ms != 0).then(|| (thread, self.running_at(base, started_ms)))
            })
            .collect()
    }

    fn running_at(&self, base: usize, started_ms: u64) -> Running {
        let bytes: Vec<u8> = self.words[base + 1..base + 1 + TEXT_WORDS]
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .take_while(|b| *b != 0)
            .collect();
        Running { started_ms, request: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// The oldest request running on any thread of the worker, if any.
    pub(crate) fn oldest_request(&self, slot: usize) -> Option<Running> {
        (0..self.threads)
            .filter_map(|thread| {
                let base = self.thread_base(slot, thread);
                let started_ms = self.words[base].load(Ordering::Acquire);
                (started_ms != 0).then_some((started_ms, base))
            })
            .min()
            .map(|(started_ms, base)| self.running_at(base, started_ms))
    }
}

/// Stores `bytes` into `words`, eight to a word (the last padded with 0).
fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (word, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut padded = [0u8; 8];
        padded[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(padded), Ordering::Relaxed);
    }
}

/// Milliseconds on the monotonic clock, which every process shares.
pub(crate) fn now_ms() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
            let millis = u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000_000;
            secs * 1000 + millis
        })
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_independent_and_clear_resets_them() {
        let board = Scoreboard::new(4, 2).unwrap();
        assert_eq!(board.slots(), 4);
        board.set_ready(1);
        board.request_recycle(1, Recycle::Rss);
        board.request_recycle(1, Recycle::MaxRequests);
        assert_eq!(board.count_request(1), 1);
        assert_eq!(board.count_request(1), 2);
        assert!(board.is_ready(1) && !board.is_ready(0) && !board.is_ready(2));
        assert_eq!(board.recycle_reason(1), Some(Recycle::Rss), "the first reason stays");
        assert_eq!(board.recycle_reason(2), None);
        assert_eq!(board.requests(1), 2);
        let answer = |protocol, status, sent, micros, by| Answer {
            protocol,
            status,
            sent,
            received: 100,
            micros,
            by,
        };
        board.count_answered(1, &answer("uwsgi", 404, 10, 7, AnsweredBy::Static));
        board.count_answered(1, &answer("http", 200, 5, 3, AnsweredBy::App));
        board.set_exceptions(1, 4);
        let counters = board.counters(1);
        assert_eq!((counters.answered, counters.tx, counters.micros), (2, 15, 10));
        assert_eq!((counters.rx, counters.exceptions), (200, 4));
        assert_eq!(counters.by_protocol_class, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0; 5]]);
        assert_eq!(counters.by_duration[0], 2, "both under 1 ms");
        assert_eq!((counters.static_requests, counters.routed_requests), (1, 0));
        board.count_answered(1, &answer("http", 200, 0, 60_000_000, AnsweredBy::Route));
        assert_eq!(
            board.counters(1).by_duration.iter().sum::<u64>(),
            2,
            "a minute: only in the total"
        );
        assert_eq!(board.counters(0), Counters::default());
        board.clear(1);
        assert_eq!(board.counters(1), Counters::default());
        assert!(!board.is_ready(1));
        assert_eq!((board.recycle_reason(1), board.requests(1)), (None, 0));
        board.release_listeners(1);
        assert!(board.listeners_released(1) && !board.listeners_released(0));
    }

    #[test]
    fn oldest_request_of_a_worker_and_its_text() {
        let board = Scoreboard::new(2, 3).unwrap();
        assert_eq!(board.oldest_request(0), None);
        board.request_started(0, 2, b"GET /slow", b"A=1\0B=2\0");
        std::thread::sleep(std::time::Duration::from_millis(5));
        board.request_started(0, 0, b"POST /later", b"");
        let (started, vars) = board.running_vars(0, 2).unwrap();
        assert_eq!(vars, b"A=1\0B=2\0");
        assert!(started <= now_ms());
        assert_eq!(board.running_vars(0, 1), None, "idle");
        let oldest = board.oldest_request(0).unwrap();
        assert_eq!(oldest.request, "GET /slow");
        assert!(oldest.started_ms <= now_ms());
        assert_eq!(board.threads(0), [(0, true), (0, false), (0, true)]);
        board.request_finished(0, 2);
        assert_eq!(board.running_vars(0, 2), None);
        assert_eq!(board.threads(0), [(0, true), (0, false), (1, false)]);
        assert_eq!(board.oldest_request(0).unwrap().request, "POST /later");
        assert_eq!(board.oldest_request(1), None, "another worker's slot is untouched");
        let long = vec![b'x'; 50_000];
        board.request_started(1, 0, &long[..500], &long);
        assert_eq!(board.oldest_request(1).unwrap().request.len(), TEXT_WORDS * 8);
        assert_eq!(board.running_vars(1, 0).unwrap().1.len(), VARS_BYTES);
    }

    #[test]
    fn is_shared_with_a_forked_child() {
        let board = Scoreboard::new(1, 1).unwrap();
        // SAFETY: the child only touches the scoreboard (atomics) and calls
        // `_exit`, both async-signal-safe, so forking this multi-threaded
        // test process is sound.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                board.set_ready(0);
                board.count_request(0);
                // SAFETY: `_exit` ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
                assert!(board.is_ready(0));
                assert_eq!(board.requests(0), 1);
            }
        }
    }
}
