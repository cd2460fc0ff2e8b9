//! Wake-ups from other threads, rung through only while the I/O thread
//! sleeps.
//!
//! A responder's thread (a Python thread) that answers a request wakes the
//! connection's task on the I/O thread. tokio's current-thread runtime
//! answers every such wake from another thread with a write to its eventfd,
//! asleep or not: with 8 Python threads, 1.8 writes per hello-world request
//! (`perf stat`), each a syscall on the Python thread and an `epoll_wait`
//! return on the I/O thread. The doorbell lets a wake through only when the
//! I/O thread is parked, once per park; while it is awake (or already rung),
//! wakes wait in a queue that the I/O thread empties itself: when it next
//! polls one of these tasks, on waking up, and before it parks.
//!
//! [`runtime`] builds the runtime with the doorbell's park hooks;
//! [`Doorbell::spawn`] runs a task whose wakes go through it.
//!
//! The I/O thread also wrote the eventfd to itself: tokio's time driver
//! does so whenever a timer is set earlier than the earliest it knew of
//! when it last parked, and it knows of none when it parked with none set.
//! With every connection waiting for a Python thread there is none, and
//! each keep-alive timer set after the responses came back cost a write
//! (0.7 per request with 8 Python threads). [`keep_time`] keeps one timer
//! set, never further ahead than any a connection sets.

use crate::load::Connections;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Where the I/O thread is, as other threads' wakes need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IoThread {
    /// Running tasks: it will see the queue before it parks.
    Awake,
    /// Parked, or about to: a wake must go through tokio (the eventfd).
    Parked,
    /// Parked, and one wake has gone through: it is waking up and will see
    /// the queue.
    Rung,
}

#[derive(Debug)]
struct Bell {
    io_thread: IoThread,
    queued: Vec<Waker>,
    /// The waker of a task of the doorbell's own that never ends
    /// ([`Ringer`]), which a wake goes through: the woken task may have
    /// ended, and tokio drops a wake of an ended task without waking the
    /// thread (nor would it be woken for the next, then only queued).
    ringer: Option<Waker>,
}

impl Bell {
    fn queue(&mut self, task: &Waker, pending: &AtomicBool) {
        self.queued.push(task.clone());
        pending.store(true, Ordering::Release);
    }
}

/// One runtime's doorbell (see the module's doc).
#[derive(Debug)]
pub(crate) struct Doorbell {
    bell: Mutex<Bell>,
    /// Whether `queued` may hold wakes: the I/O thread's cheap check.
    pending: AtomicBool,
}

thread_local! {
    /// The doorbell whose runtime runs on this thread (its address).
    static IO_THREAD_OF: Cell<usize> = const { Cell::new(0) };
}

/// A current-thread runtime whose [`Doorbell`] sees its thread park and wake;
/// the calling thread must be the one that runs it (`block_on`).
pub(crate) fn runtime() -> std::io::Result<(tokio::runtime::Runtime, Arc<Doorbell>)> {
    let doorbell = Arc::new(Doorbell {
        bell: Mutex::new(Bell { io_thread: IoThread::Awake, queued: Vec::new(), ringer: None }),
        pending: AtomicBool::new(false),
    });
    IO_THREAD_OF.set(doorbell.address());
    // Weak: the runtime (through its tasks' wakers) must not keep the
    // doorbell, which keeps queued wakers, alive in a cycle.
    let parking = Arc::downgrade(&doorbell);
    let unparked = Arc::downgrade(&doorbell);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || {
            if let Some(doorbell) = parking.upgrade() {
                doorbell.parking();
            }
        })
        .on_thread_unpark(move || {
            if let Some(doorbell) = unparked.upgrade() {
                doorbell.unparked();
            }
        })
        .build()?;
    runtime.spawn(Ringer(Arc::downgrade(&doorbell)));
    Ok((runtime, doorbell))
}

