//! CGI variables as a proxy sends them: uwsgi vars and FastCGI params.
//!
//! Both protocols carry a request as a flat list of (name, value) pairs in
//! one block of bytes; only their length encodings differ. Each codec
//! parses its own wire format and records here where every name and value
//! is ([`CgiVarsBuilder::push`]); this module owns what the pairs mean:
//! which must be unambiguous, how repeats are joined, what never reaches
//! the environ, what PEP 3333 requires that the proxy left out, and
//! `wsgi.url_scheme`. Values stay views of the block.
//!
//! uWSGI's "magic" vars (`UWSGI_SETENV`, `UWSGI_FILE`, `UWSGI_CHDIR`, …)
//! are plain strings here and are never acted on: an exposed socket must
//! not be a way to load code or change the server's environment.

use crate::{
    BodyLength, CgiVar, ConnInfo, EnvKey, Environ, Limits, ProtoError, Scheme, Scratch,
    percent_decode,
};
use bytes::{BufMut, Bytes};
use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::LazyLock;

/// Vars allowed beyond `max_headers`: the CGI variables a proxy adds to
/// the client's `HTTP_*` headers (15 in Debian's `uwsgi_params`, 18 in
/// `fastcgi_params`, plus room for a site's own lines).
pub const EXTRA_VARS: usize = 64;

/// Room for what nginx sends with its stock params files and a browser's
/// headers, so a connection's first request does not grow the list.
const TYPICAL_VARS: usize = 32;

/// Longest target shown by [`CgiVars::describe`].
const MAX_DESCRIBED: usize = 200;

const fn bad(rule: &'static str) -> ProtoError {
    ProtoError::BadRequest(rule)
}

/// A byte range of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: usize,
    end: usize,
}

/// Whether a var's key occurs more than once in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dup {
    /// The only occurrence.
    Unique,
    /// The first of several: its environ value joins them all.
    First,
    /// A later occurrence, folded into the first one's value.
    Repeat,
}

/// Where one var's key and value are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Var {
    key: Span,
    value: Span,
    /// The well-known CGI variable this key names, if any.
    cgi: Option<CgiVar>,
    /// A hash of the key, so finding repeats is cheap.
    hash: u32,
    dup: Dup,
}

/// How `SCRIPT_NAME` and `PATH_INFO` are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRule {
    /// uwsgi: both as sent; `SCRIPT_NAME` `''` and `PATH_INFO` from
    /// `REQUEST_URI` when not sent (nginx's `uwsgi_params` sends
    /// `PATH_INFO` and no `SCRIPT_NAME`).
    AsSent,
    /// FastCGI: `PATH_INFO` as sent when it is non-empty (with
    /// `fastcgi_split_path_info`). Otherwise the path is `DOCUMENT_URI`
    /// (else `REQUEST_URI`'s, percent-decoded) and: if `SCRIPT_NAME` is the
    /// whole path — plain `include fastcgi_params;`, where it is
    /// `$fastcgi_script_name` — `SCRIPT_NAME` is `''` and `PATH_INFO` the
    /// path; if it is a proper prefix ending at a `/` boundary,
    /// `PATH_INFO` is the rest; else `SCRIPT_NAME` is `''` and `PATH_INFO`
    /// the path.
    FastCgi,
}

/// Validates pairs as a codec finds them, before the block is complete.
#[derive(Debug)]
pub struct CgiVarsBuilder {
    /// Allocated at the first pair: a connection waiting for its request
    /// holds no list.
    vars: Vec<Var>,
    /// How many pairs to make room for at the first one: as many as the
    /// last request had (a proxy sends about as many each time).
    expected: usize,
    /// A 64-bit Bloom filter of the key hashes seen: most keys are new,
    /// and this spares them the search for an earlier occurrence.
    bloom: u64,
    has_repeats: bool,
    method: Option<Span>,
    content_length: Option<u64>,
    max_vars: usize,
    max_head: usize,
    max_body: Option<u64>,
}

impl CgiVarsBuilder {
    /// An empty list, bounded by `limits`.
    pub fn new(limits: &Limits) -> Self {
        CgiVarsBuilder {
            vars: Vec::new(),
            expected: TYPICAL_VARS,
            bloom: 0,
            has_repeats: false,
            method: None,
            content_length: None,
            max_vars: limits.max_headers.saturating_add(EXTRA_VARS),
            max_head: limits.max_head,
            max_body: limits.max_body,
        }
    }

