//! What happens once, before serving: the listen backlog, the sockets, the
//! pidfile, dropping privileges; and after: `vacuum`. Also process titles.

use crate::MasterOptions;
use crate::error::MasterError;
use crate::handover::{self, Handover};
use crate::logfile::{LogFile, LogTo};
use crate::logrelay;
use crate::systemd::{self, Notifier};
use nix::unistd::{Gid, Group, Uid, User};
use rwsgi_server::{Listener, ServerConfig, SocketOwner};
use std::path::{Path, PathBuf};

/// Everything prepared for serving.
#[derive(Debug)]
pub(crate) struct Start {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) server: ServerConfig,
    pub(crate) notifier: Option<Notifier>,
    /// The directory we started in, for a re-exec (the app may `chdir`).
    pub(crate) cwd: PathBuf,
    /// Files `vacuum` removes on exit: our unix sockets and the pidfile.
    vacuum: Vec<PathBuf>,
    /// From this master's previous image, after a reload.
    pub(crate) handover: Handover,
    /// `logto`: the file stdout and stderr write to.
    pub(crate) log: Option<LogFile>,
    /// `req-logger = file:PATH`: the request lines' own file.
    pub(crate) request_log: Option<LogFile>,
}

impl Start {
    pub(crate) fn prepare(
        options: &MasterOptions,
        mut server: ServerConfig,
    ) -> Result<Start, MasterError> {
        // A master re-executed by a reload is the daemon already.
        if options.daemonize && !handover::is_reexec() {
            daemonize()?;
        }
        let mut log = match &options.log.path {
            Some(path) if !options.log.after_drop => Some(LogFile::start(path)?),
            _ => None,
        };
        if let Some(syslog) = &options.log.syslog {
            logrelay::start(syslog, &[libc::STDOUT_FILENO, libc::STDERR_FILENO])?;
        }
        let request_log = match &options.log.requests {
            Some(LogTo::File(path)) => Some(LogFile::start_requests(path)?),
            Some(LogTo::Syslog(syslog)) => {
                logrelay::start_for_requests(syslog)?;
                None
            }
            None => None,
        };
        if let Some(mask) = options.umask {
            // Before any socket, pidfile or log file is created.
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        if let Some(max_fd) = options.max_fd {
            set_max_fd(max_fd)?;
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let received = handover::receive().map_err(MasterError::Activation)?;
        let reexec = received.reexec;
        // A re-executed master has the same pid, and may have given up the
        // rights to write its pidfiles. Each is written (and later removed)
        // by its absolute path: relative ones are relative to where rwsgi
        // started (`pidfile`) or to `chdir` (`pidfile2`), as in uWSGI.
        let write_pidfiles = |paths: &[PathBuf]| -> Result<Vec<PathBuf>, MasterError> {
            let paths: Vec<PathBuf> = paths.iter().map(|p| absolute(p)).collect();
            if !reexec {
                paths.iter().try_for_each(|path| write_pidfile(path))?;
            }
            Ok(paths)
        };
        let mut vacuum = write_pidfiles(&options.pidfiles)?;
        if let Some(dir) = &options.chdir {
            // Before binding, so relative unix socket paths are in it.
            std::env::set_current_dir(dir)
                .map_err(|source| MasterError::Chdir { path: dir.clone(), source })?;
        }
        server.listen_backlog = cap_backlog(server.listen_backlog, somaxconn());
        server.chown_socket = options.chown_socket.as_deref().map(resolve_owner).transpose()?;
        // Before any other thread or process exists, so all inherit it.
        rwsgi_server::prefer_batching();
        let owned = systemd::listeners(&server, &received)?;
        vacuum.extend(
            owned
                .iter()
                .filter(|o| o.ours)
                .filter_map(|o| o.listener.unix_path().map(Path::to_path_buf)),
        );
        let listeners = owned.into_iter().map(|o| o.listener).collect();
        drop_privileges(options.uid.as_deref(), options.gid.as_deref())?;
        if let (Some(path), true) = (&options.log.path, options.log.after_drop) {
            log = Some(LogFile::start(path)?);
        }
        vacuum.extend(write_pidfiles(&options.pidfiles_after_drop)?);
        if !server.vacuum {
            vacuum.clear();
        }
        Ok(Start {
            listeners,
            server,
            notifier: Notifier::from_env(),
            cwd,
            vacuum,
            handover: received.handover,
            log,
            request_log,
        })
    }

    /// The lines the operator (and the tests) wait for.
    pub(crate) fn log_listening(&self) {
        self.listening_lines()();
    }

    /// [`Start::log_listening`], to say later (once the listeners are
    /// handed over).
    pub(crate) fn listening_lines(&self) -> impl Fn() + use<> {
        let lines: Vec<String> = self
            .listeners
            .iter()
            .map(|l| format!("{} listening on {}", l.protocol().option(), l.local()))
            .collect();
        move || lines.iter().for_each(|line| tracing::info!("{line}"))
    }

    /// Tells systemd, if it asked.
    pub(crate) fn notify(&self, state: &str) {
        if let Some(notifier) = &self.notifier {
            notifier.notify(state);
        }
    }

    /// Closes the listeners (new connections are refused from now on, once
    /// the workers have closed theirs too) and removes what `vacuum` names.
    pub(crate) fn finish(&mut self) {
        self.listeners.clear();
        vacuum(std::mem::take(&mut self.vacuum));
    }

    /// What the caller does after serving (tell systemd we are stopping,
    /// then [`Start::finish`]'s removals), for an exit that cannot come
    /// back here (SIGQUIT while a request runs on the I/O thread).
    pub(crate) fn on_quit(&self) -> impl FnOnce() + Send + 'static {
        let paths = self.vacuum.clone();
        let notifier = self.notifier.as_ref().and_then(Notifier::try_clone);
        move || {
            if let Some(notifier) = notifier {
                notifier.notify("STOPPING=1");
            }
            vacuum(paths)
        }
    }
}

/// `daemonize`: leaves the terminal as a daemon does (fork, a new
/// session, fork again), with stdin on `/dev/null`; the first two
/// processes exit 0 at once. Before any thread or the app exists.
fn daemonize() -> Result<(), MasterError> {
    for step in 0..2 {
        // Called first in `prepare`, while the process has one thread.
        if let crate::fork::Side::Parent(_) = crate::fork::fork()? {
            std::process::exit(0)
        }
        if step == 0 {
            nix::unistd::setsid().map_err(MasterError::system("setsid"))?;
        }
    }
    let null = std::fs::File::open("/dev/null")
        .map_err(|_| MasterError::System { call: "open /dev/null", source: nix::Error::last() })?;
    // SAFETY: replaces stdin with /dev/null; nothing owns fd 0.
    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), libc::STDIN_FILENO) };
    Ok(())
}

