//! The CGI view of a request head (PEP 3333 "environ Variables", and the
//! "From raw HTTP" derivations uWSGI and gunicorn apply).
//!
//! Values are views of the head bytes wherever possible; what must be
//! built (`HTTP_*` keys of uncommon headers, joined repeats, a decoded
//! path, addresses) is written into one scratch buffer allocated once per
//! request and split into `Bytes`.

use bytes::{BufMut, Bytes};
use rwsgi_proto::{
    BodyLength, CgiVar, ConnInfo, Environ, RequestHead, Scheme, Scratch, SocketAddress,
};

use crate::head::{Field, FieldKind, Http1Head};

/// Longest header name whose key is built on the stack.
const STACK_KEY: usize = 64;

impl RequestHead for Http1Head {
    /// Sets the CGI variables of this request. `REMOTE_ADDR`/`REMOTE_PORT`
    /// are left out for unix-socket peers (there is no address to report;
    /// PEP 3333 prefers absent to empty). `SERVER_PORT` is `Host`'s port,
    /// else the port the request arrived on (80, or 443 for an `https://`
    /// target, on a unix socket). Without `Host`, `SERVER_NAME` and
    /// `SERVER_PORT` come from the listening address (`localhost` and `0`
    /// on a unix socket: PEP 3333 requires them non-empty). An IPv6
    /// `SERVER_NAME` keeps its brackets (`[::1]`), as nginx's `$host` does,
    /// so `scheme://SERVER_NAME:SERVER_PORT` stays a valid URL.
    fn write_environ(&self, conn: &ConnInfo, env: &mut Environ) {
        env.vars.reserve(12 + self.fields.len());
        let mut scratch = Scratch::new(self.scratch_hint());

        env.set(CgiVar::RequestMethod, self.slice(self.method));
        env.set(CgiVar::ScriptName, Bytes::new());
        let path_info = match self.path {
            None => Bytes::from_static(b"/"),
            Some(span) => {
                let raw = self.get(span);
                if raw.contains(&b'%') {
                    rwsgi_proto::percent_decode(raw, scratch.buf());
                    scratch.take()
                } else {
                    self.slice(span)
                }
            }
        };
        env.set(CgiVar::PathInfo, path_info);
        env.set(CgiVar::QueryString, self.query.map_or_else(Bytes::new, |q| self.slice(q)));
        env.set(CgiVar::RequestUri, self.slice(self.target));
        let protocol: &'static [u8] = if self.version == 1 { b"HTTP/1.1" } else { b"HTTP/1.0" };
        env.set(CgiVar::ServerProtocol, Bytes::from_static(protocol));

        match self.authority {
            Some(authority) => {
                env.set(CgiVar::ServerName, self.slice(authority.host));
                match (authority.port, &conn.local) {
                    (Some(port), _) => env.set(CgiVar::ServerPort, self.slice(port)),
                    // As uWSGI and CGI servers do: the port the request
                    // arrived on, when `Host` names none.
                    (None, SocketAddress::Tcp(local)) => {
                        env.set_port(CgiVar::ServerPort, local.port(), scratch.buf());
                    }
                    (None, SocketAddress::Unix(_)) => {
                        env.set(CgiVar::ServerPort, Bytes::from_static(self.default_port));
                    }
                }
            }
            None => env.set_server_from(&conn.local, scratch.buf()),
        }
        env.set_remote_from(conn);

        if self.authority_from_target
            && let Some(authority) = self.authority
        {
            env.set_other(Bytes::from_static(b"HTTP_HOST"), self.slice(authority.whole));
        }
        for (i, field) in self.fields.iter().enumerate() {
            if field.repeat {
                continue;
            }
            let key = match field.kind {
                FieldKind::Underscore => continue,
                FieldKind::Host if self.authority_from_target => continue,
                FieldKind::ContentLength => {
                    // Never for a chunked body; the head rejected CL + TE.
                    if self.body != BodyLength::Streamed {
                        env.set(CgiVar::ContentLength, self.slice(field.value));
                    }
                    continue;
                }
                FieldKind::ContentType => None,
                _ => Some(self.http_key(field, &mut scratch)),
            };
            let value = self.field_value(i, field, &mut scratch);
            match key {
                Some(key) => env.set_other(key, value),
                None => env.set(CgiVar::ContentType, value),
            }
        }
        env.scheme = Scheme::Http;
    }

    fn body_length(&self) -> BodyLength {
        self.body
    }

    fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    fn describe(&self) -> String {
        const MAX_TARGET: usize = 200;
        let target = self.target();
        let shown = target.get(..MAX_TARGET).unwrap_or(target);
        let mut out = String::with_capacity(shown.len() + 16);
        out.push_str(&String::from_utf8_lossy(self.method()));
        out.push(' ');
        out.push_str(&String::from_utf8_lossy(shown));
        if shown.len() < target.len() {
            out.push('…');
        }
        out
    }

    fn detach(&mut self) {
        self.bytes = Bytes::copy_from_slice(&self.bytes);
    }
}

impl Http1Head {
    /// A generous size for the scratch buffer, so it is allocated once.
    fn scratch_hint(&self) -> usize {
        let mut hint = 96;
        for field in &self.fields {
            hint += 5 + field.name.end.saturating_sub(field.name.start);
            if self.has_repeats {
                hint += 2 + field.value.end.saturating_sub(field.value.start);
            }
        }
        if let Some(path) = self.path {
            hint += path.end.saturating_sub(path.start);
        }
        hint
    }

