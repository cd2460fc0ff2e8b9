//! The one error type of an exchange (a request that cannot be read, a
//! response head that cannot be sent), and who is at fault.

use std::io;

/// Who caused a failure; it decides the status class and the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer sent something wrong: a 4xx, logged as a warning.
    Client,
    /// The application misbehaved: a 5xx.
    App,
    /// We failed (I/O, resources): a 5xx or a close.
    Server,
}

/// Everything that can go wrong with an exchange before its response is under way.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// Malformed or ambiguous framing; the message names the rule.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request line alone is too long.
    #[error("request target longer than buffer-size ({limit} bytes)")]
    UriTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The head is larger than `buffer-size`, or has too many fields.
    #[error("request head larger than buffer-size ({limit} bytes) or with too many fields")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body is larger than `limit-post`.
    #[error("request body larger than limit-post ({limit} bytes)")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// A valid request using something we do not implement.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// An HTTP major version we do not speak.
    #[error("unsupported HTTP version")]
    VersionNotSupported,
    /// An `Expect` value other than `100-continue`.
    #[error("unsupported Expect value")]
    ExpectationFailed,
    /// An application gave a response head that must not reach the wire
    /// (a bad status, a header that could split the response).
    #[error("invalid response: {0}")]
    BadResponse(String),
    /// A different protocol arrived on this listener (HTTP on a uwsgi port).
    #[error("wrong protocol: {0}")]
    WrongProtocol(&'static str),
    /// The peer took longer than `socket-timeout` to send what it started.
    #[error("timed out waiting for the rest of the request")]
    Timeout,
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed in the middle of a request")]
    UnexpectedEof,
    /// The body could not be kept in a temporary file (disk full, no
    /// writable `TMPDIR`).
    #[error("cannot keep the request body in a temporary file: {0}")]
    Spool(io::Error),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ProtoError {
    /// The status to answer with, or `None` when there is nobody to answer
    /// (the peer is gone). This is the one place errors become statuses.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProtoError::BadRequest(_) | ProtoError::WrongProtocol(_) => Some(400),
            ProtoError::UriTooLong { .. } => Some(414),
            ProtoError::HeadTooLarge { .. } => Some(431),
            ProtoError::BodyTooLarge { .. } => Some(413),
            ProtoError::NotImplemented(_) => Some(501),
            ProtoError::VersionNotSupported => Some(505),
            ProtoError::ExpectationFailed => Some(417),
            ProtoError::Timeout => Some(408),
            ProtoError::BadResponse(_) | ProtoError::Spool(_) => Some(500),
            ProtoError::UnexpectedEof | ProtoError::Io(_) => None,
        }
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            ProtoError::Io(_) | ProtoError::Spool(_) => Fault::Server,
            ProtoError::BadResponse(_) => Fault::App,
            _ => Fault::Client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_error_maps_to_a_4xx_or_5xx_status() {
        let cases = [
            (ProtoError::BadRequest("x"), Some(400)),
            (ProtoError::WrongProtocol("x"), Some(400)),
            (ProtoError::UriTooLong { limit: 1 }, Some(414)),
            (ProtoError::HeadTooLarge { limit: 1 }, Some(431)),
            (ProtoError::BodyTooLarge { limit: 1 }, Some(413)),
            (ProtoError::NotImplemented("x"), Some(501)),
            (ProtoError::VersionNotSupported, Some(505)),
            (ProtoError::ExpectationFailed, Some(417)),
            (ProtoError::Timeout, Some(408)),
            (ProtoError::UnexpectedEof, None),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.fault(), Fault::Client);
        }
        assert_eq!(ProtoError::from(io::Error::other("x")).fault(), Fault::Server);
        let spool = ProtoError::Spool(io::Error::other("disk full"));
        assert_eq!((spool.status(), spool.fault()), (Some(500), Fault::Server));
        let bad_response = ProtoError::BadResponse("x".into());
        assert_eq!((bad_response.status(), bad_response.fault()), (Some(500), Fault::App));
    }
}
