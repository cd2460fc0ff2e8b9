//! `log-format`: text with `%(variable)` items, uWSGI's variables; and
//! uWSGI's default request line expressed in the same items.

use crate::Settings;
use crate::clock;
use crate::facts::Facts;
use std::borrow::Cow;
use std::io::Write as _;

/// A `log-format` that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "log-format: %({0}) is no request-log variable rwsgi knows (see the README's Operations section)"
    )]
    Unknown(String),
    #[error(
        "log-format: %(metric.{0}): rwsgi has no uWSGI metrics subsystem; see its Prometheus metrics"
    )]
    Metric(String),
}

/// One `%(...)` item: uWSGI's request-log variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Uri,
    Method,
    User,
    Addr,
    Host,
    Proto,
    Uagent,
    Referer,
    Status,
    /// Response body bytes.
    Rsize,
    /// Response head bytes.
    Hsize,
    /// Both.
    Size,
    /// The request's `Content-Length`.
    Cl,
    Micros,
    Msecs,
    Secs,
    /// When the request started: ms, µs, s since the epoch; the log time
    /// (`%d/%b/%Y:%H:%M:%S %z`), `log-date`'s format, `ctime`.
    Tmsecs,
    Tmicros,
    Time,
    Ltime,
    Ftime,
    Ctime,
    /// Now, in seconds since the epoch.
    Epoch,
    Pid,
    Wid,
    Switches,
    Vars,
    Core,
    Vsz,
    Rss,
    VszM,
    RssM,
    Pktsize,
    Modifier1,
    Modifier2,
    Headers,
    Werr,
    Rerr,
    Ioerr,
    /// `var.NAME`: the request variable, by its place in [`Format::vars`].
    Var(usize),
    /// rwsgi's own: the connection's peer (the client over HTTP, the web
    /// server over uwsgi and FastCGI) and the protocol's name.
    Peer,
    Protocol,
    /// The default line's request count, its "msecs"/"micros" and its
    /// "via sendfile()".
    Requests,
    Unit,
    Via,
}

const NAMES: &[(&str, Item)] = &[
    ("uri", Item::Uri),
    ("method", Item::Method),
    ("user", Item::User),
    ("addr", Item::Addr),
    ("host", Item::Host),
    ("proto", Item::Proto),
    ("uagent", Item::Uagent),
    ("referer", Item::Referer),
    ("status", Item::Status),
    ("rsize", Item::Rsize),
    ("hsize", Item::Hsize),
    ("size", Item::Size),
    ("cl", Item::Cl),
    ("micros", Item::Micros),
    ("msecs", Item::Msecs),
    ("secs", Item::Secs),
    ("tmsecs", Item::Tmsecs),
    ("tmicros", Item::Tmicros),
    ("time", Item::Time),
    ("ltime", Item::Ltime),
    ("ftime", Item::Ftime),
    ("ctime", Item::Ctime),
    ("epoch", Item::Epoch),
    ("pid", Item::Pid),
    ("wid", Item::Wid),
    ("switches", Item::Switches),
    ("vars", Item::Vars),
    ("core", Item::Core),
    ("vsz", Item::Vsz),
    ("rss", Item::Rss),
    ("vszM", Item::VszM),
    ("rssM", Item::RssM),
    ("pktsize", Item::Pktsize),
    ("modifier1", Item::Modifier1),
    ("modifier2", Item::Modifier2),
    ("headers", Item::Headers),
    ("werr", Item::Werr),
    ("rerr", Item::Rerr),
    ("ioerr", Item::Ioerr),
    ("peer", Item::Peer),
    ("protocol", Item::Protocol),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Item(Item, String),
}

/// A parsed format.
#[derive(Debug, Clone)]
pub struct Format {
    pieces: Vec<Piece>,
    /// The `var.NAME` names, in order.
    vars: Vec<String>,
    json: bool,
    /// `log-format` shows an empty value as `-`; the default line as is.
    dash_empty: bool,
}

/// A value, typed for JSON; text borrowed from the facts where it can be.
enum Value<'f> {
    Text(Cow<'f, [u8]>),
    Int(u64),
    Float(f64),
}

impl Format {
    /// `text` with `%(name)` items; `json`: render the items as one JSON
    /// object, keyed by their names.
    pub fn parse(text: &str, json: bool) -> Result<Format, FormatError> {
        let mut format = Format { pieces: Vec::new(), vars: Vec::new(), json, dash_empty: true };
        format.read(text, |format, name| format.item(name))?;
        Ok(format)
    }

