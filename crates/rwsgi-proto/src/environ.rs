//! The CGI variables of one request, before they become a Python dict.
//!
//! Keys that every request has are a closed enum ([`CgiVar`]) so the Python
//! bridge can intern their `str` objects once at start-up; header keys are
//! the already-converted `HTTP_*` bytes.

use crate::{ConnInfo, SocketAddress};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt::Write as _;
use std::net::IpAddr;

macro_rules! cgi_vars {
    ($($variant:ident = $name:literal,)+) => {
        /// A CGI variable every protocol may set.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum CgiVar { $(#[doc = $name] $variant,)+ }

        impl CgiVar {
            /// Every variable, in declaration order (`ALL[v as usize] == v`).
            pub const ALL: &'static [CgiVar] = &[$(CgiVar::$variant,)+];

            /// The variable's name as it appears in the environ.
            pub const fn name(self) -> &'static str {
                match self { $(CgiVar::$variant => $name,)+ }
            }

            /// The variable with this name, if it is one of ours.
            pub fn from_name(name: &[u8]) -> Option<CgiVar> {
                match name { $(n if n == $name.as_bytes() => Some(CgiVar::$variant),)+ _ => None }
            }
        }
    };
}

cgi_vars! {
    RequestMethod = "REQUEST_METHOD",
    ScriptName = "SCRIPT_NAME",
    PathInfo = "PATH_INFO",
    QueryString = "QUERY_STRING",
    ContentType = "CONTENT_TYPE",
    ContentLength = "CONTENT_LENGTH",
    ServerName = "SERVER_NAME",
    ServerPort = "SERVER_PORT",
    ServerProtocol = "SERVER_PROTOCOL",
    RequestUri = "REQUEST_URI",
    RemoteAddr = "REMOTE_ADDR",
    RemotePort = "REMOTE_PORT",
    RemoteUser = "REMOTE_USER",
    DocumentRoot = "DOCUMENT_ROOT",
    DocumentUri = "DOCUMENT_URI",
    RequestScheme = "REQUEST_SCHEME",
    Https = "HTTPS",
    ServerAddr = "SERVER_ADDR",
    ServerSoftware = "SERVER_SOFTWARE",
    GatewayInterface = "GATEWAY_INTERFACE",
}

/// `wsgi.url_scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS (terminated in front of us).
    Https,
}

impl Scheme {
    /// The value of `wsgi.url_scheme`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The key of one environ entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvKey {
    /// A well-known CGI variable.
    Cgi(CgiVar),
    /// Any other variable, e.g. `HTTP_USER_AGENT` or a uwsgi var we pass on.
    Other(Bytes),
}

impl EnvKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            EnvKey::Cgi(var) => var.name().as_bytes(),
            EnvKey::Other(name) => name,
        }
    }
}

/// The CGI variables of one request, in the order the codec produced them.
/// A later entry with the same key replaces an earlier one in the dict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environ {
    /// The variables.
    pub vars: Vec<(EnvKey, Bytes)>,
    /// `wsgi.url_scheme`.
    pub scheme: Scheme,
}

impl Environ {
    /// An empty environ with room for a typical request.
    pub fn with_capacity(n: usize) -> Self {
        Environ { vars: Vec::with_capacity(n), scheme: Scheme::Http }
    }

    /// Adds a well-known variable.
    pub fn set(&mut self, var: CgiVar, value: impl Into<Bytes>) {
        self.vars.push((EnvKey::Cgi(var), value.into()));
    }

    /// Adds any other variable.
    pub fn set_other(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.vars.push((EnvKey::Other(name.into()), value.into()));
    }

    /// `SERVER_NAME` and `SERVER_PORT` from the listening address, for a
    /// request that names no host: the IP (IPv6 in brackets, so
    /// `scheme://SERVER_NAME:SERVER_PORT` is a URL) and port, or
    /// `localhost` and `0` on a unix socket (PEP 3333 wants both non-empty).
    /// `scratch` holds the bytes; each value is split off it.
    pub fn set_server_from(&mut self, local: &SocketAddress, scratch: &mut BytesMut) {
        match local {
            SocketAddress::Tcp(addr) => {
                match addr.ip() {
                    IpAddr::V4(ip) => write_ipv4(scratch, ip),
                    IpAddr::V6(ip) => write_display(scratch, format_args!("[{ip}]")),
                }
                self.set(CgiVar::ServerName, scratch.split().freeze());
                self.set_port(CgiVar::ServerPort, addr.port(), scratch);
            }
            SocketAddress::Unix(_) => {
                self.set(CgiVar::ServerName, Bytes::from_static(b"localhost"));
                self.set(CgiVar::ServerPort, Bytes::from_static(b"0"));
            }
        }
    }

