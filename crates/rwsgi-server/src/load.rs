//! How loaded a worker is, in the two ways that decide whether it accepts:
//!
//! - **Responder work** ([`Load`]): requests whose responder (the Python
//!   app) is running, or ready to run. With sibling workers on the same
//!   sockets, a worker whose responder threads are all taken stops accepting, so an idle sibling
//!   serves new connections ([`crate::ServerConfig::accept_limit`]).
//!   Connections that only wait (for a head, a body, the next request, a
//!   slow reader) are not responder work: any number of them leave accepting
//!   alone.
//! - **Open connections** ([`Connections`]): memory. At
//!   `worker-connections` the oldest idle keep-alive connection is closed
//!   to make room; with none idle, new connections wait in the listen
//!   queue (where a sibling may take them) until one closes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// The requests whose app is running or ready to run.
#[derive(Debug, Default)]
pub(crate) struct Load {
    active: AtomicUsize,
    eased: Notify,
}

impl Load {
    /// Counts one more request in progress until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(Arc::clone(self))
    }

    /// Returns once fewer than `limit` requests are in progress.
    pub(crate) async fn below(&self, limit: usize) {
        loop {
            // Created before the check, so a drop in between still wakes it.
            let eased = self.eased.notified();
            if self.active.load(Ordering::Relaxed) < limit {
                return;
            }
            eased.await;
        }
    }
}

/// One request's responder work (see [`Load::enter`]).
#[derive(Debug)]
pub(crate) struct Active(Arc<Load>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.eased.notify_waiters();
    }
}

/// The open connections of a worker: how many, which of them wait and
/// since when, and how to tell one to stop waiting (to make room, or
/// because the server stops).
#[derive(Debug)]
pub(crate) struct Connections {
    open: AtomicUsize,
    limit: usize,
    /// Woken when a connection closes while the worker is at its limit.
    room: Notify,
    /// Woken when the first connection opens.
    opened: Notify,
    /// The connections that have waited (for a first byte, for their
    /// next request) at least once.
    waiters: Mutex<Waiters>,
    /// Orders idle connections, oldest first.
    next_idle: AtomicU64,
    /// At the limit since the last log line (one line per episode).
    full: AtomicBool,
    /// The server stops: waiting connections end.
    stopping: AtomicBool,
}

/// A slab of waiters: entries stay put, so each connection keeps its index.
#[derive(Debug, Default)]
struct Waiters {
    entries: Vec<Option<Arc<Waiter>>>,
    free: Vec<usize>,
}

/// What a waiting connection shares with the worker: set and read with
/// single atomic operations, so waiting between requests costs a
/// keep-alive connection no lock.
#[derive(Debug, Default)]
struct Waiter {
    /// When it went idle between requests (a tick of `next_idle`), or 0.
    idle_since: AtomicU64,
    /// Chosen to close to make room.
    evicted: AtomicBool,
    /// Its task, woken when it is evicted or the server stops.
    task: atomic_waker::AtomicWaker,
}

/// Why a waiting connection was told to stop waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Told {
    /// To close, making room at `worker-connections`.
    Evicted,
    /// The server stops.
    Stopping,
}