    /// Splits `text` into text and `%(name)` items (an unclosed `%(` is
    /// text), each named item by `lookup`.
    fn read(
        &mut self,
        text: &str,
        lookup: impl Fn(&mut Format, &str) -> Result<Item, FormatError>,
    ) -> Result<(), FormatError> {
        let mut rest = text;
        while let Some(at) = rest.find("%(") {
            let Some(len) = rest[at + 2..].find(')') else { break };
            if at > 0 {
                self.pieces.push(Piece::Text(rest[..at].to_string()));
            }
            let name = &rest[at + 2..at + 2 + len];
            let item = lookup(self, name)?;
            self.pieces.push(Piece::Item(item, name.to_string()));
            rest = &rest[at + 3 + len..];
        }
        if !rest.is_empty() {
            self.pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(())
    }

    fn item(&mut self, name: &str) -> Result<Item, FormatError> {
        if let Some(var) = name.strip_prefix("var.") {
            self.vars.push(var.to_string());
            return Ok(Item::Var(self.vars.len() - 1));
        }
        if let Some(metric) = name.strip_prefix("metric.") {
            return Err(FormatError::Metric(metric.to_string()));
        }
        NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, item)| *item)
            .ok_or_else(|| FormatError::Unknown(name.to_string()))
    }

    /// uWSGI 2.0's default request line (`uwsgi_logit_simple`): the same
    /// text, an empty value left empty.
    pub fn uwsgi_default(micros: bool) -> Format {
        let duration = if micros { "%(micros)" } else { "%(msecs)" };
        let text = format!(
            "[pid: %(pid)|app: 0|req: %(requests)/%(requests)] %(addr) (%(user)) {{%(vars) vars \
             in %(pktsize) bytes}} [%(ctime)] %(method) %(uri) => generated %(rsize) bytes in \
             {duration} %(unit)%(via)(%(proto) %(status)) %(headers) headers in %(hsize) bytes \
             (%(switches) switches on core %(core))"
        );
        let mut format =
            Format { pieces: Vec::new(), vars: Vec::new(), json: false, dash_empty: false };
        let internal = |format: &mut Format, name: &str| match name {
            "requests" => Ok(Item::Requests),
            "unit" => Ok(Item::Unit),
            "via" => Ok(Item::Via),
            other => format.item(other),
        };
        match format.read(&text, internal) {
            Ok(()) => format,
            // Every name above is known.
            Err(_) => Format {
                pieces: vec![Piece::Text(text)],
                vars: Vec::new(),
                json: false,
                dash_empty: false,
            },
        }
    }

    /// The JSON object `log-format-json` writes without a `log-format`.
    pub fn json_default() -> Format {
        let names = [
            "addr", "user", "ltime", "method", "uri", "proto", "status", "rsize", "hsize", "msecs",
            "referer", "uagent", "host", "pid", "wid", "core",
        ];
        let text: String = names.iter().map(|n| format!("%({n})")).collect();
        // Every name is in NAMES: this cannot fail.
        Format::parse(&text, true).unwrap_or(Format {
            pieces: Vec::new(),
            vars: Vec::new(),
            json: true,
            dash_empty: true,
        })
    }

    pub(crate) fn vars(&self) -> &[String] {
        &self.vars
    }

    pub(crate) fn shows_peer(&self) -> bool {
        self.pieces.iter().any(|piece| matches!(piece, Piece::Item(Item::Peer, _)))
    }

    pub(crate) fn render(&self, facts: &Facts, settings: &Settings) -> Vec<u8> {
        if self.json {
            return self.render_json(facts, settings);
        }
        let mut out = Vec::with_capacity(256);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Item(item, _) => match value(*item, facts, settings) {
                    Value::Text(text) if text.is_empty() && self.dash_empty => out.push(b'-'),
                    Value::Text(text) => out.extend_from_slice(&text),
                    Value::Int(n) => {
                        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes())
                    }
                    Value::Float(f) => {
                        let _ = write!(out, "{f:.6}");
                    }
                },
            }
        }
        out
    }

    fn render_json(&self, facts: &Facts, settings: &Settings) -> Vec<u8> {
        let mut object = serde_json::Map::new();
        for piece in &self.pieces {
            if let Piece::Item(item, name) = piece {
                let json = match value(*item, facts, settings) {
                    Value::Text(text) => {
                        serde_json::Value::String(String::from_utf8_lossy(&text).into_owned())
                    }
                    Value::Int(n) => serde_json::Value::from(n),
                    Value::Float(f) => serde_json::Value::from(f),
                };
                object.insert(name.clone(), json);
            }
        }
        serde_json::to_vec(&object).unwrap_or_default()
    }
}