    /// Pairs recorded so far.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no pair was recorded.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Whether one more pair would be over the limit (for codecs that
    /// refuse before reading it).
    pub fn is_full(&self) -> bool {
        self.vars.len() >= self.max_vars
    }

    /// Records the pair whose name and value are at `key` and `value` of
    /// `block` (the part of the block received so far), and applies the
    /// rules that hang on its name: `REQUEST_METHOD` and `CONTENT_LENGTH`
    /// decide how the request is dispatched and framed, so they must be
    /// sent once and be valid; a body over `limit-post` is refused here.
    pub fn push(
        &mut self,
        block: &[u8],
        key: Range<usize>,
        value: Range<usize>,
    ) -> Result<(), ProtoError> {
        if self.is_full() {
            return Err(ProtoError::HeadTooLarge { limit: self.max_head });
        }
        let (Some(key_bytes), Some(value_bytes)) =
            (block.get(key.clone()), block.get(value.clone()))
        else {
            return Err(bad("variable outside its block"));
        };
        if key_bytes.is_empty() {
            return Err(bad("zero-length variable name"));
        }
        let key = Span { start: key.start, end: key.end };
        let value = Span { start: value.start, end: value.end };
        let hash = hash(key_bytes);
        let bit = 1u64 << (hash & 63);
        let mut dup = Dup::Unique;
        let mut first_value = None;
        if self.bloom & bit != 0 {
            // The earliest var with this key is the first occurrence.
            let earlier = self
                .vars
                .iter_mut()
                .find(|v| v.hash == hash && block.get(v.key.start..v.key.end) == Some(key_bytes));
            if let Some(first) = earlier {
                first.dup = Dup::First;
                dup = Dup::Repeat;
                first_value = block.get(first.value.start..first.value.end);
                self.has_repeats = true;
            }
        }
        // A proxy config may set a variable its params file already sets
        // (`fastcgi_param SCRIPT_NAME …` after `include fastcgi_params;`):
        // harmless when the value is the same.
        let differs = first_value.is_some_and(|first| first != value_bytes);
        self.bloom |= bit;
        let cgi = CgiVar::from_name(key_bytes);
        if self.vars.capacity() == 0 {
            self.vars.reserve_exact(self.expected);
        }
        match cgi {
            Some(CgiVar::RequestMethod) => {
                if differs {
                    return Err(bad("REQUEST_METHOD sent twice with different values"));
                }
                if value_bytes.is_empty() {
                    return Err(bad("empty REQUEST_METHOD"));
                }
                self.method = Some(value);
            }
            Some(CgiVar::ContentLength) => {
                if differs {
                    return Err(bad("CONTENT_LENGTH sent twice with different values"));
                }
                let length = parse_content_length(value_bytes)?;
                if let (Some(n), Some(limit)) = (length, self.max_body)
                    && n > limit
                {
                    return Err(ProtoError::BodyTooLarge { limit });
                }
                self.content_length = length;
            }
            _ => {}
        }
        self.vars.push(Var { key, value, cgi, hash, dup });
        Ok(())
    }

    /// The complete list over `block`, once the rules that need all of it
    /// hold. The builder is left empty, ready for the next request.
    pub fn finish(&mut self, block: Bytes) -> Result<CgiVars, ProtoError> {
        // The next request from the same proxy sends about as many vars:
        // one allocation of the right size, when it comes.
        self.expected = self.vars.len().max(1);
        let vars = std::mem::take(&mut self.vars);
        let has_repeats = std::mem::take(&mut self.has_repeats);
        let method = self.method.take();
        let content_length = self.content_length.take();
        self.bloom = 0;
        if vars.is_empty() {
            return Err(bad("request without CGI variables"));
        }
        let Some(method) = method else {
            return Err(bad("request without REQUEST_METHOD"));
        };
        if vars.iter().any(|v| v.key.end > block.len() || v.value.end > block.len()) {
            return Err(bad("variable outside its block"));
        }
        let body = match content_length {
            None | Some(0) => BodyLength::Empty,
            Some(n) => BodyLength::Known(n),
        };
        Ok(CgiVars { block, vars, has_repeats, method, body, content_length })
    }
}

/// A complete, validated list of CGI variables: the block they came in
/// (a zero-copy slice of the connection buffer) and where each one is.
/// Names are case-sensitive, as in CGI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiVars {
    block: Bytes,
    vars: Vec<Var>,
    /// Some key occurs more than once (environ values must be joined).
    has_repeats: bool,
    method: Span,
    body: BodyLength,
    content_length: Option<u64>,
}

