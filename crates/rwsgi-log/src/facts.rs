//! What is known of a request when its line is written: what the core
//! kept of its environ before the app took it ([`Captured`]), and how it
//! went.

use bytes::Bytes;
use rwsgi_proto::{CgiVar, EnvKey, Environ};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the request line needs of the environ, kept (cheap clones of the
/// values) before the environ goes to the app.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub addr: Bytes,
    pub forwarded_for: Option<Bytes>,
    pub user: Bytes,
    pub method: Bytes,
    pub uri: Bytes,
    pub proto: Bytes,
    pub host: Bytes,
    pub referer: Bytes,
    pub uagent: Bytes,
    /// The request body's declared length (`CONTENT_LENGTH`).
    pub content_length: u64,
    /// How many variables, and their size as a uwsgi packet would have it
    /// (a 2-byte length before each key and value).
    pub vars: usize,
    pub vars_bytes: usize,
    /// The `var.NAME` values the format asks for, in its order.
    pub wanted: Vec<Option<Bytes>>,
}

impl Captured {
    /// Keeps what the line needs; `wanted` names the `var.NAME` items.
    pub fn from_environ(environ: &Environ, wanted: &[String]) -> Captured {
        let mut captured = Captured { vars: environ.vars.len(), ..Captured::default() };
        for (key, value) in &environ.vars {
            captured.vars_bytes += 4 + key.as_bytes().len() + value.len();
            let slot = match key {
                EnvKey::Cgi(CgiVar::RemoteAddr) => &mut captured.addr,
                EnvKey::Cgi(CgiVar::RemoteUser) => &mut captured.user,
                EnvKey::Cgi(CgiVar::RequestMethod) => &mut captured.method,
                EnvKey::Cgi(CgiVar::RequestUri) => &mut captured.uri,
                EnvKey::Cgi(CgiVar::ServerProtocol) => &mut captured.proto,
                EnvKey::Cgi(CgiVar::ContentLength) => {
                    captured.content_length =
                        std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                    continue;
                }
                EnvKey::Cgi(_) => continue,
                EnvKey::Other(name) => match &name[..] {
                    b"HTTP_HOST" => &mut captured.host,
                    b"HTTP_REFERER" => &mut captured.referer,
                    b"HTTP_USER_AGENT" => &mut captured.uagent,
                    b"HTTP_X_FORWARDED_FOR" => {
                        captured.forwarded_for = Some(value.clone());
                        continue;
                    }
                    _ => continue,
                },
            };
            *slot = value.clone();
        }
        captured.wanted = wanted.iter().map(|name| environ.get(name).cloned()).collect();
        captured
    }
}

/// Everything the line may show.
#[derive(Debug, Clone)]
pub struct Facts {
    pub request: Captured,
    pub status: u16,
    /// Response body bytes.
    pub body_bytes: u64,
    /// Response head bytes, and its header count.
    pub head_bytes: u64,
    pub headers: usize,
    pub started: SystemTime,
    pub duration: Duration,
    pub pid: u32,
    /// The worker's number (0 without a master).
    pub worker: usize,
    /// The Python thread (uWSGI's core) that ran it, when known.
    pub core: usize,
    /// This process's requests so far, this one included.
    pub requests: u64,
    /// The body went out with `sendfile`.
    pub sendfile: bool,
    pub read_errors: u32,
    pub write_errors: u32,
    /// The connection's peer, when the format shows it
    /// ([`crate::AccessLog::shows_peer`]); the protocol's name.
    pub peer: String,
    pub protocol: &'static str,
}

impl Facts {
    pub(crate) fn started_micros(&self) -> u128 {
        self.started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
    }

    pub(crate) fn started_secs(&self) -> i64 {
        i64::try_from(self.started_micros() / 1_000_000).unwrap_or(i64::MAX)
    }
}