impl Connections {
    pub(crate) fn new(limit: usize) -> Self {
        Connections {
            open: AtomicUsize::new(0),
            limit: limit.max(1),
            room: Notify::new(),
            opened: Notify::new(),
            waiters: Mutex::default(),
            next_idle: AtomicU64::new(1),
            full: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }

    /// Counts an accepted connection until the guard drops.
    pub(crate) fn open(self: &Arc<Self>) -> Open {
        if self.open.fetch_add(1, Ordering::Relaxed) == 0 {
            self.opened.notify_waiters();
        }
        Open { connections: Arc::clone(self), waiter: None }
    }

    /// Returns once a connection is open.
    pub(crate) async fn any_open(&self) {
        loop {
            let opened = self.opened.notified();
            if self.open.load(Ordering::Relaxed) > 0 {
                return;
            }
            opened.await;
        }
    }

    /// Whether the server stops.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The server stops: every waiting connection is told.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for waiter in self.lock_waiters().entries.iter().flatten() {
            waiter.task.wake();
        }
    }

    /// Returns once a connection may be accepted: below the limit, or at
    /// it with an idle connection to close for it ([`Connections::accepted`]).
    /// At the limit with none idle, new connections wait in the listen
    /// queue (where a sibling may take them) until one closes.
    pub(crate) async fn room(&self) {
        loop {
            let closed = self.room.notified();
            let open = self.open.load(Ordering::Relaxed);
            if open < self.limit {
                // The episode ends well below the limit, not at every close.
                if open * 10 <= self.limit * 9 && self.full.swap(false, Ordering::Relaxed) {
                    tracing::info!("{open} connections open: below worker-connections again");
                }
                return;
            }
            if self.oldest_idle(&self.lock_waiters()).is_some() {
                return;
            }
            self.log_full();
            closed.await;
        }
    }

    /// After a connection was accepted: beyond the limit, the connection
    /// idle the longest is told to close to make room for it.
    pub(crate) fn accepted(&self) {
        if self.open.load(Ordering::Relaxed) > self.limit && self.evict_oldest_idle() {
            self.log_full();
        }
    }

    fn log_full(&self) {
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "worker-connections = {} reached: closing the oldest idle keep-alive \
                 connections; new connections wait in the listen queue while none is idle",
                self.limit
            );
        }
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection idle the longest. A scan, but only at the limit.
    fn oldest_idle<'a>(&self, waiters: &'a Waiters) -> Option<&'a Arc<Waiter>> {
        let idle = waiters.entries.iter().flatten();
        idle.filter(|w| w.idle_since.load(Ordering::Relaxed) != 0)
            .min_by_key(|w| w.idle_since.load(Ordering::Relaxed))
    }

    /// Tells the connection idle the longest to close; false if none is.
    fn evict_oldest_idle(&self) -> bool {
        let waiters = self.lock_waiters();
        let Some(oldest) = self.oldest_idle(&waiters) else { return false };
        oldest.idle_since.store(0, Ordering::Relaxed);
        oldest.evicted.store(true, Ordering::Relaxed);
        oldest.task.wake();
        true
    }
}

/// One open connection (see [`Connections::open`]).
#[derive(Debug)]
pub(crate) struct Open {
    connections: Arc<Connections>,
    /// Its waiter and index, from its first wait.
    waiter: Option<(Arc<Waiter>, usize)>,
}

impl Open {
    /// The connection waits between requests: at the limit, the one idle
    /// the longest is closed first. Until [`Open::busy`].
    pub(crate) fn idle(&mut self) {
        let tick = self.connections.next_idle.fetch_add(1, Ordering::Relaxed);
        self.waiter().idle_since.store(tick, Ordering::Relaxed);
    }

    /// A request arrived: the connection is no longer idle.
    pub(crate) fn busy(&self) {
        if let Some((waiter, _)) = &self.waiter {
            waiter.idle_since.store(0, Ordering::Relaxed);
        }
    }

