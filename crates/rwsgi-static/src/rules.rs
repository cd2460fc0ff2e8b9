//! The per-file rules: which `Content-Type`, which `Expires`, whether a
//! compressed sibling may be served.

use crate::reply::Asked;
use crate::{Settings, StaticError, regex_pair};
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// When an `Expires` rule counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Now,
    Mtime,
}

#[derive(Debug)]
struct Rule<K> {
    key: K,
    after: Duration,
    from: From,
}

/// The `static-expires*` rules, in uWSGI's order: by file name, by
/// PATH_INFO, by REQUEST_URI, by content type; within each, the rules
/// counting from now first. The first match gives the one `Expires`
/// header. (uWSGI adds one per kind that matches: several headers.)
#[derive(Debug, Default)]
pub(crate) struct Expires {
    file: Vec<Rule<Regex>>,
    path_info: Vec<Rule<Regex>>,
    uri: Vec<Rule<Regex>>,
    content_type: Vec<Rule<String>>,
}

fn seconds(option: &'static str, value: &str, text: &str) -> Result<Duration, StaticError> {
    text.trim().parse::<u64>().map(Duration::from_secs).map_err(|_| {
        StaticError::invalid(option, value, format!("{text:?} is no number of seconds"))
    })
}

fn regex_rules(
    option: &'static str,
    now: &[String],
    mtime: &[String],
) -> Result<Vec<Rule<Regex>>, StaticError> {
    let mut rules = Vec::new();
    for (values, from) in [(now, From::Now), (mtime, From::Mtime)] {
        for value in values {
            let (key, secs) = regex_pair(option, value)?;
            rules.push(Rule { key, after: seconds(option, value, secs)?, from });
        }
    }
    Ok(rules)
}

impl Expires {
    pub(crate) fn new(s: &Settings) -> Result<Expires, StaticError> {
        let mut content_type = Vec::new();
        for (values, from) in [(&s.expires_type, From::Now), (&s.expires_type_mtime, From::Mtime)] {
            for value in values {
                let Some((key, secs)) = value.split_once('=') else {
                    return Err(StaticError::invalid(
                        "static-expires-type",
                        value,
                        "want TYPE=SECONDS",
                    ));
                };
                let after = seconds("static-expires-type", value, secs)?;
                content_type.push(Rule { key: key.trim().to_string(), after, from });
            }
        }
        Ok(Expires {
            file: regex_rules("static-expires", &s.expires_file, &s.expires_file_mtime)?,
            path_info: regex_rules(
                "static-expires-path-info",
                &s.expires_path_info,
                &s.expires_path_info_mtime,
            )?,
            uri: regex_rules("static-expires-uri", &s.expires_uri, &s.expires_uri_mtime)?,
            content_type,
        })
    }

    /// When the response expires, if a rule says.
    pub(crate) fn when(
        &self,
        file: &Path,
        asked: &Asked<'_>,
        content_type: &str,
        mtime: SystemTime,
    ) -> Option<SystemTime> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let file_name = text(file.as_os_str().as_encoded_bytes());
        let path_info = text(asked.path_info);
        let uri = text(asked.uri);
        let rule = [(&self.file, &file_name), (&self.path_info, &path_info), (&self.uri, &uri)]
            .into_iter()
            .find_map(|(rules, subject)| rules.iter().find(|r| r.key.is_match(subject)))
            .map(|r| (r.after, r.from))
            .or_else(|| {
                self.content_type.iter().find(|r| r.key == content_type).map(|r| (r.after, r.from))
            })?;
        let base = match rule.1 {
            From::Now => SystemTime::now(),
            From::Mtime => mtime,
        };
        base.checked_add(rule.0)
    }
}

/// Which files may be served from a compressed sibling (`FILE.br`,
/// `FILE.gz`).
#[derive(Debug, Default)]
pub(crate) struct Gzip {
    all: bool,
    dirs: Vec<String>,
    exts: Vec<String>,
    regexes: Vec<Regex>,
}

