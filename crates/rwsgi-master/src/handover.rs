//! The hand-over format: what arrives in the environment with inherited
//! sockets, written and read only here. systemd's socket activation sets
//! `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`; a master re-executing
//! itself for a reload sets the same (so one path adopts both) and adds
//! its own variables: that it is a reload, the workers still serving the
//! previous code, and whether to replace them one at a time.

use nix::unistd::Pid;
use rwsgi_server::Protocol;
use std::os::fd::RawFd;

/// The first inherited descriptor, by systemd's protocol.
pub(crate) const FIRST_FD: RawFd = 3;

const LISTEN_PID: &str = "LISTEN_PID";
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// Set by a master that re-executes itself: the sockets are its own (so
/// `vacuum` removes them) and the pidfile is already written. (Not
/// `RWSGI_*`: that namespace holds options, and the config warns about
/// names it does not know.)
const REEXEC: &str = "_RWSGI_REEXEC";
/// The previous image's workers, as comma-separated pids.
const PREVIOUS_WORKERS: &str = "_RWSGI_PREVIOUS_WORKERS";
/// Set for a chain reload.
const CHAIN: &str = "_RWSGI_CHAIN";

/// Every variable of the format: removed once read, so workers and the
/// app never see them.
const ALL: [&str; 6] = [LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, REEXEC, PREVIOUS_WORKERS, CHAIN];

/// What a master hands to its next image besides the sockets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Handover {
    /// Its workers, still serving the previous code.
    pub(crate) workers: Vec<Pid>,
    /// Replace them one at a time.
    pub(crate) chain: bool,
}

/// Descriptors passed to this process, from [`FIRST_FD`] on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Passed {
    pub(crate) count: usize,
    /// One per descriptor when the sender named them (else empty): see
    /// [`protocol_named`].
    pub(crate) names: Vec<String>,
}

/// Everything a starting master received.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Received {
    /// Sockets meant for this process (`LISTEN_PID` is ours).
    pub(crate) sockets: Option<Passed>,
    /// A previous image of this master sent them.
    pub(crate) reexec: bool,
    pub(crate) handover: Handover,
}

/// The variables a master at `pid` sets for its next image, which will
/// find its sockets from [`FIRST_FD`] on, in the order of `protocols`.
pub(crate) fn encode(
    pid: u32,
    protocols: &[Protocol],
    handover: &Handover,
) -> Vec<(&'static str, String)> {
    let names: Vec<&str> = protocols.iter().map(|p| p.option()).collect();
    let workers: Vec<String> = handover.workers.iter().map(Pid::to_string).collect();
    vec![
        (LISTEN_PID, pid.to_string()),
        (LISTEN_FDS, protocols.len().to_string()),
        (LISTEN_FDNAMES, names.join(":")),
        (REEXEC, "1".to_string()),
        (PREVIOUS_WORKERS, workers.join(",")),
        (CHAIN, if handover.chain { "1" } else { "" }.to_string()),
    ]
}

/// Reads what `var` says, for the process `pid`. Sockets meant for another
/// process are not ours (`None`); a `LISTEN_FDS` that is no number is an
/// error. Junk among the previous workers' pids is skipped.
pub(crate) fn decode(var: impl Fn(&str) -> Option<String>, pid: u32) -> Result<Received, String> {
    let reexec = var(REEXEC).is_some();
    let handover = Handover {
        workers: parse_pids(&var(PREVIOUS_WORKERS).unwrap_or_default()),
        chain: var(CHAIN).is_some_and(|v| v == "1"),
    };
    let (Some(listen_pid), Some(listen_fds)) = (var(LISTEN_PID), var(LISTEN_FDS)) else {
        return Ok(Received { sockets: None, reexec, handover });
    };
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(Received { sockets: None, reexec, handover });
    }
    let count: usize = listen_fds
        .trim()
        .parse()
        .map_err(|_| format!("{LISTEN_FDS}={listen_fds:?} is not a number"))?;
    let names = match var(LISTEN_FDNAMES) {
        Some(names) if !names.is_empty() => names.split(':').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(Received { sockets: Some(Passed { count, names }), reexec, handover })
}

