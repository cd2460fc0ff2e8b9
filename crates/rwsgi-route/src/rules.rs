//! uWSGI's request routing: rules read in order, each a subject (a
//! request variable matched by a regex, a condition, or none) and an
//! action. Every rule is parsed at start-up: an action or condition rwsgi
//! does not implement is an error there, never a rule skipped.

use crate::RuleError;
use crate::auth::{Credentials, Proof};
use crate::cond::Cond;
use crate::template::{Groups, Template};
use bytes::Bytes;
use regex::bytes::Regex;
use rwsgi_proto::{CgiVar, Environ, Event, ResponseHead, check_header};
use rwsgi_static::StaticFiles;
use std::collections::HashMap;

/// One rule as the config gives it.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    /// `route`, `route-uri`, `route-if`, `route-label`...
    pub option: String,
    pub value: String,
    /// Where it was given, for errors.
    pub at: String,
}

#[derive(Debug)]
enum When {
    /// `route-run`.
    Always,
    /// `route-label`: a place `goto` jumps to; runs nothing.
    Label,
    /// `route`, `route-uri`...: a regex on a request variable.
    Matches { var: &'static str, regex: Regex },
    /// `route-if`, `route-if-not`.
    If { cond: Cond, negate: bool },
}

#[derive(Debug)]
enum Action {
    /// `continue`, `last`: on to static files and the app.
    Continue,
    /// `break`: the request ends with no response; `break:STATUS`: with
    /// that status and no body.
    Break(Option<(u16, Option<String>)>),
    /// `return:CODE`, `break-with-status:CODE`: the status and its phrase
    /// as the body.
    Return(u16),
    Log(Template),
    DoNotLog,
    Goto(usize),
    AddVar(String, Template),
    AddHeader(Template),
    DelHeader(Template),
    BasicAuth {
        realm: String,
        credentials: Credentials,
        next: bool,
    },
    Redirect {
        status: u16,
        to: Template,
    },
    Rewrite {
        to: Template,
        last: bool,
    },
    Static {
        path: Template,
        next: bool,
    },
}

#[derive(Debug)]
struct Rule {
    when: When,
    action: Action,
}

/// Every rule, in order.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    rules: Vec<Rule>,
}

/// What the rules decided for a request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// On to static files and the app.
    Pass,
    /// This is the response.
    Answer(Vec<Event>),
}

/// What the rules changed about the response, besides the environ.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    pub(crate) add: Vec<(Bytes, Bytes)>,
    pub(crate) remove: Vec<Bytes>,
    pub(crate) quiet: bool,
}

/// The variable a `route-*` option matches.
fn subject_of(option: &str) -> Option<&'static str> {
    Some(match option {
        "route" => "PATH_INFO",
        "route-uri" => "REQUEST_URI",
        "route-host" => "HTTP_HOST",
        "route-qs" => "QUERY_STRING",
        "route-remote-addr" => "REMOTE_ADDR",
        "route-user-agent" => "HTTP_USER_AGENT",
        "route-remote-user" => "REMOTE_USER",
        "route-referer" => "HTTP_REFERER",
        _ => return None,
    })
}

const ACTIONS: &str = "continue, last, break, return, log, donotlog, goto, addvar, addheader, \
                       delheader, basicauth(-next), redirect(-301/-302/-permanent), \
                       rewrite(-last), static(-next)";