    /// A port number as `var`, written in decimal into `scratch`.
    pub fn set_port(&mut self, var: CgiVar, port: u16, scratch: &mut BytesMut) {
        write_decimal(scratch, port);
        self.set(var, scratch.split().freeze());
    }

    /// `REMOTE_ADDR` and `REMOTE_PORT` of the connection's peer, when it
    /// has them (see [`ConnInfo::remote`]).
    pub fn set_remote_from(&mut self, conn: &ConnInfo) {
        if let Some((addr, port)) = conn.remote() {
            self.set(CgiVar::RemoteAddr, addr.clone());
            self.set(CgiVar::RemotePort, port.clone());
        }
    }

    /// The last value set for `var`, if any: what the hot path asks for,
    /// a scan that compares names only of the other variables.
    pub fn cgi(&self, var: CgiVar) -> Option<&Bytes> {
        let name = var.name().as_bytes();
        let matches = |key: &EnvKey| match key {
            EnvKey::Cgi(found) => *found == var,
            EnvKey::Other(found) => found == name,
        };
        self.vars.iter().rev().find(|(key, _)| matches(key)).map(|(_, value)| value)
    }

    /// The last value set for `name`, if any (for tests and logs).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.vars.iter().rev().find(|(k, _)| k.as_bytes() == name.as_bytes()).map(|(_, v)| v)
    }
}

#[derive(Debug)]
/// One buffer for all the bytes a request's environ must own (joined
/// repeats, decoded paths, addresses), allocated at most once, with `hint`
/// bytes, and only if something needs it; each value is split off it.
pub struct Scratch {
    buf: BytesMut,
    hint: usize,
}

impl Scratch {
    pub fn new(hint: usize) -> Self {
        Scratch { buf: BytesMut::new(), hint }
    }

    /// The buffer to append the next value to.
    pub fn buf(&mut self) -> &mut BytesMut {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.hint);
        }
        &mut self.buf
    }

    /// Everything appended since the last call, as its own `Bytes`.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// A copy of `bytes` as its own `Bytes`.
    pub fn copy(&mut self, bytes: &[u8]) -> Bytes {
        self.buf().put_slice(bytes);
        self.take()
    }
}

/// Decodes the `%XX` escapes of `src` into `out` (for `PATH_INFO`);
/// invalid escapes stay as they are.
pub fn percent_decode(src: &[u8], out: &mut BytesMut) {
    let mut rest = src;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%'
            && let [hi, lo, after @ ..] = tail
            && let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo))
        {
            out.put_u8(hi << 4 | lo);
            rest = after;
            continue;
        }
        out.put_u8(b);
        rest = tail;
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the decimal form of `n` (no `fmt` machinery: once per request).
fn write_decimal(buf: &mut BytesMut, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.put_slice(digits.get(i..).unwrap_or_default());
}

/// Appends a dotted-quad IPv4 address.
fn write_ipv4(buf: &mut BytesMut, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf.put_u8(b'.');
        }
        write_decimal(buf, u16::from(octet));
    }
}

/// A TCP peer's `REMOTE_ADDR` (IPv4-mapped IPv6 shown as IPv4) and
/// `REMOTE_PORT`.
pub(crate) fn render_remote(addr: &std::net::SocketAddr) -> (Bytes, Bytes) {
    let mut text = BytesMut::with_capacity(48);
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => write_ipv4(&mut text, ip),
        IpAddr::V6(ip) => write_display(&mut text, ip),
    }
    let ip = text.split().freeze();
    write_decimal(&mut text, addr.port());
    (ip, text.freeze())
}