/// Which of the variables with a fallback the proxy sent.
#[derive(Debug, Default)]
struct Sent {
    query_string: bool,
    server_protocol: bool,
    server_name: bool,
    server_port: bool,
    remote_addr: bool,
    remote_port: bool,
}

impl CgiVars {
    /// Copies the block out of the buffer it shares (see
    /// [`crate::RequestHead::detach`]).
    pub fn detach(&mut self) {
        self.block = Bytes::copy_from_slice(&self.block);
    }

    /// The bytes of `span`, borrowed (never panics).
    fn get(&self, span: Span) -> &[u8] {
        self.block.get(span.start..span.end).unwrap_or_default()
    }

    /// The bytes of `span`, as a view of the block.
    fn slice(&self, span: Span) -> Bytes {
        if span.start <= span.end && span.end <= self.block.len() {
            self.block.slice(span.start..span.end)
        } else {
            Bytes::new()
        }
    }

    /// The value of the last pair named `name`, if any (uWSGI's reading:
    /// the last one wins). The environ joins repeats instead.
    pub fn var(&self, name: &[u8]) -> Option<&[u8]> {
        let hash = hash(name);
        self.vars
            .iter()
            .rev()
            .find(|v| v.hash == hash && self.get(v.key) == name)
            .map(|v| self.get(v.value))
    }