impl Routes {
    pub(crate) fn parse(specs: &[RuleSpec]) -> Result<Routes, Vec<RuleError>> {
        let mut labels: HashMap<&str, usize> = HashMap::new();
        for (place, spec) in specs.iter().enumerate() {
            if spec.option == "route-label" {
                labels.entry(spec.value.trim()).or_insert(place);
            }
        }
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (place, spec) in specs.iter().enumerate() {
            match parse_rule(spec, place, &labels) {
                Ok(rule) => rules.push(rule),
                Err(err) => errors.push(err.at(spec)),
            }
        }
        if errors.is_empty() { Ok(Routes { rules }) } else { Err(errors) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules against a request, changing its environ as they say.
    pub(crate) async fn apply(
        &self,
        environ: &mut Environ,
        marks: &mut Marks,
        statics: &StaticFiles,
    ) -> Verdict {
        let mut at = 0;
        while let Some(rule) = self.rules.get(at) {
            at += 1;
            let groups: Groups = match &rule.when {
                When::Label => continue,
                When::Always => Vec::new(),
                When::Matches { var, regex } => {
                    let subject = environ.get(var).cloned().unwrap_or_default();
                    match regex.captures(&subject) {
                        Some(found) => {
                            found.iter().map(|g| g.map(|m| m.as_bytes().to_vec())).collect()
                        }
                        None => continue,
                    }
                }
                When::If { cond, negate } => {
                    let (holds, groups) = cond.holds(environ, &Vec::new());
                    if holds == *negate {
                        continue;
                    }
                    groups
                }
            };
            match run(&rule.action, environ, &groups, marks, statics).await {
                Flow::Next => {}
                Flow::Jump(to) => at = to,
                Flow::Pass => return Verdict::Pass,
                Flow::Answer(events) => return Verdict::Answer(events),
            }
        }
        Verdict::Pass
    }
}

fn parse_rule(
    spec: &RuleSpec,
    place: usize,
    labels: &HashMap<&str, usize>,
) -> Result<Rule, RuleError> {
    let value = spec.value.as_str();
    let (when, action) = match spec.option.as_str() {
        "route-label" => return Ok(Rule { when: When::Label, action: Action::Continue }),
        "route-run" => (When::Always, value),
        "route-if" | "route-if-not" => {
            let (cond, action) = split_rule(value)?;
            (When::If { cond: Cond::parse(cond)?, negate: spec.option == "route-if-not" }, action)
        }
        option => {
            let var = subject_of(option)
                .ok_or_else(|| RuleError::new(format!("{option} is no route option")))?;
            let (pattern, action) = split_rule(value)?;
            let regex = byte_regex(pattern)?;
            (When::Matches { var, regex }, action)
        }
    };
    Ok(Rule { when, action: parse_action(action, place, labels)? })
}

/// A regex over bytes as PCRE compiles uWSGI's (no UTF mode): `.`
/// matches any byte but a newline, so a path with invalid UTF-8 cannot
/// slip past an anchored rule.
pub(crate) fn byte_regex(pattern: &str) -> Result<Regex, RuleError> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .map_err(|err| RuleError::new(err.to_string()))
}

/// `SUBJECT ACTION`, split at the first space, as uWSGI does.
fn split_rule(value: &str) -> Result<(&str, &str), RuleError> {
    value
        .split_once(' ')
        .map(|(subject, action)| (subject, action.trim_start()))
        .ok_or_else(|| RuleError::new("want SUBJECT ACTION (separated by a space)"))
}

fn parse_action(
    text: &str,
    place: usize,
    labels: &HashMap<&str, usize>,
) -> Result<Action, RuleError> {
    let (name, args) = text.split_once(':').unwrap_or((text, ""));
    let template = || Template::parse(args);
    Ok(match name.trim() {
        "continue" | "last" => Action::Continue,
        "break" => Action::Break(match args.trim() {
            "" => None,
            status => Some(parse_status(status)?),
        }),
        "return" | "break-with-status" => {
            let (code, _) = parse_status(args.trim())?;
            Action::Return(code)
        }
        "log" => Action::Log(template()?),
        "donotlog" => Action::DoNotLog,
        "goto" => {
            let label = args.trim();
            match labels.get(label) {
                Some(&to) if to > place => Action::Goto(to),
                Some(_) => {
                    return Err(RuleError::new(format!("goto {label}: a goto only jumps forward")));
                }
                None => {
                    return Err(RuleError::new(format!("goto {label}: no route-label {label}")));
                }
            }
        }
        "addvar" => {
            let (key, value) =
                args.split_once('=').ok_or_else(|| RuleError::new("addvar wants KEY=VALUE"))?;
            Action::AddVar(key.to_string(), Template::parse(value)?)
        }
        "addheader" => {
            let header = template()?;
            if let Some(literal) = header.literal() {
                header_pair(literal).map_err(RuleError::new)?;
            }
            Action::AddHeader(header)
        }
        "delheader" | "remheader" => Action::DelHeader(template()?),
        "basicauth" | "basicauth-next" => {
            let (realm, spec) = args.split_once(',').ok_or_else(|| {
                RuleError::new("basicauth wants REALM,USER:PASSWORD or REALM,HTPASSWD-FILE")
            })?;
            if realm.contains(['"', '\r', '\n']) {
                return Err(RuleError::new("a basicauth realm cannot hold quotes or line ends"));
            }
            Action::BasicAuth {
                realm: realm.to_string(),
                credentials: Credentials::parse(spec),
                next: name == "basicauth-next",
            }
        }
        "redirect" | "redirect-302" => Action::Redirect { status: 302, to: template()? },
        "redirect-301" | "redirect-permanent" => Action::Redirect { status: 301, to: template()? },
        "rewrite" | "rewrite-last" => {
            Action::Rewrite { to: template()?, last: name == "rewrite-last" }
        }
        "static" | "static-next" => {
            Action::Static { path: template()?, next: name == "static-next" }
        }
        other => {
            return Err(RuleError::new(format!(
                "the route action {other:?} is not implemented by rwsgi (it has {ACTIONS})"
            )));
        }
    })
}

/// `403`, or `403 Forbidden`.
fn parse_status(text: &str) -> Result<(u16, Option<String>), RuleError> {
    let (code, reason) =
        text.split_once(' ').map_or((text, None), |(c, r)| (c, Some(r.to_string())));
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| RuleError::new(format!("{text:?} is no HTTP status")))?;
    if reason.as_deref().is_some_and(|r| r.bytes().any(|b| b.is_ascii_control())) {
        return Err(RuleError::new("a status line cannot hold control characters"));
    }
    Ok((code, reason))
}