/// Appends `value`'s `Display` form.
fn write_display(buf: &mut BytesMut, value: impl std::fmt::Display) {
    // Writing into a BytesMut cannot fail.
    let _ = write!(buf, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(src: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        percent_decode(src, &mut out);
        out.to_vec()
    }

    #[test]
    fn percent_decoding_leaves_invalid_escapes() {
        assert_eq!(decode(b"/a%20b"), b"/a b");
        assert_eq!(decode(b"/caf%C3%a9"), b"/caf\xc3\xa9");
        assert_eq!(decode(b"/%2F%2f"), b"///");
        assert_eq!(decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(decode(b"%"), b"%");
        assert_eq!(decode(b"%%41"), b"%A");
        assert_eq!(decode(b"/%00"), b"/\x00");
    }

    #[test]
    fn decimal_and_ipv4_formatting() {
        for n in [0u16, 7, 10, 99, 100, 8080, 65535] {
            let mut buf = BytesMut::new();
            write_decimal(&mut buf, n);
            assert_eq!(&buf[..], n.to_string().as_bytes());
        }
        for ip in ["0.0.0.0", "255.255.255.255", "192.0.2.17", "10.0.100.1"] {
            let mut buf = BytesMut::new();
            write_ipv4(&mut buf, ip.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED));
            assert_eq!(&buf[..], ip.as_bytes());
        }
    }

    #[test]
    fn server_and_remote_come_from_the_socket_addresses() {
        let mut scratch = BytesMut::new();
        let mut env = Environ::default();
        env.set_server_from(
            &SocketAddress::Tcp("[::1]:8080".parse().unwrap_or_else(|_| unreachable!())),
            &mut scratch,
        );
        let tcp = |addr: &str| SocketAddress::Tcp(addr.parse().unwrap_or_else(|_| unreachable!()));
        env.set_remote_from(&ConnInfo::new(tcp("[::ffff:10.1.2.3]:5000"), tcp("[::1]:8080")));
        assert_eq!(env.get("SERVER_NAME").map(|v| &v[..]), Some(&b"[::1]"[..]));
        assert_eq!(env.get("SERVER_PORT").map(|v| &v[..]), Some(&b"8080"[..]));
        assert_eq!(env.get("REMOTE_ADDR").map(|v| &v[..]), Some(&b"10.1.2.3"[..]));
        assert_eq!(env.get("REMOTE_PORT").map(|v| &v[..]), Some(&b"5000"[..]));
        let mut unix = Environ::default();
        unix.set_server_from(&SocketAddress::Unix(None), &mut scratch);
        unix.set_remote_from(&ConnInfo::new(SocketAddress::Unix(None), SocketAddress::Unix(None)));
        assert_eq!(unix.get("SERVER_NAME").map(|v| &v[..]), Some(&b"localhost"[..]));
        assert_eq!(unix.get("SERVER_PORT").map(|v| &v[..]), Some(&b"0"[..]));
        assert_eq!(unix.get("REMOTE_ADDR"), None);
    }

    #[test]
    fn cgi_finds_a_variable_however_it_was_set_the_last_one_winning() {
        let mut env = Environ::default();
        env.set(CgiVar::RequestMethod, "GET");
        env.set_other("HTTP_X", "1");
        assert_eq!(env.cgi(CgiVar::RequestMethod).map(|v| &v[..]), Some(&b"GET"[..]));
        env.set_other("REQUEST_METHOD", "POST");
        assert_eq!(env.cgi(CgiVar::RequestMethod).map(|v| &v[..]), Some(&b"POST"[..]));
        assert_eq!(env.cgi(CgiVar::PathInfo), None);
    }

    #[test]
    fn a_connections_requests_share_its_remote_vars() {
        let conn = ConnInfo::new(
            SocketAddress::Tcp("192.0.2.7:51234".parse().unwrap_or_else(|_| unreachable!())),
            SocketAddress::Unix(None),
        );
        let remote_addr = || {
            let mut env = Environ::default();
            env.set_remote_from(&conn);
            env.get("REMOTE_ADDR").cloned().unwrap_or_default()
        };
        let (first, second) = (remote_addr(), remote_addr());
        assert_eq!(&first[..], b"192.0.2.7");
        assert_eq!(first.as_ptr(), second.as_ptr(), "written once, shared");
    }

    #[test]
    fn all_lists_each_variant_at_its_discriminant() {
        for (i, var) in CgiVar::ALL.iter().enumerate() {
            assert_eq!(*var as usize, i);
            assert_eq!(CgiVar::from_name(var.name().as_bytes()), Some(*var));
        }
        assert_eq!(CgiVar::from_name(b"HTTP_HOST"), None);
    }

    #[test]
    fn get_returns_the_last_value() {
        let mut env = Environ::default();
        env.set(CgiVar::PathInfo, "/a");
        env.set_other("HTTP_X", "1");
        env.set(CgiVar::PathInfo, "/b");
        assert_eq!(env.get("PATH_INFO").map(|b| &b[..]), Some(&b"/b"[..]));
        assert_eq!(env.get("HTTP_X").map(|b| &b[..]), Some(&b"1"[..]));
        assert_eq!(env.get("NOPE"), None);
    }
}