    /// `HTTP_` + the name upper-cased with `-` as `_`. Common names map to
    /// static keys; others are built in the scratch buffer.
    fn http_key(&self, field: &Field, scratch: &mut Scratch) -> Bytes {
        let name = self.get(field.name);
        let mut stack = [0u8; STACK_KEY];
        let key_len = 5 + name.len();
        if let Some(key) = stack.get_mut(..key_len) {
            let (prefix, rest) = key.split_at_mut(5);
            prefix.copy_from_slice(b"HTTP_");
            for (dst, &src) in rest.iter_mut().zip(name) {
                *dst = cgi_byte(src);
            }
            if let Some(known) = static_key(key) {
                return Bytes::from_static(known);
            }
            return scratch.copy(key);
        }
        let buf = scratch.buf();
        buf.put_slice(b"HTTP_");
        buf.extend(name.iter().map(|&b| cgi_byte(b)));
        scratch.take()
    }

    /// The value of field `i`, joined with its later repeats (`, `, or `; `
    /// for Cookie: RFC 9110 §5.3, RFC 6265 §5.4).
    fn field_value(&self, i: usize, field: &Field, scratch: &mut Scratch) -> Bytes {
        let mut repeats = self
            .fields
            .iter()
            .skip(i + 1)
            .filter(|f| {
                self.has_repeats
                    && f.repeat
                    && f.hash == field.hash
                    && self.get(f.name).eq_ignore_ascii_case(self.get(field.name))
            })
            .peekable();
        if repeats.peek().is_none() {
            return self.slice(field.value);
        }
        let sep: &[u8] = if field.kind == FieldKind::Cookie { b"; " } else { b", " };
        let first = self.get(field.value);
        let buf = scratch.buf();
        buf.put_slice(first);
        for repeat in repeats {
            buf.put_slice(sep);
            buf.put_slice(self.get(repeat.value));
        }
        scratch.take()
    }
}

/// A header-name byte as it appears in a CGI key.
fn cgi_byte(b: u8) -> u8 {
    if b == b'-' { b'_' } else { b.to_ascii_uppercase() }
}

/// Keys of headers common enough that allocating them per request is a
/// waste: each maps to a `'static` copy.
macro_rules! static_keys {
    ($($key:literal,)+) => {
        fn static_key(key: &[u8]) -> Option<&'static [u8]> {
            match key {
                $($key => Some($key),)+
                _ => None,
            }
        }
    };
}

static_keys! {
    b"HTTP_HOST",
    b"HTTP_USER_AGENT",
    b"HTTP_ACCEPT",
    b"HTTP_ACCEPT_LANGUAGE",
    b"HTTP_ACCEPT_ENCODING",
    b"HTTP_ACCEPT_CHARSET",
    b"HTTP_COOKIE",
    b"HTTP_CONNECTION",
    b"HTTP_KEEP_ALIVE",
    b"HTTP_UPGRADE_INSECURE_REQUESTS",
    b"HTTP_REFERER",
    b"HTTP_ORIGIN",
    b"HTTP_CACHE_CONTROL",
    b"HTTP_PRAGMA",
    b"HTTP_AUTHORIZATION",
    b"HTTP_DNT",
    b"HTTP_TE",
    b"HTTP_TRANSFER_ENCODING",
    b"HTTP_EXPECT",
    b"HTTP_UPGRADE",
    b"HTTP_PRIORITY",
    b"HTTP_RANGE",
    b"HTTP_IF_MATCH",
    b"HTTP_IF_NONE_MATCH",
    b"HTTP_IF_MODIFIED_SINCE",
    b"HTTP_IF_UNMODIFIED_SINCE",
    b"HTTP_IF_RANGE",
    b"HTTP_VIA",
    b"HTTP_FORWARDED",
    b"HTTP_X_FORWARDED_FOR",
    b"HTTP_X_FORWARDED_PROTO",
    b"HTTP_X_FORWARDED_HOST",
    b"HTTP_X_FORWARDED_PORT",
    b"HTTP_X_REAL_IP",
    b"HTTP_X_REQUEST_ID",
    b"HTTP_X_REQUESTED_WITH",
    b"HTTP_X_CSRFTOKEN",
    b"HTTP_X_CSRF_TOKEN",
    b"HTTP_SEC_FETCH_SITE",
    b"HTTP_SEC_FETCH_MODE",
    b"HTTP_SEC_FETCH_USER",
    b"HTTP_SEC_FETCH_DEST",
    b"HTTP_SEC_CH_UA",
    b"HTTP_SEC_CH_UA_MOBILE",
    b"HTTP_SEC_CH_UA_PLATFORM",
    b"HTTP_SEC_WEBSOCKET_KEY",
    b"HTTP_SEC_WEBSOCKET_VERSION",
    b"HTTP_SEC_WEBSOCKET_PROTOCOL",
    b"HTTP_SEC_WEBSOCKET_EXTENSIONS",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_keys_match_exactly() {
        assert_eq!(static_key(b"HTTP_HOST"), Some(&b"HTTP_HOST"[..]));
        assert_eq!(static_key(b"HTTP_HOSTS"), None);
        assert_eq!(static_key(b"HTTP_X_FOO"), None);
    }
}
