//! How many requests a worker has in progress, so that a busy worker stops
//! accepting and leaves new connections to its idle siblings on the same
//! sockets ([`crate::ServerConfig::accept_limit`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The requests in progress: read, run or answered, not yet over.
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

/// One request in progress (see [`Load::enter`]).
#[derive(Debug)]
pub(crate) struct Active(Arc<Load>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.eased.notify_waiters();
    }
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
}