    /// Every pair in the order sent, repeats included.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.vars.iter().map(|v| (self.get(v.key), self.get(v.value)))
    }

    /// How many pairs were sent.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no pair was sent (never, for a finished list).
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// `REQUEST_METHOD` (sent exactly once, non-empty).
    pub fn method(&self) -> &[u8] {
        self.get(self.method)
    }

    /// The body as `CONTENT_LENGTH` announces it: none when absent, empty
    /// or 0.
    pub fn body_length(&self) -> BodyLength {
        self.body
    }

    /// `CONTENT_LENGTH`, parsed; `None` when absent or empty.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// `wsgi.url_scheme`, from the vars uWSGI reads for it: `UWSGI_SCHEME`
    /// if sent (`https`, in any case, means https); else https when
    /// `HTTPS` is `on` (any case) or starts with `1`, or when
    /// `REQUEST_SCHEME` is `https`; else http. Only these are honoured
    /// among the proxy-specific vars.
    pub fn scheme(&self) -> Scheme {
        let https = |yes: bool| if yes { Scheme::Https } else { Scheme::Http };
        if let Some(scheme) = self.var(b"UWSGI_SCHEME") {
            return https(scheme.eq_ignore_ascii_case(b"https"));
        }
        if self.var(b"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v.starts_with(b"1"))
        {
            return Scheme::Https;
        }
        https(self.var(b"REQUEST_SCHEME").is_some_and(|v| v.eq_ignore_ascii_case(b"https")))
    }

    /// `METHOD REQUEST_URI` (or `PATH_INFO` when there is no
    /// `REQUEST_URI`), the target cut at 200 bytes, for log lines.
    pub fn describe(&self) -> String {
        let target =
            self.var(b"REQUEST_URI").or_else(|| self.var(b"PATH_INFO")).unwrap_or_default();
        let shown = target.get(..MAX_DESCRIBED).unwrap_or(target);
        let mut out = String::with_capacity(shown.len() + 16);
        out.push_str(&String::from_utf8_lossy(self.method()));
        out.push(' ');
        out.push_str(&String::from_utf8_lossy(shown));
        if shown.len() < target.len() {
            out.push('…');
        }
        out
    }

    /// Writes the environ: every pair as sent, with these exceptions:
    ///
    /// - `HTTP_CONTENT_TYPE` and `HTTP_CONTENT_LENGTH` are dropped: CGI
    ///   carries those headers as `CONTENT_*`, and `wsgiref.validate`
    ///   rejects the `HTTP_` forms;
    /// - `CONTENT_TYPE`/`CONTENT_LENGTH` with an empty value are dropped
    ///   (nginx's params files send them empty for a GET);
    /// - keys starting with `wsgi.` or `uwsgi.` (in any case) are dropped:
    ///   those namespaces belong to the server;
    /// - a repeated header (`HTTP_*`: older nginx repeated client headers)
    ///   becomes one entry, the values joined in order with `, ` (`; ` for
    ///   `HTTP_COOKIE`), as nginx ≥ 1.23 joins them itself; any other
    ///   repeated variable takes its last value (a site's `fastcgi_param`
    ///   or `uwsgi_param` overriding its params file, as PHP-FPM reads it);
    /// - `SERVER_NAME`, `SERVER_PORT` and `SERVER_PROTOCOL` sent empty
    ///   count as not sent;
    /// - `SCRIPT_NAME` and `PATH_INFO` follow `rule`.
    ///
    /// Then the variables PEP 3333 requires and the proxy did not send:
    /// `QUERY_STRING` `''`; `SERVER_PROTOCOL` `HTTP/1.0` (uWSGI's
    /// default); `SERVER_NAME`/`SERVER_PORT` from the listening socket;
    /// `REMOTE_ADDR`/`REMOTE_PORT` from the peer (TCP only).
    pub fn write_environ(&self, conn: &ConnInfo, env: &mut Environ, rule: PathRule) {
        env.vars.reserve(self.vars.len() + 8);
        let mut scratch = Scratch::new(self.scratch_hint());
        let mut sent = Sent::default();
        let mut script_name = None;
        let mut path_info = None;
        for (i, var) in self.vars.iter().enumerate() {
            if var.dup == Dup::Repeat {
                continue;
            }
            let key = self.get(var.key);
            if var.cgi.is_none() && is_dropped(key) {
                continue;
            }
            let value = self.joined_value(i, var, &mut scratch);
            let flag = match var.cgi {
                Some(CgiVar::ContentType | CgiVar::ContentLength) if value.is_empty() => continue,
                Some(CgiVar::ServerName | CgiVar::ServerPort | CgiVar::ServerProtocol)
                    if value.is_empty() =>
                {
                    continue;
                }
                Some(CgiVar::ScriptName) => {
                    script_name = Some(value);
                    continue;
                }
                Some(CgiVar::PathInfo) => {
                    path_info = Some(value);
                    continue;
                }
                Some(CgiVar::QueryString) => Some(&mut sent.query_string),
                Some(CgiVar::ServerProtocol) => Some(&mut sent.server_protocol),
                Some(CgiVar::ServerName) => Some(&mut sent.server_name),
                Some(CgiVar::ServerPort) => Some(&mut sent.server_port),
                Some(CgiVar::RemoteAddr) => Some(&mut sent.remote_addr),
                Some(CgiVar::RemotePort) => Some(&mut sent.remote_port),
                _ => None,
            };
            if let Some(flag) = flag {
                *flag = true;
            }
            let key = match var.cgi {
                Some(cgi) => EnvKey::Cgi(cgi),
                None => EnvKey::Other(self.slice(var.key)),
            };
            env.vars.push((key, value));
        }
        let (script_name, path_info) = self.paths(rule, script_name, path_info, &mut scratch);
        env.set(CgiVar::ScriptName, script_name);
        env.set(CgiVar::PathInfo, path_info);
        if !sent.query_string {
            env.set(CgiVar::QueryString, Bytes::new());
        }
        if !sent.server_protocol {
            env.set(CgiVar::ServerProtocol, Bytes::from_static(b"HTTP/1.0"));
        }
        match (sent.server_name, sent.server_port) {
            (true, true) => {}
            (false, false) => env.set_server_from(&conn.local, scratch.buf()),
            (name, port) => {
                let mut both = Environ::default();
                both.set_server_from(&conn.local, scratch.buf());
                env.vars.extend(both.vars.into_iter().filter(|(key, _)| {
                    !(name && *key == EnvKey::Cgi(CgiVar::ServerName)
                        || port && *key == EnvKey::Cgi(CgiVar::ServerPort))
                }));
            }
        }
        match (sent.remote_addr, sent.remote_port) {
            (true, true) => {}
            (false, false) => env.set_remote_from(conn),
            (addr, port) => {
                let mut both = Environ::default();
                both.set_remote_from(conn);
                env.vars.extend(both.vars.into_iter().filter(|(key, _)| {
                    !(addr && *key == EnvKey::Cgi(CgiVar::RemoteAddr)
                        || port && *key == EnvKey::Cgi(CgiVar::RemotePort))
                }));
            }
        }
        env.scheme = self.scheme();
    }

    /// `SCRIPT_NAME` and `PATH_INFO` under `rule` (see [`PathRule`]).
    fn paths(
        &self,
        rule: PathRule,
        script_name: Option<Bytes>,
        path_info: Option<Bytes>,
        scratch: &mut Scratch,
    ) -> (Bytes, Bytes) {
        match (rule, path_info) {
            (PathRule::AsSent, Some(path_info)) => (script_name.unwrap_or_default(), path_info),
            (PathRule::AsSent, None) => {
                (script_name.unwrap_or_default(), self.path_from_uri(scratch))
            }
            (PathRule::FastCgi, Some(path_info)) if !path_info.is_empty() => {
                (script_name.unwrap_or_default(), path_info)
            }
            (PathRule::FastCgi, _) => {
                let path = match self.vars.iter().rev().find(|v| v.cgi == Some(CgiVar::DocumentUri))
                {
                    Some(uri) if uri.value.start < uri.value.end => self.slice(uri.value),
                    _ => self.path_from_uri(scratch),
                };
                let script = script_name.unwrap_or_default();
                match path.strip_prefix(&script[..]) {
                    Some(rest) if !script.is_empty() && rest.first() == Some(&b'/') => {
                        let rest = path.slice(script.len()..);
                        (script, rest)
                    }
                    _ => (Bytes::new(), path),
                }
            }
        }
    }

    /// A size for the scratch buffer that fits everything it may hold, so
    /// it is allocated at most once.
    fn scratch_hint(&self) -> usize {
        // Addresses: `[ipv6]` and a port, twice.
        let mut hint = 112;
        if self.has_repeats {
            // Every value plus a separator each, at worst.
            hint += self.block.len() + 2 * self.vars.len();
        }
        hint + self.var(b"REQUEST_URI").map_or(0, <[u8]>::len)
    }

    /// `PATH_INFO` derived from the last `REQUEST_URI`: its path,
    /// percent-decoded (a view of the block when there is nothing to
    /// decode), or empty.
    fn path_from_uri(&self, scratch: &mut Scratch) -> Bytes {
        let Some(uri) = self.vars.iter().rev().find(|v| v.cgi == Some(CgiVar::RequestUri)) else {
            return Bytes::new();
        };
        let range = uri_path(self.get(uri.value));
        let path = Span { start: uri.value.start + range.start, end: uri.value.start + range.end };
        let raw = self.get(path);
        if raw.contains(&b'%') {
            percent_decode(raw, scratch.buf());
            scratch.take()
        } else {
            self.slice(path)
        }
    }

    /// The value of var `i`: for a repeated header, joined with its later
    /// repeats; for another repeated variable, its last value.
    fn joined_value(&self, i: usize, var: &Var, scratch: &mut Scratch) -> Bytes {
        if var.dup != Dup::First {
            return self.slice(var.value);
        }
        let key = self.get(var.key);
        let later = self.vars.iter().skip(i + 1);
        if !key.starts_with(b"HTTP_") {
            let last = later.filter(|r| r.hash == var.hash && self.get(r.key) == key).last();
            return self.slice(last.map_or(var.value, |r| r.value));
        }
        let sep: &[u8] = if key == b"HTTP_COOKIE" { b"; " } else { b", " };
        let buf = scratch.buf();
        buf.put_slice(self.get(var.value));
        for repeat in later {
            if repeat.dup == Dup::Repeat && repeat.hash == var.hash && self.get(repeat.key) == key {
                buf.put_slice(sep);
                buf.put_slice(self.get(repeat.value));
            }
        }
        scratch.take()
    }
}