impl Gzip {
    pub(crate) fn new(s: &Settings) -> Result<Gzip, StaticError> {
        let regexes = s
            .gzip
            .iter()
            .map(|value| {
                Regex::new(value)
                    .map_err(|err| StaticError::invalid("static-gzip", value, err.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Gzip { all: s.gzip_all, dirs: s.gzip_dirs.clone(), exts: s.gzip_exts.clone(), regexes })
    }

    pub(crate) fn applies(&self, file: &Path) -> bool {
        let bytes = file.as_os_str().as_encoded_bytes();
        self.all
            || self.dirs.iter().any(|dir| bytes.starts_with(dir.as_bytes()))
            || self.exts.iter().any(|ext| bytes.ends_with(ext.as_bytes()))
            || (!self.regexes.is_empty()
                && std::str::from_utf8(bytes)
                    .is_ok_and(|name| self.regexes.iter().any(|regex| regex.is_match(name))))
    }
}

/// Whether an `Accept-Encoding` value accepts `coding` (named, with a
/// quality above zero).
pub(crate) fn accepts(accept_encoding: &[u8], coding: &str) -> bool {
    let Ok(text) = std::str::from_utf8(accept_encoding) else { return false };
    text.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .next()
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        name.eq_ignore_ascii_case(coding) && quality > 0.0
    })
}

/// `Content-Type` by file extension: the `mimefile` files first (later
/// ones win), then the built-in table; unknown types are
/// `application/octet-stream`, so a browser never guesses.
#[derive(Debug, Default)]
pub(crate) struct MimeTypes {
    extra: HashMap<String, String>,
}

impl MimeTypes {
    pub(crate) fn new(files: &[String]) -> Result<MimeTypes, StaticError> {
        let mut extra = HashMap::new();
        for file in files {
            match std::fs::read_to_string(file) {
                Ok(text) => parse_mime_types(&text, &mut extra),
                // As uWSGI: a missing file is logged, and the rest serves.
                Err(err) => tracing::warn!("mimefile {file}: {err}: using the built-in types"),
            }
        }
        Ok(MimeTypes { extra })
    }

    pub(crate) fn of(&self, file: &Path) -> &str {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if let Some(found) = self.extra.get(&ext.to_ascii_lowercase()) {
            return found;
        }
        mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream")
    }
}

/// `/etc/mime.types` lines: `TYPE EXT EXT...`, `#` comments.
fn parse_mime_types(text: &str, into: &mut HashMap<String, String>) {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(content_type) = words.next() else { continue };
        for ext in words {
            into.insert(ext.to_ascii_lowercase(), content_type.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_needs_the_name_and_a_quality_above_zero() {
        assert!(accepts(b"gzip, deflate, br", "br"));
        assert!(accepts(b"GZIP", "gzip"));
        assert!(accepts(b"gzip;q=0.5", "gzip"));
        assert!(!accepts(b"gzip;q=0", "gzip"));
        assert!(!accepts(b"x-gzipped", "gzip"), "a name, not a substring");
        assert!(!accepts(b"", "gzip"));
    }

    #[test]
    fn mime_types_from_a_file_win_over_the_table() {
        let mut map = HashMap::new();
        parse_mime_types("# comment\ntext/x-special  spc SPX\n\napplication/json json\n", &mut map);
        let types = MimeTypes { extra: map };
        assert_eq!(types.of(Path::new("/a/b.spc")), "text/x-special");
        assert_eq!(types.of(Path::new("/a/b.SPX")), "text/x-special");
        assert_eq!(types.of(Path::new("/a/b.css")), "text/css");
        assert_eq!(types.of(Path::new("/a/b.unknown-ext")), "application/octet-stream");
        assert_eq!(types.of(Path::new("/a/noext")), "application/octet-stream");
    }
}
