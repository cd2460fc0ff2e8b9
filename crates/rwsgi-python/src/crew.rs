//! Which pool thread takes the next job, and which threads sleep.
//!
//! Python runs one thread at a time (the GIL). Waking a second thread for a
//! job while the first runs Python only makes them take turns: with a
//! shared queue that woke a sleeping thread per job, 8 threads served a
//! hello-world load in rotation (0.3 context switches per request), and a
//! Flask app's p99 went from 6 ms with one thread to 50 ms with eight
//! (each runnable thread held the GIL for its 5 ms switch interval in turn).
//!
//! So a job wakes a sleeping thread to work only when no job runs, and
//! the thread woken is the one that went to sleep last (its stack and
//! caches are warm). While jobs run, jobs queued behind them wake nobody:
//! if the app is quick, the running thread takes them all in turn. If the
//! app blocks (a database, a sleep), a *standby* thread, which sleeps with
//! a timeout while jobs wait, takes a waiting job itself when none was
//! taken for a [`TICK`], and the next sleeper becomes the standby; so jobs
//! stuck behind blocked ones get a thread each, a tick or two apart.
//!
//! Generic over the job, and free of Python, so that it is tested alone.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long jobs may wait, none being taken, before the standby takes one.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// A bounded queue of jobs and the threads that take them.
#[derive(Debug)]
pub(crate) struct Crew<W> {
    roster: Mutex<Roster<W>>,
    capacity: usize,
    /// [`TICK`], but for tests.
    tick: Duration,
}

/// Where a member thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    /// Awake: free, or running a job.
    Awake,
    /// Asleep until a job needs it.
    Asleep,
    /// Asleep with a timeout, watching jobs wait.
    Standby,
}

#[derive(Debug)]
struct Member {
    /// Set when the thread first asks for work.
    thread: Option<Thread>,
    post: Post,
}

#[derive(Debug)]
struct Roster<W> {
    queue: VecDeque<W>,
    /// Submitters waiting for room in a full queue.
    room_wanted: Vec<Waker>,
    members: Vec<Member>,
    /// The members asleep, the one that went to sleep last at the end.
    asleep: Vec<usize>,
    standby: Option<usize>,
    /// Members awake without a job.
    free: usize,
    /// Members running a job.
    running: usize,
    /// Jobs taken so far: the standby watches it move.
    taken: u64,
    open: bool,
    /// The member to wake, and the submitters to tell there is room, once
    /// the lock is let go (a thread woken under it would find it taken).
    called: Option<Thread>,
    room_made: Vec<Waker>,
}

impl<W> Crew<W> {
    /// A crew of `threads` members (awake until they first find no job),
    /// queueing up to `capacity` jobs.
    pub(crate) fn new(threads: usize, capacity: usize) -> Self {
        Crew::with_tick(threads, capacity, TICK)
    }

    fn with_tick(threads: usize, capacity: usize, tick: Duration) -> Self {
        let members = (0..threads).map(|_| Member { thread: None, post: Post::Awake }).collect();
        let roster = Roster {
            queue: VecDeque::with_capacity(capacity),
            room_wanted: Vec::new(),
            members,
            asleep: Vec::with_capacity(threads),
            standby: None,
            free: threads,
            running: 0,
            taken: 0,
            open: true,
            called: None,
            room_made: Vec::new(),
        };
        Crew { roster: Mutex::new(roster), capacity: capacity.max(1), tick }
    }