fn text(bytes: &[u8]) -> Value<'_> {
    Value::Text(Cow::Borrowed(bytes))
}

fn string(text: String) -> Value<'static> {
    Value::Text(Cow::Owned(text.into_bytes()))
}

fn fixed(text: &'static str) -> Value<'static> {
    Value::Text(Cow::Borrowed(text.as_bytes()))
}

/// `/proc/self/statm`'s sizes (virtual, resident) in bytes.
fn memory() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut pages = statm.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    // SAFETY: sysconf only reads a system constant.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    (pages.next().unwrap_or(0) * page, pages.next().unwrap_or(0) * page)
}

fn value<'f>(item: Item, facts: &'f Facts, settings: &Settings) -> Value<'f> {
    let request = &facts.request;
    let micros = || u64::try_from(facts.duration.as_micros()).unwrap_or(u64::MAX);
    let started = || facts.started_micros();
    match item {
        Item::Uri => text(&request.uri),
        Item::Method => text(&request.method),
        Item::User => text(&request.user),
        Item::Addr => match (&request.forwarded_for, settings.x_forwarded_for) {
            (Some(forwarded), true) => text(forwarded),
            _ => text(&request.addr),
        },
        Item::Host => text(&request.host),
        Item::Proto => text(&request.proto),
        Item::Uagent => text(&request.uagent),
        Item::Referer => text(&request.referer),
        Item::Status => Value::Int(u64::from(facts.status)),
        Item::Rsize => Value::Int(facts.body_bytes),
        Item::Hsize => Value::Int(facts.head_bytes),
        Item::Size => Value::Int(facts.body_bytes + facts.head_bytes),
        Item::Cl => Value::Int(request.content_length),
        Item::Micros => Value::Int(micros()),
        Item::Msecs => Value::Int(micros() / 1000),
        Item::Secs => Value::Float(facts.duration.as_secs_f64()),
        Item::Tmsecs => Value::Int(u64::try_from(started() / 1000).unwrap_or(u64::MAX)),
        Item::Tmicros => Value::Int(u64::try_from(started()).unwrap_or(u64::MAX)),
        Item::Time => Value::Int(u64::try_from(facts.started_secs()).unwrap_or(0)),
        Item::Ltime => string(clock::strftime("%d/%b/%Y:%H:%M:%S %z", facts.started_secs())),
        Item::Ftime => match (&settings.date, settings.format_strftime) {
            (Some(date), true) => string(clock::strftime(date, facts.started_secs())),
            _ => string(clock::strftime("%d/%b/%Y:%H:%M:%S %z", facts.started_secs())),
        },
        Item::Ctime => string(clock::ctime(facts.started_secs())),
        Item::Epoch => Value::Int(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        Item::Pid => Value::Int(u64::from(facts.pid)),
        Item::Wid => Value::Int(facts.worker as u64),
        // A request never switches contexts in rwsgi's model: uWSGI's
        // count for a non-async request.
        Item::Switches => Value::Int(1),
        Item::Vars => Value::Int(request.vars as u64),
        Item::Core => Value::Int(facts.core as u64),
        Item::Vsz => Value::Int(memory().0),
        Item::Rss => Value::Int(memory().1),
        Item::VszM => Value::Int(memory().0 / (1024 * 1024)),
        Item::RssM => Value::Int(memory().1 / (1024 * 1024)),
        Item::Pktsize => Value::Int(request.vars_bytes as u64),
        Item::Modifier1 | Item::Modifier2 => Value::Int(0),
        Item::Headers => Value::Int(facts.headers as u64),
        Item::Werr => Value::Int(u64::from(facts.write_errors)),
        Item::Rerr => Value::Int(u64::from(facts.read_errors)),
        Item::Ioerr => Value::Int(u64::from(facts.read_errors) + u64::from(facts.write_errors)),
        Item::Var(index) => {
            request.wanted.get(index).and_then(Option::as_ref).map_or(fixed(""), |v| text(v))
        }
        Item::Peer => text(facts.peer.as_bytes()),
        Item::Protocol => text(facts.protocol.as_bytes()),
        Item::Requests => Value::Int(facts.requests),
        Item::Unit => fixed(if settings.micros { "micros" } else { "msecs" }),
        Item::Via => fixed(if facts.sendfile { " via sendfile() " } else { " " }),
    }
}

#[cfg(test)]
mod tests;
