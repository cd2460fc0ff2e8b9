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
//! app blocks (a database, a sleep), a *standby* thread watches: once the
//! oldest waiting job has waited a [`TICK`], it takes that job itself if
//! no job was taken for a tick either, or if no working thread is on a CPU
//! (they all wait in the kernel, the GIL released); and the next sleeper
//! becomes the standby. So jobs stuck behind blocked ones get a thread
//! each, a tick or so apart, while a working thread that keeps taking jobs
//! and runs Python keeps them: another thread would only wait for the GIL.
//!
//! Generic over the job, and free of Python, so that it is tested alone.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a job may wait before the standby considers taking it.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Post {
    /// Awake: free, or running a job.
    #[default]
    Awake,
    /// Asleep until a job needs it.
    Asleep,
    /// Asleep, watching the jobs wait (see the module's doc).
    Standby,
}

#[derive(Debug, Default)]
struct Member {
    /// Set when the thread first asks for work.
    thread: Option<Thread>,
    /// Its `/proc/self/task/<tid>/stat`, to see whether it is on a CPU.
    stat: Option<std::path::PathBuf>,
    post: Post,
}

#[derive(Debug)]
struct Roster<W> {
    /// The jobs, each with when it was queued.
    queue: VecDeque<(Instant, W)>,
    /// Submitters waiting for room in a full queue, first come first
    /// served: their ticket and waker.
    room_wanted: VecDeque<(u64, Waker)>,
    next_ticket: u64,
    members: Vec<Member>,
    /// The members asleep, the one that went to sleep last at the end.
    asleep: Vec<usize>,
    standby: Option<usize>,
    /// Whether the standby watches the queue (sleeps with a timeout); with
    /// nothing queued it sleeps without one, until called.
    watching: bool,
    /// Members awake without a job.
    free: usize,
    /// Members running a job.
    running: usize,
    /// When a job was last taken.
    last_taken: Instant,
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
        let roster = Roster {
            queue: VecDeque::with_capacity(capacity),
            room_wanted: VecDeque::new(),
            next_ticket: 0,
            members: (0..threads).map(|_| Member::default()).collect(),
            asleep: Vec::with_capacity(threads),
            standby: None,
            watching: false,
            free: threads,
            running: 0,
            last_taken: Instant::now(),
            open: true,
            called: None,
            room_made: Vec::new(),
        };
        Crew { roster: Mutex::new(roster), capacity: capacity.max(1), tick }
    }

    /// Queues `work`, waiting in line while the queue is full; gives it back
    /// if the crew is closed.
    pub(crate) fn push(&self, work: W) -> Push<'_, W> {
        Push { crew: self, work: Some(work), ticket: None }
    }

    /// Queues `work` if there is room now.
    #[cfg(test)]
    fn try_push(&self, work: W) -> Result<(), W> {
        let mut roster = self.lock();
        if !roster.open || roster.queue.len() >= self.capacity {
            return Err(work);
        }
        roster.queue_job(work);
        release(roster);
        Ok(())
    }

    /// Queues `work` first in line if there is room now, and has a thread
    /// take it at once: a short job that something waits for.
    pub(crate) fn try_push_first(&self, work: W) -> Result<(), W> {
        let mut roster = self.lock();
        if !roster.open || roster.queue.len() >= self.capacity {
            return Err(work);
        }
        roster.queue.push_front((Instant::now(), work));
        if roster.free == 0 {
            roster.wake_to_work();
        }
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
    /// crew is closed and the queue is empty.
    pub(crate) fn wait(&self, me: usize) -> Option<W> {
        let mut roster = self.lock();
        roster.enlist(me);
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
        // The standby saw no working thread on a CPU, just now.
        let mut all_blocked = false;
        loop {
            let nap = match roster.members[me].post {
                Post::Awake => return roster,
                Post::Asleep => None,
                Post::Standby => match roster.queue.front() {
                    None => {
                        roster.watching = false;
                        None
                    }
                    Some(&(queued, _)) => {
                        roster.watching = true;
                        let waited = queued.elapsed();
                        if waited < self.tick {
                            Some(self.tick - waited)
                        } else if all_blocked || roster.last_taken.elapsed() >= self.tick {
                            roster.standby = None;
                            roster.watching = false;
                            roster.put_to_work(me);
                            return roster;
                        } else {
                            // Jobs are taken, yet the line is old: look at
                            // the working threads, without holding the
                            // roster (one waiting for it is off its CPU).
                            let stats = roster.working_stats();
                            drop(roster);
                            all_blocked = !stats.iter().any(|stat| on_a_cpu(stat));
                            roster = self.lock();
                            if all_blocked {
                                continue;
                            }
                            Some(self.tick)
                        }
                    }
                },
            };
            all_blocked = false;
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
        let submitters: Vec<_> = roster.room_wanted.drain(..).map(|(_, waker)| waker).collect();
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

/// [`Crew::push`]'s future.
#[derive(Debug)]
pub(crate) struct Push<'a, W> {
    crew: &'a Crew<W>,
    /// Until queued.
    work: Option<W>,
    /// Its place in line while the queue is full.
    ticket: Option<u64>,
}

impl<W: Unpin> Future for Push<'_, W> {
    type Output = Result<(), W>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut roster = this.crew.lock();
        let Some(work) = this.work.take() else { return Poll::Pending };
        if !roster.open {
            return Poll::Ready(Err(work));
        }
        if roster.queue.len() >= this.crew.capacity {
            this.work = Some(work);
            let ticket = *this.ticket.get_or_insert_with(|| {
                roster.next_ticket += 1;
                roster.next_ticket
            });
            match roster.room_wanted.iter_mut().find(|(held, _)| *held == ticket) {
                Some((_, waker)) => waker.clone_from(cx.waker()),
                None => roster.room_wanted.push_back((ticket, cx.waker().clone())),
            }
            return Poll::Pending;
        }
        if let Some(ticket) = this.ticket.take() {
            roster.room_wanted.retain(|(held, _)| *held != ticket);
        }
        roster.queue_job(work);
        release(roster);
        Poll::Ready(Ok(()))
    }
}