/// `Name: value` as a valid header.
pub(crate) fn header_pair(text: &[u8]) -> Result<(Bytes, Bytes), String> {
    let colon = text.iter().position(|&b| b == b':').ok_or("a header wants NAME: VALUE")?;
    let name = Bytes::copy_from_slice(&text[..colon]);
    let value = Bytes::copy_from_slice(text[colon + 1..].trim_ascii());
    check_header(&name, &value).map_err(|err| err.to_string())?;
    if name.eq_ignore_ascii_case(b"content-length") {
        return Err("Content-Length frames the response: rwsgi sets it".into());
    }
    Ok((name, value))
}

/// What one action decided.
enum Flow {
    Next,
    Jump(usize),
    Pass,
    Answer(Vec<Event>),
}

async fn run(
    action: &Action,
    environ: &mut Environ,
    groups: &Groups,
    marks: &mut Marks,
    statics: &StaticFiles,
) -> Flow {
    let expand = |template: &Template, environ: &Environ| template.expand(environ, groups);
    match action {
        Action::Continue => Flow::Pass,
        Action::Break(None) => Flow::Answer(vec![Event::End { complete: false }]),
        Action::Break(Some((code, reason))) => {
            let mut head = status_head(*code, reason.as_deref());
            head.push_header(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"text/plain"),
            );
            Flow::Answer(vec![Event::whole(head, Bytes::new())])
        }
        Action::Return(code) => Flow::Answer(plain(*code)),
        Action::Log(text) => {
            // Escaped: request bytes must not forge log lines.
            tracing::info!(target: "rwsgi::route", "{}", expand(text, environ).escape_ascii());
            Flow::Next
        }
        Action::DoNotLog => {
            marks.quiet = true;
            Flow::Next
        }
        Action::Goto(to) => Flow::Jump(*to),
        Action::AddVar(key, value) => {
            let value = expand(value, environ);
            match CgiVar::from_name(key.as_bytes()) {
                Some(var) => environ.set(var, value),
                None => environ.set_other(key.clone(), value),
            }
            Flow::Next
        }
        Action::AddHeader(header) => {
            match header_pair(&expand(header, environ)) {
                Ok(pair) => marks.add.push(pair),
                Err(err) => tracing::warn!("route addheader: {err}: not added"),
            }
            Flow::Next
        }
        Action::DelHeader(name) => {
            marks.remove.push(Bytes::from(expand(name, environ)));
            Flow::Next
        }
        Action::BasicAuth { realm, credentials, next } => {
            if environ.get("REMOTE_USER").is_some_and(|user| !user.is_empty()) {
                return Flow::Next;
            }
            let authorization = environ.get("HTTP_AUTHORIZATION").cloned().unwrap_or_default();
            let proof = if credentials.is_slow() {
                // Hashes (bcrypt, sha-crypt) cost milliseconds: never on
                // the thread every connection of the worker shares.
                let credentials = credentials.clone();
                tokio::task::spawn_blocking(move || credentials.check(&authorization))
                    .await
                    .unwrap_or(Proof::Malformed)
            } else {
                credentials.check(&authorization)
            };
            match proof {
                Proof::User(user) => {
                    environ.set(CgiVar::RemoteUser, user);
                    Flow::Next
                }
                // A wrong password may be right for a later rule; missing
                // or malformed credentials are asked for at once, as in
                // uWSGI.
                Proof::Wrong if *next => Flow::Next,
                Proof::Wrong | Proof::Malformed => {
                    let mut head = ResponseHead::new(401);
                    head.push_header(
                        Bytes::from_static(b"WWW-Authenticate"),
                        Bytes::from(format!("Basic realm=\"{realm}\"")),
                    );
                    head.push_header(
                        Bytes::from_static(b"Content-Type"),
                        Bytes::from_static(b"text/plain"),
                    );
                    Flow::Answer(vec![Event::whole(head, Bytes::from_static(b"Unauthorized"))])
                }
            }
        }
        Action::Redirect { status, to } => {
            let location = Bytes::from(expand(to, environ));
            if check_header(b"Location", &location).is_err() {
                // Built from the request (a decoded %0d%0a, say): refused.
                return Flow::Answer(plain(400));
            }
            let mut head = ResponseHead::new(*status);
            head.push_header(Bytes::from_static(b"Location"), location);
            head.push_header(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"text/plain"),
            );
            let body: &'static [u8] = if *status == 301 { b"Moved Permanently" } else { b"Moved" };
            Flow::Answer(vec![Event::whole(head, Bytes::from_static(body))])
        }
        Action::Rewrite { to, last } => {
            rewrite(environ, &expand(to, environ));
            if *last { Flow::Pass } else { Flow::Next }
        }
        Action::Static { path, next } => {
            let path = expand(path, environ);
            let path = std::path::PathBuf::from(std::ffi::OsString::from(
                String::from_utf8_lossy(&path).into_owned(),
            ));
            match statics.serve_path(&path, environ) {
                Some(events) => Flow::Answer(events),
                None if *next => Flow::Next,
                None => Flow::Answer(plain(404)),
            }
        }
    }
}