impl Doorbell {
    /// Spawns `task` on `tracker`, its wakes from other threads going
    /// through the doorbell.
    pub(crate) fn spawn<F>(self: &Arc<Self>, tracker: &TaskTracker, task: Pin<Box<F>>)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracker.spawn(Doorbelled { task, doorbell: Arc::clone(self), waker: None });
    }

    /// The runtime's `on_thread_park`: from now on a wake must go through.
    fn parking(&self) {
        self.deliver(IoThread::Parked);
    }

    /// The runtime's `on_thread_unpark`.
    fn unparked(&self) {
        self.deliver(IoThread::Awake);
    }

    /// On the I/O thread: wakes what is queued, here (tokio then only
    /// queues the task), and records where the thread now is.
    fn deliver(&self, io_thread: IoThread) {
        let queued = {
            let mut bell = self.lock();
            bell.io_thread = io_thread;
            self.pending.store(false, Ordering::Relaxed);
            std::mem::take(&mut bell.queued)
        };
        for task in queued {
            task.wake();
        }
    }

    /// A wake of `task` from another thread: queued, and rung through if
    /// the I/O thread sleeps.
    fn ring(&self, task: &Waker) {
        let mut bell = self.lock();
        if bell.io_thread != IoThread::Parked {
            bell.queue(task, &self.pending);
            return;
        }
        bell.io_thread = IoThread::Rung;
        match bell.ringer.clone() {
            Some(ringer) => {
                bell.queue(task, &self.pending);
                drop(bell);
                ringer.wake();
            }
            // Before the ringer's first poll (the runtime has not run yet).
            None => {
                drop(bell);
                task.wake_by_ref();
            }
        }
    }

    fn on_io_thread(&self) -> bool {
        IO_THREAD_OF.get() == self.address()
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    fn lock(&self) -> MutexGuard<'_, Bell> {
        // A panic while holding it leaves a consistent queue.
        self.bell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How far ahead [`keep_time`]'s timer lies at most: no more than any
/// timeout of a connection (whole seconds, at least one).
const TICK: Duration = Duration::from_secs(1);

/// Keeps a timer set while connections are open (see the module's doc);
/// runs until the runtime ends.
pub(crate) async fn keep_time(connections: Arc<Connections>) {
    loop {
        connections.any_open().await;
        tokio::time::sleep(TICK).await;
    }
}

/// The doorbell's own task: never ends, and keeps its waker in the bell.
struct Ringer(Weak<Doorbell>);

impl Future for Ringer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(doorbell) = self.0.upgrade() else { return Poll::Ready(()) };
        let mut bell = doorbell.lock();
        if !bell.ringer.as_ref().is_some_and(|ringer| ringer.will_wake(cx.waker())) {
            bell.ringer = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A task whose waker goes through the doorbell.
struct Doorbelled<F> {
    task: Pin<Box<F>>,
    doorbell: Arc<Doorbell>,
    /// The task's own waker wrapped, made once (tokio's stays the same).
    waker: Option<(Arc<TaskBell>, Waker)>,
}

impl<F: Future<Output = ()>> Future for Doorbelled<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Busy with tasks for long: wakes queued meanwhile are not left
        // waiting for the next park.
        if this.doorbell.pending.load(Ordering::Acquire) {
            this.doorbell.deliver(IoThread::Awake);
        }
        let waker = match &this.waker {
            Some((bell, waker)) if bell.task.will_wake(cx.waker()) => waker,
            _ => {
                let bell = Arc::new(TaskBell {
                    doorbell: Arc::clone(&this.doorbell),
                    task: cx.waker().clone(),
                });
                let waker = Waker::from(Arc::clone(&bell));
                &this.waker.insert((bell, waker)).1
            }
        };
        this.task.as_mut().poll(&mut Context::from_waker(waker))
    }
}

struct TaskBell {
    doorbell: Arc<Doorbell>,
    task: Waker,
}