impl<W> Drop for Push<'_, W> {
    /// Leaves the line; told there was room but gone without taking it, it
    /// tells the next in line instead.
    fn drop(&mut self) {
        let (Some(ticket), Some(_)) = (self.ticket, &self.work) else { return };
        let mut roster = self.crew.lock();
        let before = roster.room_wanted.len();
        roster.room_wanted.retain(|(held, _)| *held != ticket);
        if roster.room_wanted.len() == before && roster.queue.len() < self.crew.capacity {
            roster.room_for_one();
        }
        release(roster);
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
        let member = &mut self.members[me];
        if member.thread.is_none() {
            member.thread = Some(std::thread::current());
            // Found on the thread itself (`/proc/thread-self`), kept for
            // the standby to read.
            member.stat = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|link| link.file_name().map(|tid| tid.to_owned()))
                .map(|tid| std::path::Path::new("/proc/self/task").join(tid).join("stat"));
        }
    }

    /// Queues a job. With nobody free to take it, a sleeper is woken: to
    /// work if no job runs, else the standby, to watch.
    fn queue_job(&mut self, job: W) {
        self.queue.push_back((Instant::now(), job));
        if self.free > 0 {
            return;
        }
        if self.running == 0 {
            self.wake_to_work();
        } else {
            self.watch();
        }
    }

    /// Takes the oldest job for a free member. With more waiting and
    /// nobody free, the standby watches.
    fn take_job(&mut self) -> Option<W> {
        let (_, job) = self.queue.pop_front()?;
        self.free -= 1;
        self.running += 1;
        self.last_taken = Instant::now();
        self.room_for_one();
        if !self.queue.is_empty() && self.free == 0 {
            self.watch();
        }
        Some(job)
    }

    /// Tells the first submitter in line there is room.
    fn room_for_one(&mut self) {
        if let Some((_, waker)) = self.room_wanted.pop_front() {
            self.room_made.push(waker);
        }
    }

    /// Wakes the member that went to sleep last (or else the standby) to
    /// work.
    fn wake_to_work(&mut self) {
        let sleeper = self.asleep.pop().or_else(|| {
            self.watching = false;
            self.standby.take()
        });
        if let Some(member) = sleeper {
            self.put_to_work(member);
            self.call(member);
        }
    }

    /// Has the standby watch the queue: the sleeper that went to sleep last
    /// becomes it if there is none, and one asleep without a timeout is
    /// called.
    fn watch(&mut self) {
        if self.standby.is_none()
            && let Some(member) = self.asleep.pop()
        {
            self.standby = Some(member);
            self.members[member].post = Post::Standby;
            self.watching = false;
        }
        if let Some(standby) = self.standby
            && !self.watching
        {
            self.watching = true;
            self.call(standby);
        }
    }

    /// The `/proc` stat files of the members awake.
    fn working_stats(&self) -> Vec<std::path::PathBuf> {
        let awake = self.members.iter().filter(|member| member.post == Post::Awake);
        awake.filter_map(|member| member.stat.clone()).collect()
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

/// Whether the thread of this `/proc` stat file is on a CPU, or ready for
/// one (it will take the next job itself). Where `/proc` cannot tell, no.
fn on_a_cpu(stat: &std::path::Path) -> bool {
    std::fs::read(stat).ok().and_then(|stat| scheduler_state(&stat)) == Some(b'R')
}

/// The state letter of a `/proc/…/stat` line (`R`: running or runnable),
/// which follows the command name in parentheses.
fn scheduler_state(stat: &[u8]) -> Option<u8> {
    let after_name = stat.iter().rposition(|&byte| byte == b')')?;
    stat.get(after_name + 2).copied()
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
        let crew = Arc::new(Crew::with_tick(threads, 512, tick));
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

    /// Which member ran each of the next `jobs` jobs.
    fn who_ran(ran: &mpsc::Receiver<usize>, jobs: usize) -> Vec<usize> {
        (0..jobs).map(|_| ran.recv_timeout(Duration::from_secs(5)).unwrap()).collect()
    }

    fn push(crew: &Crew<Duration>, job: Duration) {
        crew.try_push(job).unwrap();
    }

    /// Queues a job of `each` and waits until a thread runs it.
    fn start_one(crew: &Crew<Duration>, each: Duration) {
        push(crew, each);
        while crew.lock().running == 0 {
            std::thread::yield_now();
        }
    }

    /// Queues `jobs` jobs of `each` at once; who ran them, in order, and
    /// how long they all took.
    fn run_all(
        crew: &Crew<Duration>,
        ran: &mpsc::Receiver<usize>,
        jobs: usize,
        each: Duration,
    ) -> (Vec<usize>, Duration) {
        let started = Instant::now();
        for _ in 0..jobs {
            push(crew, each);
        }
        let who = who_ran(ran, jobs);
        (who, started.elapsed())
    }

    /// The threads among `who`, each once, in order.
    fn distinct(who: &[usize]) -> Vec<usize> {
        let mut threads = who.to_vec();
        threads.sort_unstable();
        threads.dedup();
        threads
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

    /// Quick jobs queued at once are taken by one thread in turn, not by a
    /// thread each. (A tick this long keeps the standby from stepping in
    /// when the machine is busy.)
    #[test]
    fn a_burst_of_quick_jobs_wakes_one_thread_not_one_per_job() {
        let (crew, ran, _members) = crew(8, Duration::from_secs(30));
        let (who, _) = run_all(&crew, &ran, 64, Duration::ZERO);
        let threads = distinct(&who);
        assert_eq!(threads.len(), 1, "{threads:?} took {who:?}");
    }

    /// Jobs that block (a sleep here, a database in an app) still get a
    /// thread each, a tick or so apart, not one after the other; once they
    /// are done, every thread sleeps without a timeout.
    #[test]
    fn blocked_jobs_do_not_hold_up_the_ones_behind_them() {
        let (crew, ran, _members) = crew(4, TICK);
        let (who, took) = run_all(&crew, &ran, 4, Duration::from_millis(300));
        assert_eq!(distinct(&who), [0, 1, 2, 3]);
        assert!(took < Duration::from_millis(500), "took {took:?}");
        // Then nobody watches an empty queue: all sleep without a timeout.
        let done = Instant::now();
        loop {
            let roster = crew.lock();
            if roster.running == 0
                && roster.asleep.len() + usize::from(roster.standby.is_some()) == 4
                && !roster.watching
            {
                break;
            }
            assert!(done.elapsed() < Duration::from_secs(5), "{roster:?}");
            drop(roster);
            std::thread::yield_now();
        }
    }

    /// Short blocking jobs (a quick database call, the GIL released) keep a
    /// thread taking jobs every tick: the standby still steps in, since no
    /// working thread is on a CPU.
    #[test]
    fn short_blocking_jobs_spread_over_the_threads() {
        let (crew, ran, _members) = crew(8, TICK);
        let (who, took) = run_all(&crew, &ran, 400, Duration::from_micros(500));
        let threads = distinct(&who);
        assert!(threads.len() >= 4, "{threads:?}");
        // One after the other, they take 200 ms and more.
        assert!(took < Duration::from_millis(120), "took {took:?}");
    }

    /// Jobs that keep a thread on the CPU (Python holding the GIL) stay with
    /// it, however long the line: another thread would wait for the GIL.
    #[test]
    fn jobs_that_keep_a_thread_busy_stay_with_it() {
        let crew = Arc::new(Crew::with_tick(4, 512, Duration::from_millis(20)));
        let (ran, report) = mpsc::channel();
        for me in 0..4 {
            let (crew, ran) = (Arc::clone(&crew), ran.clone());
            std::thread::spawn(move || {
                let mut finished = false;
                while let Some(spin) =
                    crew.take(me, std::mem::take(&mut finished)).or_else(|| crew.wait(me))
                {
                    let started = Instant::now();
                    while started.elapsed() < spin {
                        std::hint::spin_loop();
                    }
                    ran.send(me).unwrap();
                    finished = true;
                }
            });
        }
        while crew.lock().asleep.len() < 4 {
            std::thread::yield_now();
        }
        // 200 jobs of 200 µs: the last waits 40 ms, two ticks.
        for _ in 0..200 {
            crew.try_push(Duration::from_micros(200)).unwrap();
        }
        let mut who: Vec<usize> = who_ran(&report, 200);
        who.dedup();
        assert_eq!(who.len(), 1, "{who:?}");
        crew.close();
    }

    #[test]
    fn a_first_job_goes_ahead_and_wakes_a_thread_at_once() {
        let (crew, ran, _members) = crew(2, Duration::from_secs(30));
        start_one(&crew, Duration::from_millis(300));
        push(&crew, Duration::from_millis(300));
        let started = Instant::now();
        crew.try_push_first(Duration::ZERO).unwrap();
        ran.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
    }

    #[test]
    fn the_state_letter_follows_the_command_name() {
        assert_eq!(scheduler_state(b"42 (a) b) c) S 1 2"), Some(b'S'));
        let mine = std::fs::read("/proc/thread-self/stat").unwrap();
        assert_eq!(scheduler_state(&mine), Some(b'R'), "this thread runs");
    }

    /// A job queued behind a blocked one is taken by the standby, within a
    /// tick or two.
    #[test]
    fn a_job_arriving_while_the_running_one_blocks_gets_the_standby() {
        let (crew, ran, _members) = crew(2, TICK);
        start_one(&crew, Duration::from_millis(500));
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
        start_one(&crew, Duration::from_millis(100));
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

    /// A submitter told there is room but gone without using it passes
    /// its turn to the next in line.
    #[test]
    fn a_submitter_that_leaves_the_line_passes_its_turn_on() {
        let crew = Crew::<u32>::new(1, 1);
        crew.try_push(0).unwrap();
        let (first, second) = (Arc::new(Woken::default()), Arc::new(Woken::default()));
        let mut first_push = Box::pin(crew.push(1));
        let mut second_push = std::pin::pin!(crew.push(2));
        for (push, woken) in [(first_push.as_mut(), &first), (second_push.as_mut(), &second)] {
            let waker = std::task::Waker::from(Arc::clone(woken));
            assert!(push.poll(&mut std::task::Context::from_waker(&waker)).is_pending());
        }
        assert_eq!(crew.take(0, false), Some(0));
        assert!(first.0.load(std::sync::atomic::Ordering::SeqCst), "first in line");
        assert!(!second.0.load(std::sync::atomic::Ordering::SeqCst), "one slot, one call");
        drop(first_push);
        assert!(second.0.load(std::sync::atomic::Ordering::SeqCst), "the turn passed on");
        let waker = std::task::Waker::from(Arc::clone(&second));
        let cx = &mut std::task::Context::from_waker(&waker);
        assert_eq!(second_push.as_mut().poll(cx), Poll::Ready(Ok(())));
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
