//! A worker's life as the master sees it: every state and every transition
//! is here, so the master's loop only asks and applies (sends the signal a
//! transition calls for).

use std::time::Instant;

/// Why a worker is on its way out, which decides what its exit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The master told it to stop: its exit is expected.
    Stopped,
    /// The master told it to stop at once (SIGQUIT): its exit is
    /// expected, and nothing is waited for.
    Quit,
    /// A request ran past `harakiri`: it is replaced at once.
    Harakiri,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    /// Forked; its app is not ready yet.
    Starting,
    /// Ready, serving requests.
    Serving,
    /// On its way out; SIGKILL at `kill_at` if still alive.
    Leaving { why: Why, kill_at: Instant },
    /// Told to stop, it outlived its mercy with requests still running:
    /// their Python stacks were asked for; SIGKILL at `kill_at`.
    Cutting { kill_at: Instant },
    /// SIGKILL was sent.
    Killed { why: Why },
}

/// What a worker's deadline asks of the master now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// A stopped worker's mercy ran out: log its requests and ask for
    /// their Python stacks; the kill follows.
    Stacks,
    /// SIGKILL.
    Kill,
}

impl Life {
    /// Starting or serving: not on its way out.
    pub(crate) fn live(self) -> bool {
        matches!(self, Life::Starting | Life::Serving)
    }

    /// Why it is leaving; `None` for a live worker, whose exit is a death.
    pub(crate) fn why(self) -> Option<Why> {
        match self {
            Life::Starting | Life::Serving => None,
            Life::Leaving { why, .. } | Life::Killed { why } => Some(why),
            Life::Cutting { .. } => Some(Why::Stopped),
        }
    }

    /// Its app is ready. True when this is news: a starting worker now
    /// serves (one on its way out stays so).
    pub(crate) fn ready(&mut self) -> bool {
        let news = *self == Life::Starting;
        if news {
            *self = Life::Serving;
        }
        news
    }

    /// Told to stop, to be killed at `kill_at`. True when the stop signal
    /// must be sent: always when `insist` (an immediate shutdown), else
    /// unless it already stops by then. A harakiri in progress becomes a
    /// stop, whichever kill comes first.
    pub(crate) fn stop(&mut self, kill_at: Instant, insist: bool) -> bool {
        let stopped = if insist { Why::Quit } else { Why::Stopped };
        match *self {
            Life::Starting | Life::Serving => {
                *self = Life::Leaving { why: stopped, kill_at };
                true
            }
            Life::Leaving { why, kill_at: due } => {
                let sooner = kill_at < due;
                let why_now = if why == Why::Quit { Why::Quit } else { stopped };
                *self = Life::Leaving { why: why_now, kill_at: due.min(kill_at) };
                sooner || insist || why == Why::Harakiri
            }
            Life::Cutting { .. } => false,
            Life::Killed { .. } => {
                *self = Life::Killed { why: Why::Stopped };
                false
            }
        }
    }

    /// A request ran past `harakiri`: kill at `kill_at`, once its stacks
    /// are logged. True when that is news (the stacks are asked for); a
    /// worker to be killed by then anyway is left alone.
    pub(crate) fn harakiri(&mut self, kill_at: Instant) -> bool {
        match *self {
            Life::Starting | Life::Serving => {
                *self = Life::Leaving { why: Why::Harakiri, kill_at };
                true
            }
            Life::Leaving { why, kill_at: due } if kill_at < due => {
                *self = Life::Leaving { why, kill_at };
                true
            }
            Life::Leaving { .. } | Life::Cutting { .. } | Life::Killed { .. } => false,
        }
    }

    /// True when SIGKILL is due now, and it is taken as sent.
    pub(crate) fn kill_due(&mut self, now: Instant) -> bool {
        match *self {
            Life::Leaving { why, kill_at } if kill_at <= now => {
                *self = Life::Killed { why };
                true
            }
            Life::Cutting { kill_at } if kill_at <= now => {
                *self = Life::Killed { why: Why::Stopped };
                true
            }
            _ => false,
        }
    }