impl Wake for TaskBell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.doorbell.on_io_thread() {
            self.task.wake_by_ref();
        } else {
            self.doorbell.ring(&self.task);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `f` on a runtime with a doorbell, on a thread of its own (the
    /// doorbell marks the thread).
    fn on_runtime<R: Send + 'static>(
        f: impl FnOnce(&tokio::runtime::Runtime, &Arc<Doorbell>) -> R + Send + 'static,
    ) -> R {
        std::thread::spawn(move || {
            let (runtime, doorbell) = runtime().unwrap();
            let _spawns_here = runtime.enter();
            f(&runtime, &doorbell)
        })
        .join()
        .unwrap()
    }

    /// A task waiting for a value sent from another thread.
    fn waiting_task(
        doorbell: &Arc<Doorbell>,
        tracker: &TaskTracker,
    ) -> (flume::Sender<u32>, tokio::sync::oneshot::Receiver<u32>) {
        let (send, receive) = flume::bounded(1);
        let (done, result) = tokio::sync::oneshot::channel();
        doorbell.spawn(
            tracker,
            Box::pin(async move {
                let _ = done.send(receive.recv_async().await.unwrap());
            }),
        );
        (send, result)
    }

    /// Runs `answer` on another thread 50 ms from now (the runtime parked
    /// meanwhile); the result, and how long it took to arrive.
    async fn answered_from_another_thread(
        result: tokio::sync::oneshot::Receiver<u32>,
        answer: impl FnOnce() + Send + 'static,
    ) -> (u32, Duration) {
        let started = std::time::Instant::now();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            answer();
        });
        let got = tokio::time::timeout(Duration::from_secs(5), result).await;
        other.join().unwrap();
        (got.unwrap().unwrap(), started.elapsed())
    }

    /// The answer came, and within a second: not woken through, the
    /// runtime would sleep until the timer wheel's next step, seconds away.
    fn answered_promptly(got: u32, took: Duration) {
        assert_eq!(got, 7);
        assert!(took < Duration::from_millis(1000), "took {took:?}");
    }

    #[test]
    fn a_wake_from_another_thread_reaches_a_parked_runtime() {
        let (got, took) = on_runtime(|runtime, doorbell| {
            let tracker = TaskTracker::new();
            let (send, result) = waiting_task(doorbell, &tracker);
            runtime.block_on(answered_from_another_thread(result, move || {
                send.send(7).unwrap();
            }))
        });
        answered_promptly(got, took);
    }

    /// A wake of a task that has ended (its waker kept by another thread)
    /// must not leave the doorbell deaf to the next.
    #[test]
    fn a_wake_of_an_ended_task_does_not_silence_the_bell() {
        let (got, took) = on_runtime(|runtime, doorbell| {
            let tracker = TaskTracker::new();
            let (kept, stale) = std::sync::mpsc::channel::<Waker>();
            doorbell.spawn(
                &tracker,
                Box::pin(std::future::poll_fn(move |cx| {
                    let _ = kept.send(cx.waker().clone());
                    Poll::Ready(())
                })),
            );
            let (send, result) = waiting_task(doorbell, &tracker);
            runtime.block_on(async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                let stale = stale.recv().unwrap();
                answered_from_another_thread(result, move || {
                    stale.wake();
                    send.send(7).unwrap();
                })
                .await
            })
        });
        answered_promptly(got, took);
    }

    /// Wakes while the I/O thread is awake are queued, not rung, and
    /// delivered before it parks: every task gets its value.
    #[test]
    fn wakes_while_awake_are_queued_then_delivered() {
        let (queued, got) = on_runtime(|runtime, doorbell| {
            let tracker = TaskTracker::new();
            let tasks: Vec<_> = (0..8).map(|_| waiting_task(doorbell, &tracker)).collect();
            runtime.block_on(async {
                // Let every task register its waker (yielding does not
                // park), then send while this thread is busy: nothing rings.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                let (senders, results): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
                std::thread::spawn(move || {
                    for (n, send) in (0..).zip(senders) {
                        send.send(n).unwrap();
                    }
                })
                .join()
                .unwrap();
                let queued = doorbell.lock().queued.len();
                let mut got = Vec::new();
                for result in results {
                    got.push(tokio::time::timeout(Duration::from_secs(5), result).await);
                }
                (queued, got.into_iter().map(|r| r.unwrap().unwrap()).collect::<Vec<_>>())
            })
        });
        assert_eq!(queued, 8, "the wakes waited for the I/O thread");
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    }

    /// Whatever the interleaving with parks, no wake is lost.
    #[test]
    fn no_wake_is_lost_under_a_stream_of_remote_wakes() {
        let got = on_runtime(|runtime, doorbell| {
            let tracker = TaskTracker::new();
            let (send, receive) = flume::bounded::<u32>(1);
            let (back, answers) = flume::bounded::<u32>(1);
            doorbell.spawn(
                &tracker,
                Box::pin(async move {
                    while let Ok(n) = receive.recv_async().await {
                        if back.send_async(n).await.is_err() {
                            return;
                        }
                    }
                }),
            );
            let (finished, done) = flume::bounded(1);
            let peer = std::thread::spawn(move || {
                let sent = (0..20_000u32)
                    .take_while(|&n| send.send(n).is_ok() && answers.recv() == Ok(n))
                    .count();
                let _ = finished.send(());
                sent
            });
            runtime.block_on(async {
                // The wakes that reach the task are the doorbell's alone: a
                // lost one would stall the exchange until the timeout.
                tokio::time::timeout(Duration::from_secs(10), done.recv_async())
                    .await
                    .unwrap()
                    .unwrap();
            });
            peer.join().unwrap()
        });
        assert_eq!(got, 20_000);
    }
}
