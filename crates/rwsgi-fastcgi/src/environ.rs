//! The CGI view of a FastCGI request (PEP 3333 "environ Variables"),
//! built by [`rwsgi_proto::CgiVars`] with the rules it shares with uwsgi
//! and the FastCGI path rule.

use rwsgi_proto::{BodyLength, ConnInfo, Environ, PathRule, RequestHead};

use crate::head::FastCgiHead;

impl RequestHead for FastCgiHead {
    /// The params as sent (minus `HTTP_CONTENT_*`, empty `CONTENT_*`,
    /// `wsgi.*`/`uwsgi.*`; repeats joined), then what PEP 3333 requires
    /// and the web server left out; see [`rwsgi_proto::CgiVars::write_environ`].
    ///
    /// nginx's `fastcgi_params` sends no `PATH_INFO` and `SCRIPT_NAME` =
    /// `$fastcgi_script_name`, which for an app that is not a script file
    /// is the whole path. So, unless a non-empty `PATH_INFO` is sent
    /// (`fastcgi_split_path_info`), the path is `DOCUMENT_URI` (else
    /// `REQUEST_URI`'s, percent-decoded); a `SCRIPT_NAME` equal to it
    /// becomes `''` with `PATH_INFO` the path, a `SCRIPT_NAME` that is a
    /// proper prefix of it on a `/` boundary stays and `PATH_INFO` is the
    /// rest, and any other `SCRIPT_NAME` becomes `''` ([`PathRule::FastCgi`]).
    fn write_environ(&self, conn: &ConnInfo, env: &mut Environ) {
        self.vars.write_environ(conn, env, PathRule::FastCgi);
    }

    /// From `CONTENT_LENGTH`: absent or empty is [`BodyLength::Streamed`]
    /// (the empty STDIN record ends it), `0` is [`BodyLength::Empty`].
    fn body_length(&self) -> BodyLength {
        self.body
    }

    /// Always false: the web server in front deals with
    /// `Expect: 100-continue` (nginx answers it itself).
    fn expects_continue(&self) -> bool {
        false
    }

    /// `METHOD REQUEST_URI`, the target cut at 200 bytes.
    fn describe(&self) -> String {
        self.vars.describe()
    }

    fn detach(&mut self) {
        self.vars.detach();
    }
}
