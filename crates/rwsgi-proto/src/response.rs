//! The response head the app produced, already validated by the bridge.

use bytes::Bytes;

/// A response head: status and headers as the app gave them (validated:
/// no CR/LF/NUL, token names, latin-1, no hop-by-hop headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The numeric status code.
    pub status: u16,
    /// The whole status string, e.g. `200 OK`.
    pub status_line: Bytes,
    /// Header names and values, in the app's order.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The app's `Content-Length`, parsed; the core enforces it.
    pub content_length: Option<u64>,
}

impl ResponseHead {
    /// Whether this status forbids a body (1xx, 204, 304).
    pub fn forbids_body(&self) -> bool {
        matches!(self.status, 100..=199 | 204 | 304)
    }
}

/// Headers that belong to one connection, which a WSGI app must not set
/// (PEP 3333 "Other HTTP Features"). `name` is compared case-insensitively.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP_BY_HOP: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_is_case_insensitive_and_exact() {
        assert!(is_hop_by_hop(b"Connection"));
        assert!(is_hop_by_hop(b"TRANSFER-ENCODING"));
        assert!(!is_hop_by_hop(b"Content-Length"));
        assert!(!is_hop_by_hop(b"Connections"));
    }

    #[test]
    fn bodiless_statuses() {
        let head = |status| ResponseHead {
            status,
            status_line: Bytes::new(),
            headers: vec![],
            content_length: None,
        };
        assert!(head(204).forbids_body());
        assert!(head(304).forbids_body());
        assert!(head(101).forbids_body());
        assert!(!head(200).forbids_body());
    }
}