    /// Queues `work`, waiting while the queue is full; gives it back if the
    /// crew is closed.
    pub(crate) fn push(&self, work: W) -> impl Future<Output = Result<(), W>> + '_ {
        let mut work = Some(work);
        std::future::poll_fn(move |cx| {
            let mut roster = self.lock();
            let Some(job) = work.take() else { return Poll::Pending };
            if !roster.open {
                return Poll::Ready(Err(job));
            }
            if roster.queue.len() >= self.capacity {
                work = Some(job);
                roster.room_wanted.push(cx.waker().clone());
                return Poll::Pending;
            }
            roster.queue_job(job);
            release(roster);
            Poll::Ready(Ok(()))
        })
    }

    /// Queues `work` if there is room now.
    pub(crate) fn try_push(&self, work: W) -> Result<(), W> {
        let mut roster = self.lock();
        if !roster.open || roster.queue.len() >= self.capacity {
            return Err(work);
        }
        roster.queue_job(work);
        release(roster);
        Ok(())
    }

    /// Member `me`'s next job if one is queued, without waiting. `finished`:
    /// it has finished a job since it last took one.
    pub(crate) fn take(&self, me: usize, finished: bool) -> Option<W> {
        let mut roster = self.lock();
        if finished {
            roster.running -= 1;
            roster.free += 1;
        }
        roster.enlist(me);
        let job = roster.take_job();
        release(roster);
        job
    }

    /// Member `me`'s next job, sleeping until there is one; `None` once the
    /// crew is closed and the queue is empty. Call it after [`Crew::take`]
    /// found nothing.
    pub(crate) fn wait(&self, me: usize) -> Option<W> {
        let mut roster = self.lock();
        loop {
            if let Some(job) = roster.take_job() {
                release(roster);
                return Some(job);
            }
            if !roster.open {
                return None;
            }
            roster.free -= 1;
            if roster.standby.is_none() && roster.running > 0 {
                roster.standby = Some(me);
                roster.members[me].post = Post::Standby;
            } else {
                roster.members[me].post = Post::Asleep;
                roster.asleep.push(me);
            }
            roster = self.sleep(roster, me);
        }
    }

    /// Sleeps until `me` is woken to work (then it is counted free) or the
    /// crew closes.
    fn sleep<'a>(
        &'a self,
        mut roster: MutexGuard<'a, Roster<W>>,
        me: usize,
    ) -> MutexGuard<'a, Roster<W>> {
        // The standby's last look at the jobs: when, and how many had been
        // taken.
        let mut look: Option<(Instant, u64)> = None;
        loop {
            let nap = match roster.members[me].post {
                Post::Awake => return roster,
                Post::Asleep => None,
                Post::Standby => {
                    let now = Instant::now();
                    let (at, seen) = *look.get_or_insert((now, roster.taken));
                    if now < at + self.tick {
                        Some(at + self.tick - now)
                    } else if roster.taken == seen && !roster.queue.is_empty() {
                        // Nobody took a job for a whole tick: to work.
                        roster.standby = None;
                        roster.put_to_work(me);
                        return roster;
                    } else if roster.taken == seen && roster.running == 0 {
                        // The load has passed: sleep without a timeout,
                        // behind the threads that worked last.
                        roster.standby = None;
                        roster.members[me].post = Post::Asleep;
                        roster.asleep.insert(0, me);
                        look = None;
                        None
                    } else {
                        look = Some((now, roster.taken));
                        Some(self.tick)
                    }
                }
            };
            drop(roster);
            match nap {
                Some(nap) => std::thread::park_timeout(nap),
                None => std::thread::park(),
            }
            roster = self.lock();
        }
    }

    /// No more jobs will come: every member finishes what is queued, then
    /// its [`Crew::wait`] returns `None`.
    pub(crate) fn close(&self) {
        let mut roster = self.lock();
        roster.open = false;
        let mut sleepers = std::mem::take(&mut roster.asleep);
        sleepers.extend(roster.standby.take());
        let threads: Vec<_> = sleepers
            .into_iter()
            .filter_map(|member| {
                roster.put_to_work(member);
                roster.members[member].thread.clone()
            })
            .collect();
        let submitters = std::mem::take(&mut roster.room_wanted);
        drop(roster);
        threads.iter().for_each(Thread::unpark);
        submitters.into_iter().for_each(Waker::wake);
    }

    fn lock(&self) -> MutexGuard<'_, Roster<W>> {
        // Every change keeps the roster consistent before anything can
        // panic; a poisoned lock is still good.
        self.roster.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Lets go of the roster, then wakes whom it called.
