//! The request log, as uWSGI writes it: which requests are logged
//! (`disable-logging` with `log-4xx`, `log-5xx`, `log-slow`, `log-big`,
//! `log-zero`, `log-sendfile`), and the line for each, in uWSGI's default
//! format or a `log-format` of its `%(variables)`, or as one JSON object
//! (`log-format-json`). The core gathers the [`Facts`] of a request and
//! hands the line this crate makes to [`write_line`], which never blocks.
//! [`syslog`] makes syslog messages of log lines.

mod clock;
mod facts;
mod format;
pub mod syslog;
mod writer;

pub use facts::{Captured, Facts};
pub use format::{Format, FormatError};
pub use writer::{flush, send_requests_to, write_line};

use std::time::Duration;

/// The request-log options, as the config gives them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `disable-logging`: only requests a `log-*` condition picks.
    pub disabled: bool,
    /// `log-format`: `%(var)` items in text; `None`: uWSGI's default line.
    pub format: Option<String>,
    /// `log-format-json`: one JSON object per request instead.
    pub json: bool,
    /// `log-format-strftime`: `%(ftime)` in `log-date`'s format.
    pub format_strftime: bool,
    /// `log-date = FORMAT`: the `strftime` format of `%(ftime)` (with
    /// `log-format-strftime`, as in uWSGI).
    pub date: Option<String>,
    pub micros: bool,
    pub x_forwarded_for: bool,
    pub log_4xx: bool,
    pub log_5xx: bool,
    pub slow: Option<Duration>,
    pub big: Option<u64>,
    pub zero: bool,
    pub sendfile: bool,
    /// `log-ioerror`: both a read and a write error (as uWSGI asks).
    pub ioerror: bool,
}

/// The request log, ready: decides and formats.
#[derive(Debug)]
pub struct AccessLog {
    format: Format,
    settings: Settings,
}

impl AccessLog {
    pub fn new(settings: Settings) -> Result<AccessLog, FormatError> {
        let format = match &settings.format {
            Some(text) => Format::parse(text, settings.json)?,
            None if settings.json => Format::json_default(),
            None => Format::uwsgi_default(settings.micros),
        };
        Ok(AccessLog { format, settings })
    }

    /// Whether every request is logged unless a condition says so; with
    /// `disable-logging` and no condition, nothing is ever logged, and
    /// the core need not gather anything.
    pub fn logs_anything(&self) -> bool {
        let s = &self.settings;
        !s.disabled
            || s.log_4xx
            || s.log_5xx
            || s.slow.is_some()
            || s.big.is_some()
            || s.zero
            || s.sendfile
            || s.ioerror
    }

    /// Whether the line shows the connection's peer (worth formatting).
    pub fn shows_peer(&self) -> bool {
        self.format.shows_peer()
    }

    /// The request variables `var.NAME` items need, to keep from the
    /// environ before it goes to the app.
    pub fn wanted_vars(&self) -> &[String] {
        self.format.vars()
    }

    /// Whether this request is logged.
    pub fn wants(&self, facts: &Facts) -> bool {
        let s = &self.settings;
        !s.disabled
            || (s.log_4xx && (400..500).contains(&facts.status))
            || (s.log_5xx && (500..600).contains(&facts.status))
            || s.slow.is_some_and(|slow| facts.duration >= slow)
            || s.big.is_some_and(|big| facts.body_bytes >= big)
            || (s.zero && facts.body_bytes == 0)
            || (s.sendfile && facts.sendfile)
            || (s.ioerror && facts.read_errors > 0 && facts.write_errors > 0)
    }

    /// The line for this request, with its newline.
    pub fn line(&self, facts: &Facts) -> Vec<u8> {
        let mut line = self.format.render(facts, &self.settings);
        line.push(b'\n');
        line
    }
}
