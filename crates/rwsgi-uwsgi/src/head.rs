//! A decoded request head: the vars, as the proxy sent them.

use rwsgi_proto::CgiVars;

use crate::packet::Header;

/// A parsed, validated uwsgi request: its vars, as nginx (or another
/// proxy) sent them, with the packet's modifiers.
///
/// The vars are views of the vars block, a zero-copy slice of the
/// connection buffer; what they mean is [`CgiVars`]'s business, shared with
/// FastCGI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UwsgiHead {
    pub(crate) vars: CgiVars,
    pub(crate) modifier1: u8,
    pub(crate) modifier2: u8,
}

impl UwsgiHead {
    pub(crate) fn new(vars: CgiVars, header: Header) -> Self {
        UwsgiHead { vars, modifier1: header.modifier1, modifier2: header.modifier2 }
    }

    /// The value of the last var named `name`, if any (uWSGI's reading:
    /// the last one wins). The environ joins repeats instead.
    pub fn var(&self, name: &[u8]) -> Option<&[u8]> {
        self.vars.var(name)
    }

    /// Every var in the order sent, repeats included, as (key, value).
    pub fn vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.vars.iter()
    }

    /// The packet's `modifier1`: always 0 (a WSGI request), the only
    /// kind accepted.
    pub fn modifier1(&self) -> u8 {
        self.modifier1
    }

    /// The packet's `modifier2`, which nothing interprets for a WSGI request.
    pub fn modifier2(&self) -> u8 {
        self.modifier2
    }

    /// `REQUEST_METHOD` (sent exactly once, non-empty).
    pub fn method(&self) -> &[u8] {
        self.vars.method()
    }

    /// Whether the method is `HEAD` (its response carries no body).
    pub(crate) fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The protocol of the response's status line: the request's
    /// `SERVER_PROTOCOL` when it is one we can answer in, else `HTTP/1.0`
    /// (uWSGI's default). An odd string is never echoed into the head.
    pub(crate) fn response_protocol(&self) -> &'static [u8] {
        match self.var(b"SERVER_PROTOCOL") {
            Some(b"HTTP/1.1") => b"HTTP/1.1",
            _ => b"HTTP/1.0",
        }
    }
}
