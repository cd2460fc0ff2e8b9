//! Log lines as syslog messages, the way uWSGI's two syslog loggers send
//! them: `logger = syslog[:IDENT[,FACILITY]]` (the C library's
//! `syslog()` to the local socket, `/dev/log`) and `logger =
//! rsyslog:ADDR[,PREFIX[,PRIORITY]]` (its own datagrams, to a UDP
//! address or a unix datagram socket). Both are RFC 3164 messages:
//! `<PRI>Mmm dd hh:mm:ss TAG: text`, with the timestamp in local time.
//!
//! This module only parses the specs and makes the messages; the master
//! runs the process that sends them.

use std::path::PathBuf;

/// Where the local syslog daemon listens (glibc's `_PATH_LOG`).
pub const LOCAL_SOCKET: &str = "/dev/log";

/// `rsyslog`'s default port, as uWSGI's.
const RSYSLOG_PORT: u16 = 514;

/// uWSGI's `rsyslog` cuts message text to its packet size (1024) less 30;
/// `syslog()` sends any length, which we cap where a datagram to the
/// local socket still fits comfortably.
const RSYSLOG_TEXT: usize = 994;
const LOCAL_TEXT: usize = 16 * 1024;

/// Severity `info`, what uWSGI's `syslog` logger gives every line.
const INFO: u8 = 6;

/// The facilities `syslog:IDENT,FACILITY` accepts (uWSGI's table, as
/// Linux numbers them).
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("security", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
];

/// Where a syslog logger sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddr {
    /// A unix datagram socket (`/dev/log`, or an `rsyslog:/path`).
    Unix(PathBuf),
    /// `host:port` over UDP.
    Udp(String),
}

/// A syslog logger, ready to make messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    pub addr: SyslogAddr,
    /// `<PRI>`: facility × 8 + severity.
    pub priority: u8,
    /// What precedes `: ` (the program name, or `rsyslog`'s prefix).
    pub tag: String,
    /// Longer text is cut.
    max_text: usize,
}

impl Syslog {
    /// The logger a `logger`/`req-logger` value names, if it is a syslog
    /// one: `syslog[:IDENT[,FACILITY]]` or `rsyslog:ADDR[,PREFIX[,PRI]]`.
    /// `hostname` starts `rsyslog`'s default prefix, as in uWSGI.
    pub fn from_spec(spec: &str, hostname: &str) -> Option<Result<Syslog, String>> {
        let (name, arg) = match spec.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (spec, None),
        };
        match name {
            "syslog" => Some(Syslog::local(arg.filter(|a| !a.is_empty()))),
            "rsyslog" => Some(match arg.filter(|a| !a.is_empty()) {
                Some(arg) => Syslog::remote(arg, hostname),
                None => {
                    Err("rsyslog needs an address: rsyslog:HOST[:PORT][,PREFIX[,PRIORITY]]"
                        .to_string())
                }
            }),
            _ => None,
        }
    }

    /// `syslog[:IDENT[,FACILITY]]`: the ident defaults to `uwsgi` (so the
    /// rules that file uWSGI's lines keep filing them), the facility to
    /// `daemon`.
    fn local(arg: Option<&str>) -> Result<Syslog, String> {
        let (ident, facility) = match arg.map(|a| a.split_once(',')) {
            None => ("uwsgi", "daemon"),
            Some(None) => (arg.unwrap_or("uwsgi"), "daemon"),
            Some(Some((ident, facility))) => (ident, facility),
        };
        let facility = FACILITIES
            .iter()
            .find(|(name, _)| *name == facility)
            .map(|(_, number)| *number)
            .ok_or_else(|| {
                let known: Vec<&str> = FACILITIES.iter().map(|(name, _)| *name).collect();
                format!("no syslog facility {facility:?}: one of {}", known.join(", "))
            })?;
        Ok(Syslog {
            addr: SyslogAddr::Unix(LOCAL_SOCKET.into()),
            priority: facility * 8 + INFO,
            tag: ident.to_string(),
            max_text: LOCAL_TEXT,
        })
    }

    /// `rsyslog:ADDR[,PREFIX[,PRIORITY]]`: ADDR is a unix socket's path or
    /// `HOST[:PORT]` (UDP, port 514); the prefix defaults to `HOSTNAME
    /// uwsgi`, the priority to 29 (`daemon.notice`), as in uWSGI.
    fn remote(arg: &str, hostname: &str) -> Result<Syslog, String> {
        let mut parts = arg.splitn(3, ',');
        let addr = parts.next().unwrap_or_default();
        let tag = parts.next().map_or_else(|| format!("{hostname} uwsgi"), str::to_string);
        let priority = match parts.next() {
            None => 29,
            Some(pri) => pri
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p < 192)
                .ok_or_else(|| format!("rsyslog priority {pri:?} is not a number below 192"))?,
        };
        let addr = if addr.starts_with('/') {
            SyslogAddr::Unix(addr.into())
        } else if addr.is_empty() {
            return Err("rsyslog needs an address: rsyslog:HOST[:PORT][,PREFIX[,PRIORITY]]".into());
        } else if addr.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            SyslogAddr::Udp(addr.to_string())
        } else {
            SyslogAddr::Udp(format!("{addr}:{RSYSLOG_PORT}"))
        };
        Ok(Syslog { addr, priority, tag, max_text: RSYSLOG_TEXT })
    }

    /// The datagram for one line (its newline dropped, cut to fit).
    pub fn message(&self, unix_secs: i64, line: &[u8]) -> Vec<u8> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = &line[..line.len().min(self.max_text)];
        let stamp = crate::clock::strftime("%b %e %H:%M:%S", unix_secs);
        let mut out = format!("<{}>{stamp} {}: ", self.priority, self.tag).into_bytes();
        out.extend_from_slice(line);
        out
    }
}