    /// What is due now: a stopped worker past its mercy first has its
    /// stacks asked for (and `stacks_grace` more to write them), then
    /// the kill; a harakiri's stacks were asked for already.
    pub(crate) fn due(&mut self, now: Instant, stacks_grace: std::time::Duration) -> Due {
        if let Life::Leaving { why: Why::Stopped, kill_at } = *self
            && kill_at <= now
        {
            *self = Life::Cutting { kill_at: now + stacks_grace };
            return Due::Stacks;
        }
        if self.kill_due(now) { Due::Kill } else { Due::Nothing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    #[test]
    fn a_worker_starts_serves_stops_and_is_killed_when_its_mercy_runs_out() {
        let mut life = Life::Starting;
        assert!(life.live() && life.why().is_none());
        assert!(!life.kill_due(at(100)), "nothing to kill");
        assert!(life.ready());
        assert!(!life.ready(), "ready once");
        assert_eq!(life, Life::Serving);
        assert!(life.stop(at(60), false));
        assert!(!life.live());
        assert!(!life.stop(at(90), false), "a later stop changes nothing");
        assert!(life.stop(at(30), false), "a sooner one is signalled");
        assert!(!life.kill_due(at(29)));
        assert!(life.kill_due(at(30)));
        assert!(!life.kill_due(at(31)), "killed once");
        assert_eq!(life, Life::Killed { why: Why::Stopped });
        assert!(!life.stop(at(40), true), "no signal to a killed worker");
    }

    #[test]
    fn past_its_mercy_a_stopped_worker_gives_its_stacks_then_is_killed() {
        let grace = Duration::from_secs(1);
        let mut life = Life::Serving;
        assert!(life.stop(at(10), false));
        assert_eq!(life.due(at(9), grace), Due::Nothing);
        assert_eq!(life.due(at(10), grace), Due::Stacks);
        assert_eq!(life.why(), Some(Why::Stopped));
        assert!(!life.stop(at(5), true), "no second signal while cutting");
        assert_eq!(life.due(at(10), grace), Due::Nothing, "the stacks' grace");
        assert_eq!(life.due(at(11), grace), Due::Kill);
        assert_eq!(life.due(at(12), grace), Due::Nothing, "killed once");
        let mut harakiri = Life::Serving;
        assert!(harakiri.harakiri(at(3)));
        assert_eq!(harakiri.due(at(3), grace), Due::Kill, "its stacks were asked for already");
    }

    #[test]
    fn an_immediate_shutdown_signals_again_and_keeps_the_sooner_kill() {
        let mut life = Life::Serving;
        assert!(life.stop(at(10), false));
        assert!(life.stop(at(11), true));
        assert_eq!(life, Life::Leaving { why: Why::Quit, kill_at: at(10) });
        assert_eq!(life.due(at(10), Duration::from_secs(1)), Due::Kill, "no stacks on SIGQUIT");
    }

    #[test]
    fn harakiri_once_then_killed_and_a_stop_makes_it_expected() {
        let mut life = Life::Serving;
        assert!(life.harakiri(at(5)));
        assert!(!life.harakiri(at(6)), "the stacks are asked for once");
        assert_eq!(life.why(), Some(Why::Harakiri));
        assert!(life.stop(at(60), false), "a stop is signalled");
        assert_eq!(life, Life::Leaving { why: Why::Stopped, kill_at: at(5) }, "sooner kill kept");
        assert!(life.kill_due(at(5)));
        assert_eq!(life.why(), Some(Why::Stopped));
    }

    #[test]
    fn a_stopping_worker_past_harakiri_is_killed_sooner() {
        let mut life = Life::Serving;
        assert!(life.stop(at(60), false));
        assert!(life.harakiri(at(5)));
        assert_eq!(life, Life::Leaving { why: Why::Stopped, kill_at: at(5) });
        assert!(!life.harakiri(at(7)), "already due sooner");
        let mut killed = Life::Killed { why: Why::Harakiri };
        assert!(!killed.harakiri(at(1)));
        assert!(!killed.ready(), "a worker on its way out never serves again");
    }
}