fn release<W>(mut roster: MutexGuard<'_, Roster<W>>) {
    let called = roster.called.take();
    let room_made = std::mem::take(&mut roster.room_made);
    drop(roster);
    if let Some(thread) = called {
        thread.unpark();
    }
    room_made.into_iter().for_each(Waker::wake);
}

impl<W> Roster<W> {
    fn enlist(&mut self, me: usize) {
        if self.members[me].thread.is_none() {
            self.members[me].thread = Some(std::thread::current());
        }
    }

    /// Queues a job. With nobody free to take it, a sleeper is woken: to
    /// work if no job runs, else as the standby (it steps in if the running
    /// jobs block).
    fn queue_job(&mut self, job: W) {
        self.queue.push_back(job);
        if self.free > 0 {
            return;
        }
        if self.running > 0 {
            self.keep_watch();
        } else if let Some(member) = self.asleep.pop().or_else(|| self.standby.take()) {
            self.put_to_work(member);
            self.call(member);
        }
    }

    /// Takes the oldest job for a free member. With more waiting and no
    /// standby, a sleeper is made the standby.
    fn take_job(&mut self) -> Option<W> {
        let job = self.queue.pop_front()?;
        self.free -= 1;
        self.running += 1;
        self.taken += 1;
        if !self.room_wanted.is_empty() {
            self.room_made.append(&mut self.room_wanted);
        }
        if !self.queue.is_empty() && self.free == 0 {
            self.keep_watch();
        }
        Some(job)
    }

    /// Makes the sleeper that went to sleep last the standby, unless there
    /// is one.
    fn keep_watch(&mut self) {
        if self.standby.is_none()
            && let Some(member) = self.asleep.pop()
        {
            self.standby = Some(member);
            self.members[member].post = Post::Standby;
            self.call(member);
        }
    }

    /// `member`, asleep or standby, is free to work.
    fn put_to_work(&mut self, member: usize) {
        self.members[member].post = Post::Awake;
        self.free += 1;
    }