fn vacuum(paths: Vec<PathBuf>) {
    for path in paths {
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("vacuum {}: {err}", path.display());
        }
    }
}

/// `listen` beyond the kernel's `somaxconn` is silently cut by the kernel:
/// say so instead, and use what the kernel allows.
fn cap_backlog(asked: u32, somaxconn: Option<u32>) -> u32 {
    match somaxconn {
        Some(max) if asked > max => {
            tracing::warn!(
                "listen = {asked} exceeds net.core.somaxconn = {max}; using {max} (raise it with sysctl)"
            );
            max
        }
        _ => asked,
    }
}

fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?.trim().parse().ok()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn write_pidfile(path: &Path) -> Result<(), MasterError> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|source| MasterError::Pidfile { path: path.to_path_buf(), source })
}

fn privileges_error(option: &'static str, value: &str) -> impl Fn(String) -> MasterError + use<> {
    let value = value.to_string();
    move |reason| MasterError::Privileges { option, value: value.clone(), reason }
}

/// A user by name or number, and its primary group when it has an entry.
fn resolve_user(value: &str) -> Result<(Uid, Option<Gid>), MasterError> {
    let error = privileges_error("uid", value);
    let user = match value.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)).map_err(|e| error(e.to_string()))?,
        Err(_) => Some(
            User::from_name(value)
                .map_err(|e| error(e.to_string()))?
                .ok_or_else(|| error("no such user".into()))?,
        ),
    };
    Ok(match (user, value.parse::<u32>()) {
        (Some(user), _) => (user.uid, Some(user.gid)),
        (None, Ok(n)) => (Uid::from_raw(n), None),
        (None, Err(_)) => return Err(error("no such user".into())),
    })
}

fn resolve_group(value: &str) -> Result<Gid, MasterError> {
    let error = privileges_error("gid", value);
    if let Ok(n) = value.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    Group::from_name(value)
        .map_err(|e| error(e.to_string()))?
        .map(|g| g.gid)
        .ok_or_else(|| error("no such group".into()))
}