/// Keys that never reach the environ: the `HTTP_` forms of the content
/// headers, and the server's own namespaces (the bridge sets `wsgi.*`
/// after the vars anyway; dropping them keeps a var from even trying).
fn is_dropped(key: &[u8]) -> bool {
    let starts_with =
        |prefix: &[u8]| key.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix));
    key == b"HTTP_CONTENT_TYPE"
        || key == b"HTTP_CONTENT_LENGTH"
        || starts_with(b"wsgi.")
        || starts_with(b"uwsgi.")
}

/// Where the path part of a request target is: without the query (and a
/// stray fragment), and without `scheme://authority` for an absolute-form
/// target.
fn uri_path(uri: &[u8]) -> Range<usize> {
    let end = uri.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(uri.len());
    let target = uri.get(..end).unwrap_or(uri);
    if target.first() == Some(&b'/') {
        return 0..end;
    }
    match target.windows(3).position(|w| w == b"://") {
        Some(sep) => {
            let authority = sep + 3;
            let rest = target.get(authority..).unwrap_or_default();
            let path = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            authority + path..end
        }
        None => 0..end,
    }
}

/// foldhash with a seed chosen at start-up: a few instructions for a short
/// name (FNV took one multiply per byte), and a client cannot choose names
/// that collide, to make finding repeats slow.
fn hash(key: &[u8]) -> u32 {
    static STATE: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);
    // The low half: the Bloom filter takes its low 6 bits.
    STATE.hash_one(key) as u32
}