/// This machine's name, which starts `rsyslog`'s default prefix.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Syslog {
        Syslog::from_spec(text, "web1").expect("a syslog spec").expect("valid")
    }

    #[test]
    fn syslog_defaults_as_uwsgi() {
        let syslog = spec("syslog");
        assert_eq!(syslog.addr, SyslogAddr::Unix("/dev/log".into()));
        assert_eq!((syslog.priority, syslog.tag.as_str()), (3 * 8 + 6, "uwsgi"));
        let syslog = spec("syslog:myapp,local3");
        assert_eq!((syslog.priority, syslog.tag.as_str()), (19 * 8 + 6, "myapp"));
        assert_eq!(spec("syslog:myapp").priority, 30);
        let err = Syslog::from_spec("syslog:x,nowhere", "h").and_then(Result::err);
        assert!(err.is_some_and(|e| e.contains("local0")));
    }

    #[test]
    fn rsyslog_addresses_prefix_and_priority() {
        let r = spec("rsyslog:10.0.0.5");
        assert_eq!(r.addr, SyslogAddr::Udp("10.0.0.5:514".into()));
        assert_eq!((r.priority, r.tag.as_str()), (29, "web1 uwsgi"));
        let r = spec("rsyslog:logs.example:5140,app,134");
        assert_eq!(r.addr, SyslogAddr::Udp("logs.example:5140".into()));
        assert_eq!((r.priority, r.tag.as_str()), (134, "app"));
        assert_eq!(spec("rsyslog:/run/log.sock,x").addr, SyslogAddr::Unix("/run/log.sock".into()));
        assert_eq!(spec("rsyslog:[::1]:5140").addr, SyslogAddr::Udp("[::1]:5140".into()));
        for bad in ["rsyslog", "rsyslog:", "rsyslog:h,p,999", "rsyslog:h,p,x"] {
            assert!(Syslog::from_spec(bad, "h").is_some_and(|r| r.is_err()), "{bad}");
        }
        assert!(Syslog::from_spec("file:/x", "h").is_none());
        assert!(Syslog::from_spec("stdio", "h").is_none());
        assert!(!hostname().is_empty());
    }

    #[test]
    fn messages_are_rfc3164_lines() {
        let message = spec("syslog:app,local0").message(0, b"hello world\n");
        let text = String::from_utf8(message).expect("utf-8");
        let (pri, rest) = text.split_once('>').expect("<PRI>");
        assert_eq!(pri, "<134");
        // `Mmm dd hh:mm:ss`, day padded with a space: 15 characters.
        assert_eq!(rest.as_bytes()[15], b' ', "{rest}");
        assert!(rest[16..] == *"app: hello world", "{rest}");
        let long = spec("rsyslog:h").message(0, &[b'x'; 5000]);
        assert_eq!(long.iter().filter(|&&b| b == b'x').count(), 994);
    }
}