/// Reads this process's environment and removes the format's variables.
pub(crate) fn receive() -> Result<Received, String> {
    let received = decode(|name| std::env::var(name).ok(), std::process::id());
    for name in ALL {
        // SAFETY: called once at the master's start, while the process has
        // one thread (before any fork, pool or runtime): nothing reads the
        // environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    received
}

/// Whether this process is a re-executed master, before [`receive`].
pub(crate) fn is_reexec() -> bool {
    std::env::var_os(REEXEC).is_some()
}

/// The protocol a descriptor name stands for: the socket option's name
/// ([`encode`] writes those) or systemd's `FileDescriptorName=` short forms.
pub(crate) fn protocol_named(name: &str) -> Option<Protocol> {
    match name {
        "http-socket" | "http" => Some(Protocol::Http),
        "socket" | "uwsgi-socket" | "uwsgi" => Some(Protocol::Uwsgi),
        "fastcgi-socket" | "fastcgi" => Some(Protocol::FastCgi),
        _ => None,
    }
}

fn parse_pids(text: &str) -> Vec<Pid> {
    text.split(',')
        .filter_map(|p| p.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn decode_map(vars: &[(&str, &str)], pid: u32) -> Result<Received, String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        decode(|name| map.get(name).cloned(), pid)
    }

    #[test]
    fn what_a_master_writes_its_next_image_reads() {
        let protocols = [Protocol::Http, Protocol::Uwsgi, Protocol::FastCgi, Protocol::Http];
        for handover in [
            Handover::default(),
            Handover { workers: vec![Pid::from_raw(41), Pid::from_raw(42)], chain: true },
            Handover { workers: vec![Pid::from_raw(7)], chain: false },
        ] {
            let vars = encode(1234, &protocols, &handover);
            let received =
                decode_map(&vars.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(), 1234)
                    .unwrap();
            assert!(received.reexec);
            assert_eq!(received.handover, handover);
            let passed = received.sockets.unwrap();
            assert_eq!(passed.count, protocols.len());
            let named: Vec<Protocol> =
                passed.names.iter().map(|n| protocol_named(n).unwrap()).collect();
            assert_eq!(named, protocols);
            assert!(
                vars.iter().all(|(k, _)| ALL.contains(k)),
                "every variable is removed once read"
            );
        }
    }

    #[test]
    fn systemd_sockets_are_for_our_pid_only() {
        assert_eq!(decode_map(&[], 7), Ok(Received::default()));
        let other = decode_map(&[("LISTEN_PID", "8"), ("LISTEN_FDS", "2")], 7).unwrap();
        assert_eq!(other.sockets, None);
        let ours = decode_map(&[("LISTEN_PID", "7"), ("LISTEN_FDS", "2")], 7).unwrap();
        assert_eq!(ours.sockets, Some(Passed { count: 2, names: vec![] }));
        assert!(!ours.reexec);
        let named = decode_map(
            &[("LISTEN_PID", "7"), ("LISTEN_FDS", "2"), ("LISTEN_FDNAMES", "http-socket:socket")],
            7,
        )
        .unwrap();
        assert_eq!(named.sockets.unwrap().names, ["http-socket", "socket"]);
        assert!(decode_map(&[("LISTEN_PID", "7"), ("LISTEN_FDS", "x")], 7).is_err());
    }

    #[test]
    fn previous_workers_parse_and_ignore_junk() {
        assert_eq!(parse_pids(""), vec![]);
        assert_eq!(parse_pids("12,34"), vec![Pid::from_raw(12), Pid::from_raw(34)]);
        assert_eq!(parse_pids("12,,x,-1,0, 7"), vec![Pid::from_raw(12), Pid::from_raw(7)]);
    }

    #[test]
    fn descriptor_names() {
        assert_eq!(protocol_named("uwsgi"), Some(Protocol::Uwsgi));
        assert_eq!(protocol_named("fastcgi"), Some(Protocol::FastCgi));
        assert_eq!(protocol_named("app.socket"), None);
    }
}
