//! The CGI variables of one request, before they become a Python dict.
//!
//! Keys that every request has are a closed enum ([`CgiVar`]) so the Python
//! bridge can intern their `str` objects once at start-up; header keys are
//! the already-converted `HTTP_*` bytes.

use bytes::Bytes;

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

    /// The last value set for `name`, if any (for tests and logs).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.vars.iter().rev().find(|(k, _)| k.as_bytes() == name.as_bytes()).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