/// A plain-text answer: the status and its phrase.
fn plain(code: u16) -> Vec<Event> {
    let mut head = ResponseHead::new(code);
    head.push_header(Bytes::from_static(b"Content-Type"), Bytes::from_static(b"text/plain"));
    vec![Event::whole(head, Bytes::from_static(rwsgi_proto::reason_phrase(code).as_bytes()))]
}

/// A head with `code` and the given reason phrase, or the standard one.
fn status_head(code: u16, reason: Option<&str>) -> ResponseHead {
    let mut head = ResponseHead::new(code);
    if let Some(reason) = reason {
        head.status_line = Bytes::from(format!("{code} {reason}"));
    }
    head
}

/// `rewrite:`: the new path (percent-decoded) becomes PATH_INFO; a query
/// in it comes before the request's own, as in uWSGI.
fn rewrite(environ: &mut Environ, target: &[u8]) {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    };
    let mut decoded = bytes::BytesMut::new();
    rwsgi_proto::percent_decode(path, &mut decoded);
    environ.set(CgiVar::PathInfo, decoded.freeze());
    if let Some(query) = query {
        let old = environ.get("QUERY_STRING").cloned().unwrap_or_default();
        let mut joined = query.to_vec();
        if !old.is_empty() {
            joined.push(b'&');
            joined.extend_from_slice(&old);
        }
        environ.set(CgiVar::QueryString, joined);
    }
}
