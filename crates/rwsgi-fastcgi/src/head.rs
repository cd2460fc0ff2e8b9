//! A decoded request head: the params and the record-level facts.

use rwsgi_proto::{BodyLength, CgiVars};

/// A parsed, validated FastCGI request: its params, as the web server
/// sent them, and what BEGIN_REQUEST said.
///
/// The params are a zero-copy slice of the connection buffer when the
/// PARAMS stream came in one record, as nginx sends it; accessors and
/// [`rwsgi_proto::RequestHead`] hand out views of those bytes. Names are
/// case-sensitive, as in CGI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastCgiHead {
    pub(crate) vars: CgiVars,
    pub(crate) body: BodyLength,
    pub(crate) request_id: u16,
    pub(crate) keep_conn: bool,
}

impl FastCgiHead {
    /// The value of the last param named `name`, if any. The environ joins
    /// repeats instead.
    pub fn param(&self, name: &[u8]) -> Option<&[u8]> {
        self.vars.var(name)
    }

    /// Every param in the order sent, repeats included, as (name, value).
    pub fn params(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.vars.iter()
    }

    /// The params, as the environ is built from them.
    pub fn cgi_vars(&self) -> &CgiVars {
        &self.vars
    }

    /// `REQUEST_METHOD` (sent exactly once, non-empty).
    pub fn method(&self) -> &[u8] {
        self.vars.method()
    }

    /// The FastCGI request id (nginx always uses 1).
    pub fn request_id(&self) -> u16 {
        self.request_id
    }

    /// Whether BEGIN_REQUEST set `FCGI_KEEP_CONN`: the web server keeps the
    /// connection for further requests (`fastcgi_keep_conn on`); otherwise
    /// it is closed after this request's END_REQUEST.
    pub fn keep_conn(&self) -> bool {
        self.keep_conn
    }
}
