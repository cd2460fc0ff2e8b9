//! The CGI view of a uwsgi request: the vars as sent, under the rules
//! shared with FastCGI ([`rwsgi_proto::CgiVars::write_environ`]), with
//! `PATH_INFO` and `SCRIPT_NAME` as nginx's `uwsgi_params` sends them.

use rwsgi_proto::{BodyLength, ConnInfo, Environ, PathRule, RequestHead};

use crate::head::UwsgiHead;

impl RequestHead for UwsgiHead {
    /// See [`rwsgi_proto::CgiVars::write_environ`]; `PATH_INFO` as sent (nginx
    /// sends `$document_uri`), else from `REQUEST_URI`; `SCRIPT_NAME` as sent,
    /// else `''`.
    fn write_environ(&self, conn: &ConnInfo, env: &mut Environ) {
        self.vars.write_environ(conn, env, PathRule::AsSent);
    }

    fn body_length(&self) -> BodyLength {
        self.vars.body_length()
    }

    /// Always false: the proxy in front deals with `Expect: 100-continue`
    /// (nginx answers it itself before reading the body).
    fn expects_continue(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.vars.describe()
    }

    fn detach(&mut self) {
        self.vars.detach();
    }
}
