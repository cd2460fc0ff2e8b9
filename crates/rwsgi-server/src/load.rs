//! How loaded a worker is, in the two ways that decide whether it accepts:
//!
//! - **Python work** ([`Load`]): requests whose app is running, or ready
//!   to run. With sibling workers on the same sockets, a worker whose
//!   Python threads are all taken stops accepting, so an idle sibling
//!   serves new connections ([`crate::ServerConfig::accept_limit`]).
//!   Connections that only wait (for a head, a body, the next request, a
//!   slow reader) are not Python work: any number of them leave accepting
//!   alone.
//! - **Open connections** ([`Connections`]): memory. At
//!   `worker-connections` the oldest idle keep-alive connection is closed
//!   to make room; with none idle, new connections wait in the listen
//!   queue (where a sibling may take them) until one closes.

use std::collections::BTreeMap;
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

/// One request's Python work (see [`Load::enter`]).
#[derive(Debug)]
pub(crate) struct Active(Arc<Load>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.eased.notify_waiters();
    }
}

/// The open connections of a worker, and which of them are idle between
/// requests, oldest first.
#[derive(Debug)]
pub(crate) struct Connections {
    open: AtomicUsize,
    limit: usize,
    /// Woken when a connection closes while the worker is at its limit.
    room: Notify,
    /// Idle keep-alive connections by when they went idle: each can be
    /// told to close.
    idle: Mutex<BTreeMap<u64, Arc<Notify>>>,
    next_idle: AtomicU64,
    /// At the limit since the last log line (one line per episode).
    full: AtomicBool,
}

impl Connections {
    pub(crate) fn new(limit: usize) -> Self {
        Connections {
            open: AtomicUsize::new(0),
            limit: limit.max(1),
            room: Notify::new(),
            idle: Mutex::new(BTreeMap::new()),
            next_idle: AtomicU64::new(0),
            full: AtomicBool::new(false),
        }
    }

    /// Counts an accepted connection until the guard drops.
    pub(crate) fn open(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(self))
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
            if !self.idle.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
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

    /// Tells the connection idle the longest to close; false if none is.
    fn evict_oldest_idle(&self) -> bool {
        let oldest = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop_first();
        match oldest {
            Some((_, close)) => {
                close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Registers a connection as idle, with `close` to tell it to go,
    /// until the ticket drops.
    pub(crate) fn idle(self: &Arc<Self>, close: &Arc<Notify>) -> IdleTicket {
        let seq = self.next_idle.fetch_add(1, Ordering::Relaxed);
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).insert(seq, Arc::clone(close));
        IdleTicket { connections: Arc::clone(self), seq }
    }
}

/// One open connection (see [`Connections::open`]).
#[derive(Debug)]
pub(crate) struct Open(Arc<Connections>);

impl Drop for Open {
    fn drop(&mut self) {
        let before = self.0.open.fetch_sub(1, Ordering::Relaxed);
        if before >= self.0.limit {
            self.0.room.notify_one();
        }
    }
}

/// An idle connection's place in the eviction order.
#[derive(Debug)]
pub(crate) struct IdleTicket {
    connections: Arc<Connections>,
    seq: u64,
}

impl Drop for IdleTicket {
    fn drop(&mut self) {
        let mut idle = self.connections.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.remove(&self.seq);
    }
}

/// The `worker-connections` default: what `ulimit -n` allows, less room
/// for the listeners, the app's files and Python, within a bound that
/// keeps the memory of idle connections modest.
pub(crate) fn default_connection_limit() -> usize {
    const RESERVED: u64 = 128;
    const MOST: u64 = 10_000;
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let limit = soft.saturating_sub(RESERVED).clamp(64, MOST);
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
        let (first, second) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let opened: Vec<Open> = (0..3).map(|_| connections.open()).collect();
        let older = connections.idle(&first);
        let newer = connections.idle(&second);
        // At the limit, but an idle connection can make room.
        tokio::time::timeout(Duration::from_secs(1), connections.room())
            .await
            .expect("room, with idle connections");
        let fourth = connections.open();
        connections.accepted();
        tokio::time::timeout(Duration::from_secs(1), first.notified())
            .await
            .expect("the oldest idle connection was told to close");
        drop(older);
        let mut opened = opened;
        drop(opened.pop());
        drop((fourth, newer));
        assert!(connections.idle.lock().unwrap_or_else(PoisonError::into_inner).is_empty());
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

    #[test]
    fn the_default_limit_fits_the_descriptor_limit() {
        let limit = default_connection_limit();
        assert!((64..=10_000).contains(&limit), "{limit}");
    }
}