    /// Wakes `member` once the roster is let go ([`release`]). One member
    /// at most is called per change.
    fn call(&mut self, member: usize) {
        self.called.clone_from(&self.members[member].thread);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;

    /// Starts `threads` members that run each job (a duration to sleep)
    /// and report which member ran it.
    fn crew(
        threads: usize,
        tick: Duration,
    ) -> (Arc<Crew<Duration>>, mpsc::Receiver<usize>, Vec<std::thread::JoinHandle<()>>) {
        let crew = Arc::new(Crew::with_tick(threads, 64, tick));
        let (ran, report) = mpsc::channel();
        let members = (0..threads)
            .map(|me| {
                let (crew, ran) = (Arc::clone(&crew), ran.clone());
                std::thread::spawn(move || {
                    let mut finished = false;
                    loop {
                        let job = match crew.take(me, std::mem::take(&mut finished)) {
                            Some(job) => job,
                            None => match crew.wait(me) {
                                Some(job) => job,
                                None => return,
                            },
                        };
                        std::thread::sleep(job);
                        ran.send(me).unwrap();
                        finished = true;
                    }
                })
            })
            .collect();
        // Let every member find the queue empty and go to sleep.
        while crew.lock().asleep.len() < threads {
            std::thread::yield_now();
        }
        (crew, report, members)
    }

    fn push(crew: &Crew<Duration>, job: Duration) {
        crew.try_push(job).unwrap();
    }

    #[test]
    fn one_job_at_a_time_goes_to_the_thread_that_slept_last() {
        let (crew, ran, _members) = crew(4, TICK);
        let mut who = Vec::new();
        for _ in 0..20 {
            push(&crew, Duration::ZERO);
            who.push(ran.recv_timeout(Duration::from_secs(5)).unwrap());
            while crew.lock().asleep.len() < 4 {
                std::thread::yield_now();
            }
        }
        assert!(who.iter().all(|&m| m == who[0]), "{who:?}");
    }

    /// Quick jobs queued at once are taken by one thread in turn (and the
    /// standby it appointed looks on), not by a thread each. (A tick this
    /// long keeps the standby from stepping in when the machine is busy.)
    #[test]
    fn a_burst_of_quick_jobs_wakes_one_thread_not_one_per_job() {
        let (crew, ran, _members) = crew(8, Duration::from_secs(30));
        for _ in 0..64 {
            push(&crew, Duration::ZERO);
        }
        let who: Vec<usize> =
            (0..64).map(|_| ran.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        let mut threads = who.clone();
        threads.sort_unstable();
        threads.dedup();
        assert_eq!(threads.len(), 1, "{threads:?} took {who:?}");
        assert!(crew.lock().standby.is_some(), "a standby watched");
    }

    /// Jobs that block (a sleep here, a database in an app) still get a
    /// thread each, a tick or so apart, not one after the other; once they
    /// are done, every thread sleeps without a timeout.
    #[test]
    fn blocked_jobs_do_not_hold_up_the_ones_behind_them() {
        let (crew, ran, _members) = crew(4, TICK);
        let started = Instant::now();
        for _ in 0..4 {
            push(&crew, Duration::from_millis(300));
        }
        let mut who: Vec<usize> =
            (0..4).map(|_| ran.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        let took = started.elapsed();
        who.sort_unstable();
        assert_eq!(who, [0, 1, 2, 3]);
        assert!(took < Duration::from_millis(500), "took {took:?}");
        let done = Instant::now();
        while crew.lock().asleep.len() < 4 {
            assert!(done.elapsed() < Duration::from_secs(5), "{:?}", crew.lock());
            std::thread::yield_now();
        }
        assert_eq!(crew.lock().standby, None);
    }

    /// A job queued behind a blocked one is taken by the standby, within a
    /// tick or two.
    #[test]
    fn a_job_arriving_while_the_running_one_blocks_gets_the_standby() {
        let (crew, ran, _members) = crew(2, TICK);
        push(&crew, Duration::from_millis(500));
        while crew.lock().running == 0 {
            std::thread::yield_now();
        }
        let started = Instant::now();
        push(&crew, Duration::ZERO);
        ran.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() < Duration::from_millis(250));
    }

    /// Until the standby sees it blocked, the running thread is trusted to
    /// take the next job itself: no second thread competes for the GIL.
    #[test]
    fn a_job_arriving_while_one_runs_waits_for_it_rather_than_wake_a_thread() {
        let (crew, ran, _members) = crew(2, Duration::from_secs(30));
        push(&crew, Duration::from_millis(100));
        while crew.lock().running == 0 {
            std::thread::yield_now();
        }
        push(&crew, Duration::ZERO);
        let first = ran.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ran.recv_timeout(Duration::from_secs(5)).unwrap(), first);
    }

    #[test]
    fn a_full_queue_makes_the_submitter_wait_for_room() {
        let crew = Crew::<u32>::new(1, 2);
        crew.try_push(1).unwrap();
        crew.try_push(2).unwrap();
        assert_eq!(crew.try_push(3), Err(3));
        let mut push = std::pin::pin!(crew.push(3));
        let waker = Arc::new(Woken::default());
        let waker_of_push = std::task::Waker::from(Arc::clone(&waker));
        let mut cx = std::task::Context::from_waker(&waker_of_push);
        assert!(push.as_mut().poll(&mut cx).is_pending());
        assert_eq!(crew.take(0, false), Some(1));
        assert!(waker.0.load(std::sync::atomic::Ordering::SeqCst), "room was announced");
        assert_eq!(push.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(crew.take(0, true), Some(2));
        assert_eq!(crew.take(0, true), Some(3));
    }

    #[derive(Default)]
    struct Woken(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn closing_lets_members_finish_the_queue_then_end() {
        let (crew, ran, members) = crew(3, TICK);
        for _ in 0..5 {
            push(&crew, Duration::from_millis(10));
        }
        crew.close();
        assert!(crew.try_push(Duration::ZERO).is_err());
        for member in members {
            member.join().unwrap();
        }
        assert_eq!(ran.try_iter().count(), 5);
    }
}
