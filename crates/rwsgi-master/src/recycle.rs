//! The arithmetic of recycling and respawning: per-worker request limits,
//! the respawn back-off, and reading a worker's RSS.

use std::time::Duration;

/// The request count after which worker `id` asks to be recycled:
/// `max-requests`, plus uWSGI's deterministic stagger (`id * delta`), plus
/// gunicorn's random one (`0..=jitter`, from `random`), so workers started
/// together do not all recycle at once.
pub(crate) fn request_limit(max: u64, delta: u64, jitter: u64, id: usize, random: u64) -> u64 {
    let id = u64::try_from(id).unwrap_or(u64::MAX);
    let jitter = if jitter == 0 { 0 } else { random % (jitter + 1) };
    max.saturating_add(delta.saturating_mul(id)).saturating_add(jitter)
}

/// A random number good enough for a stagger, without a dependency: std's
/// hasher keys are seeded from the OS per process.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// A worker that dies this soon after its start died "young".
pub(crate) const YOUNG: Duration = Duration::from_secs(1);
/// Young deaths in a row tolerated before respawning slows down.
const FREE_RESPAWNS: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Counts workers dying young in a row; past a few, respawns wait, twice
/// as long each time, up to 5 s ("respawning too fast").
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    young_deaths: u32,
}

impl Backoff {
    /// A worker died after living `lived`; returns how long to wait
    /// before replacing it.
    pub(crate) fn died(&mut self, lived: Duration) -> Duration {
        if lived >= YOUNG {
            self.young_deaths = 0;
            return Duration::ZERO;
        }
        self.young_deaths = self.young_deaths.saturating_add(1);
        match self.young_deaths.checked_sub(FREE_RESPAWNS) {
            None | Some(0) => Duration::ZERO,
            Some(excess) => {
                let doubling = 1u32 << excess.min(16);
                (Duration::from_millis(250) * doubling).min(MAX_BACKOFF)
            }
        }
    }
}

/// This process's resident set size in bytes (`/proc/self/statm`).
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_limit_adds_delta_per_worker_and_bounded_jitter() {
        assert_eq!(request_limit(1000, 0, 0, 3, 12345), 1000);
        assert_eq!(request_limit(1000, 10, 0, 1, 12345), 1010);
        assert_eq!(request_limit(1000, 10, 0, 4, 12345), 1040);
        for random in [0, 1, 49, 50, 51, u64::MAX] {
            let limit = request_limit(1000, 0, 50, 1, random);
            assert!((1000..=1050).contains(&limit), "{random}: {limit}");
        }
        assert_eq!(request_limit(1000, 0, 50, 1, 50), 1050);
        assert_eq!(request_limit(u64::MAX, u64::MAX, 7, 9, 3), u64::MAX);
    }

    #[test]
    fn backoff_is_free_for_a_few_young_deaths_then_doubles_up_to_a_cap() {
        let mut backoff = Backoff::default();
        let young = Duration::from_millis(100);
        let waits: Vec<Duration> = (0..10).map(|_| backoff.died(young)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(500));
        assert_eq!(waits[4], Duration::from_secs(1));
        assert_eq!(waits[5], Duration::from_secs(2));
        assert_eq!(waits[9], MAX_BACKOFF);
        assert_eq!(backoff.died(Duration::from_secs(2)), Duration::ZERO, "a long life resets it");
        assert_eq!(backoff.died(young), Duration::ZERO);
    }

    #[test]
    fn reads_its_own_rss() {
        let rss = rss_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