/// `max-fd`: the open-files limit, soft and hard (as uWSGI sets it); a hard
/// limit above the current one needs root.
fn set_max_fd(max_fd: u64) -> Result<(), MasterError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(MasterError::system("getrlimit"))?;
    let hard = if Uid::effective().is_root() { max_fd.max(hard) } else { hard };
    if max_fd > hard {
        return Err(MasterError::Limit(format!(
            "max-fd {max_fd}: above the hard limit {hard}, which only root can raise"
        )));
    }
    setrlimit(Resource::RLIMIT_NOFILE, max_fd, hard).map_err(MasterError::system("setrlimit"))?;
    tracing::info!("open-files limit: {max_fd} (max-fd)");
    Ok(())
}

/// `chown-socket = user[:group]`: who the socket files will belong to.
fn resolve_owner(value: &str) -> Result<SocketOwner, MasterError> {
    let (user, group) = match value.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (value, None),
    };
    let uid =
        (!user.is_empty()).then(|| resolve_user(user)).transpose()?.map(|(uid, _)| uid.as_raw());
    let gid = group.filter(|g| !g.is_empty()).map(resolve_group).transpose()?.map(Gid::as_raw);
    Ok(SocketOwner { uid, gid })
}

/// `uid`/`gid`: after binding (privileged ports) and the pidfile, become
/// the given user and group, with no other supplementary group. Already
/// being them (a re-executed master) is fine; becoming them without root
/// is an error.
fn drop_privileges(uid: Option<&str>, gid: Option<&str>) -> Result<(), MasterError> {
    let user = uid.map(resolve_user).transpose()?;
    let group = gid.map(resolve_group).transpose()?.or(user.and_then(|(_, g)| g));
    let want_uid = user.map(|(u, _)| u);
    if want_uid.is_none_or(|u| u == Uid::current()) && group.is_none_or(|g| g == Gid::current()) {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        let (option, value) = match uid {
            Some(uid) => ("uid", uid),
            None => ("gid", gid.unwrap_or_default()),
        };
        return Err(privileges_error(option, value)("only root can switch users".into()));
    }
    if let Some(gid) = group {
        let error = privileges_error("gid", &gid.to_string());
        nix::unistd::setgroups(&[gid]).map_err(|e| error(format!("setgroups: {e}")))?;
        nix::unistd::setgid(gid).map_err(|e| error(format!("setgid: {e}")))?;
    }
    if let Some(uid) = want_uid {
        let error = privileges_error("uid", &uid.to_string());
        nix::unistd::setuid(uid).map_err(|e| error(format!("setuid: {e}")))?;
    }
    tracing::info!("running as uid {} gid {}", Uid::current(), Gid::current());
    Ok(())
}

/// Names this process as `ps`/`top` show it (`/proc/PID/comm`, 15 bytes),
/// with `procname-prefix` before `title`.
pub(crate) fn set_title(prefix: &str, title: &str) {
    let mut name: Vec<u8> = format!("{prefix}{title}").into_bytes();
    name.retain(|b| *b != 0);
    name.truncate(15);
    if let Ok(name) = std::ffi::CString::new(name)
        && let Err(err) = nix::sys::prctl::set_name(&name)
    {
        tracing::debug!("process title: {err}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backlog_is_capped_at_somaxconn() {
        assert_eq!(cap_backlog(1024, Some(4096)), 1024);
        assert_eq!(cap_backlog(8192, Some(4096)), 4096);
        assert_eq!(cap_backlog(8192, None), 8192);
    }

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert_eq!(resolve_user("0").unwrap().0, Uid::from_raw(0));
        assert_eq!(resolve_user("root").unwrap(), (Uid::from_raw(0), Some(Gid::from_raw(0))));
        assert_eq!(resolve_user("4242").unwrap().0, Uid::from_raw(4242));
        assert!(resolve_user("no-such-user-here").is_err());
        assert_eq!(resolve_group("0").unwrap(), Gid::from_raw(0));
        assert_eq!(resolve_owner("root:0").unwrap(), SocketOwner { uid: Some(0), gid: Some(0) });
        assert_eq!(resolve_owner("0").unwrap(), SocketOwner { uid: Some(0), gid: None });
        assert_eq!(resolve_owner(":root").unwrap(), SocketOwner { uid: None, gid: Some(0) });
        assert!(resolve_owner("no-such-user-here").is_err());
        assert!(resolve_group("no-such-group-here").is_err());
        // Already who we are: nothing to do, even without root.
        let me = Uid::current().to_string();
        drop_privileges(Some(&me), None).unwrap();
    }

    #[test]
    fn title_is_cut_to_what_the_kernel_keeps() {
        let before = nix::sys::prctl::get_name().unwrap();
        set_title("app-", "rwsgi worker 12");
        assert_eq!(nix::sys::prctl::get_name().unwrap().to_str().unwrap(), "app-rwsgi worke");
        nix::sys::prctl::set_name(&before).unwrap();
    }
}