/// `CONTENT_LENGTH`: empty (nginx sends it empty for a request without a
/// body) or 1 to 20 ASCII digits that fit a u64. uWSGI takes the leading
/// digits and ignores the rest (`5xyz` is 5, `-1` is 0); a framing value
/// read two ways is how requests get smuggled, so anything else is refused.
pub fn parse_content_length(value: &[u8]) -> Result<Option<u64>, ProtoError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 20 {
        return Err(bad("CONTENT_LENGTH longer than 20 digits"));
    }
    value
        .iter()
        .try_fold(0u64, |n, &b| {
            if !b.is_ascii_digit() {
                return Err(bad("CONTENT_LENGTH is not a decimal number"));
            }
            n.checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(bad("CONTENT_LENGTH overflows"))
        })
        .map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::SocketAddress;

    fn limits() -> Limits {
        Limits { max_head: 4096, max_headers: 2, max_body: Some(100) }
    }

    /// A block of `name=value` pairs, with the spans of each.
    fn vars(pairs: &[(&[u8], &[u8])], limits: &Limits) -> Result<CgiVars, ProtoError> {
        let mut block = Vec::new();
        let mut builder = CgiVarsBuilder::new(limits);
        for (name, value) in pairs {
            let key = block.len()..block.len() + name.len();
            block.extend_from_slice(name);
            let val = block.len()..block.len() + value.len();
            block.extend_from_slice(value);
            builder.push(&block, key, val)?;
        }
        builder.finish(Bytes::from(block))
    }

    fn environ(pairs: &[(&[u8], &[u8])], rule: PathRule) -> Environ {
        let conn = ConnInfo::new(
            SocketAddress::Tcp("10.0.0.9:4321".parse().unwrap()),
            SocketAddress::Tcp("127.0.0.1:9000".parse().unwrap()),
        );
        let mut env = Environ::default();
        vars(pairs, &Limits { max_headers: 300, ..limits() })
            .unwrap()
            .write_environ(&conn, &mut env, rule);
        env
    }

    fn get<'a>(env: &'a Environ, name: &str) -> Option<&'a [u8]> {
        env.get(name).map(|v| &v[..])
    }

    #[test]
    fn content_length_grammar() {
        assert_eq!(parse_content_length(b"").ok(), Some(None));
        assert_eq!(parse_content_length(b"0").ok(), Some(Some(0)));
        assert_eq!(parse_content_length(b"007").ok(), Some(Some(7)));
        assert_eq!(parse_content_length(b"18446744073709551615").ok(), Some(Some(u64::MAX)));
        for bad in [
            &b"+5"[..],
            b"-1",
            b"5xyz",
            b" 5",
            b"5 ",
            b"0x10",
            b"5, 5",
            b"18446744073709551616",
            b"000000000000000000001",
            b"\xd9\xa5",
        ] {
            assert!(matches!(parse_content_length(bad), Err(ProtoError::BadRequest(_))), "{bad:?}");
        }
    }

    #[test]
    fn dispatch_vars_must_be_single_and_valid() {
        let l = limits();
        assert!(vars(&[(b"A", b"1")], &l).is_err(), "no method");
        assert!(vars(&[(b"REQUEST_METHOD", b"")], &l).is_err());
        assert!(vars(&[(b"REQUEST_METHOD", b"GET"), (b"REQUEST_METHOD", b"PUT")], &l).is_err());
        assert!(vars(&[(b"REQUEST_METHOD", b"GET"), (b"REQUEST_METHOD", b"GET")], &l).is_ok());
        let lengths = |a: &'static [u8], b: &'static [u8]| {
            vars(&[(b"REQUEST_METHOD", b"GET"), (b"CONTENT_LENGTH", a), (b"CONTENT_LENGTH", b)], &l)
        };
        assert!(lengths(b"1", b"2").is_err());
        assert!(lengths(b"1", b"1").is_ok_and(|v| v.body_length() == BodyLength::Known(1)));
        assert!(matches!(
            vars(&[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"101")], &l),
            Err(ProtoError::BodyTooLarge { limit: 100 })
        ));
        let ok = vars(&[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"100")], &l).unwrap();
        assert_eq!(ok.body_length(), BodyLength::Known(100));
        let empty = vars(&[(b"REQUEST_METHOD", b"GET"), (b"CONTENT_LENGTH", b"")], &l).unwrap();
        assert_eq!(empty.body_length(), BodyLength::Empty);
        assert!(vars(&[(b"", b"x")], &l).is_err(), "zero-length name");
    }

    #[test]
    fn count_cap_is_max_headers_plus_extra() {
        let method: (&[u8], &[u8]) = (b"REQUEST_METHOD", b"GET");
        let ok: Vec<(&[u8], &[u8])> =
            std::iter::once(method).chain(std::iter::repeat_n((&b"K"[..], &b""[..]), 65)).collect();
        assert!(vars(&ok, &limits()).is_ok());
        let too_many: Vec<(&[u8], &[u8])> =
            std::iter::once(method).chain(std::iter::repeat_n((&b"K"[..], &b""[..]), 66)).collect();
        assert!(matches!(vars(&too_many, &limits()), Err(ProtoError::HeadTooLarge { .. })));
    }

    #[test]
    fn repeats_are_joined_even_past_a_full_bloom_filter() {
        let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("HTTP_K{i}").into_bytes()).collect();
        let mut pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b"v"[..])).collect();
        pairs.push((&keys[150], b"again"));
        pairs.push((b"REQUEST_METHOD", b"GET"));
        pairs.push((b"HTTP_COOKIE", b"a=1"));
        pairs.push((b"HTTP_COOKIE", b"b=2"));
        let env = environ(&pairs, PathRule::AsSent);
        assert_eq!(get(&env, "HTTP_K150"), Some(&b"v, again"[..]));
        assert_eq!(get(&env, "HTTP_K149"), Some(&b"v"[..]));
        assert_eq!(get(&env, "HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
        assert_eq!(env.vars.iter().filter(|(k, _)| k.as_bytes() == b"HTTP_K150").count(), 1);
        // Not a header: the last value wins.
        let env = environ(
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"SCRIPT_NAME", b"/a"),
                (b"DOCUMENT_ROOT", b"/x"),
                (b"SCRIPT_NAME", b"/b"),
                (b"DOCUMENT_ROOT", b"/y"),
                (b"X", b"1"),
                (b"X", b"2"),
            ],
            PathRule::AsSent,
        );
        assert_eq!(get(&env, "SCRIPT_NAME"), Some(&b"/b"[..]));
        assert_eq!(get(&env, "DOCUMENT_ROOT"), Some(&b"/y"[..]));
        assert_eq!(get(&env, "X"), Some(&b"2"[..]));
        assert_eq!(env.vars.iter().filter(|(k, _)| k.as_bytes() == b"SCRIPT_NAME").count(), 1);
    }

    #[test]
    fn what_never_reaches_the_environ_and_what_is_filled_in() {
        let env = environ(
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"CONTENT_TYPE", b""),
                (b"CONTENT_LENGTH", b""),
                (b"HTTP_CONTENT_TYPE", b"x"),
                (b"HTTP_CONTENT_LENGTH", b"1"),
                (b"wsgi.input", b"x"),
                (b"UWSGI.core", b"1"),
                (b"SERVER_NAME", b""),
                (b"UWSGI_SETENV", b"A=B"),
                (b"REQUEST_URI", b"/a%20b?x=1"),
            ],
            PathRule::AsSent,
        );
        for gone in [
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "HTTP_CONTENT_TYPE",
            "HTTP_CONTENT_LENGTH",
            "wsgi.input",
            "UWSGI.core",
        ] {
            assert_eq!(get(&env, gone), None, "{gone}");
        }
        assert_eq!(get(&env, "UWSGI_SETENV"), Some(&b"A=B"[..]), "inert, passed as a string");
        assert_eq!(get(&env, "SCRIPT_NAME"), Some(&b""[..]));
        assert_eq!(get(&env, "PATH_INFO"), Some(&b"/a b"[..]));
        assert_eq!(get(&env, "QUERY_STRING"), Some(&b""[..]));
        assert_eq!(get(&env, "SERVER_PROTOCOL"), Some(&b"HTTP/1.0"[..]));
        assert_eq!(get(&env, "SERVER_NAME"), Some(&b"127.0.0.1"[..]));
        assert_eq!(get(&env, "SERVER_PORT"), Some(&b"9000"[..]));
        assert_eq!(get(&env, "REMOTE_ADDR"), Some(&b"10.0.0.9"[..]));
        assert_eq!(get(&env, "REMOTE_PORT"), Some(&b"4321"[..]));
    }

    #[test]
    fn scheme_rules() {
        let scheme = |pairs: &[(&[u8], &[u8])]| {
            let mut all = vec![(&b"REQUEST_METHOD"[..], &b"GET"[..])];
            all.extend_from_slice(pairs);
            vars(&all, &Limits { max_headers: 10, ..limits() }).unwrap().scheme()
        };
        assert_eq!(scheme(&[]), Scheme::Http);
        assert_eq!(scheme(&[(b"HTTPS", b"on")]), Scheme::Https);
        assert_eq!(scheme(&[(b"HTTPS", b"ON")]), Scheme::Https);
        assert_eq!(scheme(&[(b"HTTPS", b"1")]), Scheme::Https);
        assert_eq!(scheme(&[(b"HTTPS", b"off")]), Scheme::Http);
        assert_eq!(scheme(&[(b"REQUEST_SCHEME", b"https")]), Scheme::Https);
        assert_eq!(scheme(&[(b"UWSGI_SCHEME", b"http"), (b"HTTPS", b"on")]), Scheme::Http);
        assert_eq!(scheme(&[(b"UWSGI_SCHEME", b"HTTPS")]), Scheme::Https);
    }

    #[test]
    fn fastcgi_path_rule() {
        let paths = |pairs: &[(&[u8], &[u8])]| {
            let mut all = vec![(&b"REQUEST_METHOD"[..], &b"GET"[..])];
            all.extend_from_slice(pairs);
            let env = environ(&all, PathRule::FastCgi);
            (
                String::from_utf8_lossy(get(&env, "SCRIPT_NAME").unwrap_or(b"<none>")).into_owned(),
                String::from_utf8_lossy(get(&env, "PATH_INFO").unwrap_or(b"<none>")).into_owned(),
            )
        };
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        // Plain `include fastcgi_params;`: SCRIPT_NAME is the whole path.
        assert_eq!(
            paths(&[
                (b"SCRIPT_NAME", b"/app/x"),
                (b"DOCUMENT_URI", b"/app/x"),
                (b"REQUEST_URI", b"/app/x?q")
            ]),
            s("", "/app/x")
        );
        // fastcgi_split_path_info with PATH_INFO passed.
        assert_eq!(paths(&[(b"SCRIPT_NAME", b"/app"), (b"PATH_INFO", b"/x")]), s("/app", "/x"));
        // Split without PATH_INFO: the rest of the path.
        assert_eq!(
            paths(&[(b"SCRIPT_NAME", b"/app"), (b"DOCUMENT_URI", b"/app/x/y")]),
            s("/app", "/x/y")
        );
        // A prefix that is not a path segment does not count.
        assert_eq!(
            paths(&[(b"SCRIPT_NAME", b"/ap"), (b"DOCUMENT_URI", b"/app/x")]),
            s("", "/app/x")
        );
        // No DOCUMENT_URI: REQUEST_URI's path, decoded.
        assert_eq!(paths(&[(b"REQUEST_URI", b"/a%2Fb?x")]), s("", "/a/b"));
        // Empty PATH_INFO falls back too.
        assert_eq!(
            paths(&[(b"SCRIPT_NAME", b"/x"), (b"PATH_INFO", b""), (b"DOCUMENT_URI", b"/x")]),
            s("", "/x")
        );
        assert_eq!(paths(&[]), s("", ""));
    }

    #[test]
    fn path_of_a_request_uri() {
        let path = |uri: &'static [u8]| uri.get(uri_path(uri)).unwrap_or(b"<out of range>");
        assert_eq!(path(b"/a/b?x=1"), b"/a/b");
        assert_eq!(path(b"/a%20b#frag"), b"/a%20b");
        assert_eq!(path(b"?q"), b"");
        assert_eq!(path(b"http://example.com/p?q"), b"/p");
        assert_eq!(path(b"https://example.com"), b"");
        assert_eq!(path(b"/redirect?to=http://x/y"), b"/redirect");
    }

    #[test]
    fn describe_names_method_and_target() {
        let v = vars(&[(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/x?y")], &limits()).unwrap();
        assert_eq!(v.describe(), "GET /x?y");
        assert_eq!(v.var(b"REQUEST_URI"), Some(&b"/x?y"[..]));
        assert_eq!(v.iter().count(), 2);
    }
}