    /// Resolves when a waiting connection must stop waiting. Cancel-safe.
    pub(crate) fn told(&mut self) -> impl Future<Output = Told> + '_ {
        let connections = Arc::clone(&self.connections);
        let waiter = Arc::clone(self.waiter());
        std::future::poll_fn(move |cx| {
            waiter.task.register(cx.waker());
            if waiter.evicted.load(Ordering::Relaxed) {
                std::task::Poll::Ready(Told::Evicted)
            } else if connections.stopping() {
                std::task::Poll::Ready(Told::Stopping)
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// This connection's waiter, registered at its first wait.
    fn waiter(&mut self) -> &Arc<Waiter> {
        let connections = &self.connections;
        let (waiter, _) = self.waiter.get_or_insert_with(|| {
            let waiter = Arc::new(Waiter::default());
            let mut waiters = connections.lock_waiters();
            let index = match waiters.free.pop() {
                Some(index) => {
                    waiters.entries[index] = Some(Arc::clone(&waiter));
                    index
                }
                None => {
                    waiters.entries.push(Some(Arc::clone(&waiter)));
                    waiters.entries.len() - 1
                }
            };
            (waiter, index)
        });
        waiter
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some((_, index)) = self.waiter.take() {
            let mut waiters = self.connections.lock_waiters();
            waiters.entries[index] = None;
            waiters.free.push(index);
        }
        let before = self.connections.open.fetch_sub(1, Ordering::Relaxed);
        if before >= self.connections.limit {
            self.connections.room.notify_one();
        }
    }
}

/// The `worker-connections` default: what `ulimit -n` allows, less room
/// for the listeners, the app's files and Python, halved (a connection
/// whose body is kept in a temporary file holds two descriptors), within
/// a bound that keeps the memory of idle connections modest.
pub(crate) fn default_connection_limit() -> usize {
    const RESERVED: u64 = 128;
    const MOST: u64 = 10_000;
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let limit = (soft.saturating_sub(RESERVED) / 2).clamp(64, MOST);
    usize::try_from(limit).unwrap_or(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn below_waits_until_a_request_ends() {
        let load = Arc::new(Load::default());
        let first = load.enter();
        let second = load.enter();
        let waiting = tokio::spawn({
            let load = Arc::clone(&load);
            async move { load.below(2).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "two in progress is not below two");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken when a request ended")
            .expect("the waiter did not panic");
        drop(second);
        load.below(1).await;
    }

    #[tokio::test]
    async fn at_the_limit_the_oldest_idle_connection_is_told_to_close() {
        let connections = Arc::new(Connections::new(3));
        let mut opened: Vec<Open> = (0..3).map(|_| connections.open()).collect();
        opened[1].idle();
        opened[2].idle();
        opened[2].busy();
        opened[2].idle();
        // At the limit, but an idle connection can make room.
        tokio::time::timeout(Duration::from_secs(1), connections.room())
            .await
            .expect("room, with idle connections");
        let fourth = connections.open();
        connections.accepted();
        let told = tokio::time::timeout(Duration::from_secs(1), opened[1].told()).await;
        assert_eq!(told.ok(), Some(Told::Evicted), "the oldest idle connection");
        let other = tokio::time::timeout(Duration::from_millis(20), opened[2].told()).await;
        assert!(other.is_err(), "only the oldest");
        drop(opened.remove(1));
        drop(fourth);
        connections.stop();
        let told = tokio::time::timeout(Duration::from_secs(1), opened[1].told()).await;
        assert_eq!(told.ok(), Some(Told::Stopping));
        drop(opened);
        let waiters = connections.lock_waiters();
        assert!(
            waiters.entries.iter().all(Option::is_none),
            "every waiter left with its connection"
        );
    }

    #[tokio::test]
    async fn with_none_idle_new_connections_wait_for_one_to_close() {
        let connections = Arc::new(Connections::new(2));
        let mut opened: Vec<Open> = (0..2).map(|_| connections.open()).collect();
        let waiting = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move { connections.room().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(opened.pop());
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("room once one closed")
            .expect("the waiter did not panic");
    }

    #[tokio::test]
    async fn any_open_waits_for_a_first_connection() {
        let connections = Arc::new(Connections::new(2));
        let waiting = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move { connections.any_open().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "none open");
        let open = connections.open();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken by the first connection")
            .expect("the waiter did not panic");
        // Open already: at once.
        tokio::time::timeout(Duration::from_secs(1), connections.any_open())
            .await
            .expect("at once");
        drop(open);
    }

    #[test]
    fn the_default_limit_fits_the_descriptor_limit() {
        let limit = default_connection_limit();
        assert!((64..=10_000).contains(&limit), "{limit}");
    }
}
