//! The response for a file that was found: validators, conditional
//! requests (RFC 9110 §13), a single byte range (§14), a compressed
//! sibling, `HEAD`.

use crate::StaticFiles;
use crate::resolve::Found;
use crate::rules::accepts;
use bytes::Bytes;
use rwsgi_proto::{CgiVar, EnvKey, Environ, Event, ResponseHead};
use std::fs::{File, Metadata};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a request asks of a static file, read from its environ in one pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct Asked<'e> {
    pub method: &'e [u8],
    pub path_info: &'e [u8],
    pub uri: &'e [u8],
    pub if_none_match: Option<&'e [u8]>,
    pub if_modified_since: Option<&'e [u8]>,
    pub range: Option<&'e [u8]>,
    pub if_range: Option<&'e [u8]>,
    pub accept_encoding: &'e [u8],
}

impl<'e> Asked<'e> {
    pub fn from_environ(environ: &'e Environ) -> Asked<'e> {
        let mut asked = Asked::default();
        // Later entries replace earlier ones, as in the dict the app gets.
        for (key, value) in &environ.vars {
            let value = &value[..];
            match key {
                EnvKey::Cgi(CgiVar::RequestMethod) => asked.method = value,
                EnvKey::Cgi(CgiVar::PathInfo) => asked.path_info = value,
                EnvKey::Cgi(CgiVar::RequestUri) => asked.uri = value,
                EnvKey::Cgi(_) => {}
                EnvKey::Other(name) => match &name[..] {
                    b"HTTP_IF_NONE_MATCH" => asked.if_none_match = Some(value),
                    b"HTTP_IF_MODIFIED_SINCE" => asked.if_modified_since = Some(value),
                    b"HTTP_RANGE" => asked.range = Some(value),
                    b"HTTP_IF_RANGE" => asked.if_range = Some(value),
                    b"HTTP_ACCEPT_ENCODING" => asked.accept_encoding = value,
                    _ => {}
                },
            }
        }
        asked
    }
}

/// 9999-12-31 23:59:59 UTC: the last date HTTP's format can write.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

fn clamp(when: SystemTime) -> SystemTime {
    when.min(UNIX_EPOCH + std::time::Duration::from_secs(LAST_HTTP_DATE))
}

/// A compressed representation, and the suffix of its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Br,
    Gzip,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// Which bytes of the file go out.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Whole,
    /// `start..=end`.
    Range(u64, u64),
    Unsatisfiable,
}

/// The response serving `found`.
pub(crate) fn file(found: Found<'_>, asked: &Asked<'_>, files: &StaticFiles) -> Vec<Event> {
    let name = found.name.as_path();
    let content_type = files.mime.of(name);
    let compressible = files.gzip.applies(name);
    let negotiated = if compressible { negotiate(&found, asked.accept_encoding) } else { None };
    let coding = negotiated.as_ref().map(|(coding, ..)| *coding);
    let (file, meta) = match negotiated {
        Some((_, file, meta)) => (file, meta),
        None => (found.file, found.meta),
    };
    let size = meta.len();
    // HTTP dates end at year 9999: a file stamped later is taken as then.
    let mtime_secs = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
        .min(LAST_HTTP_DATE);
    let mtime = UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs);
    let etag = format!("\"{mtime_secs:x}-{size:x}{}\"", coding.map_or("", Coding::suffix));
    let last_modified =
        httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs));
    let mut validators: Vec<(&'static str, String)> =
        vec![("ETag", etag.clone()), ("Last-Modified", last_modified)];
    if compressible {
        validators.push(("Vary", "Accept-Encoding".into()));
    }
    if let Some(expires) = files.expires.when(name, asked, content_type, mtime) {
        validators.push(("Expires", httpdate::fmt_http_date(clamp(expires))));
    }
    let with = |mut head: ResponseHead, headers: &[(&'static str, String)]| {
        for (name, value) in headers {
            head.push_header(Bytes::from_static(name.as_bytes()), Bytes::from(value.clone()));
        }
        head
    };
    if not_modified(asked, &etag, mtime_secs) {
        let head = with(ResponseHead::new(304), &validators);
        return vec![Event::whole(head, Bytes::new())];
    }
    let part =
        if asked.method == b"GET" { part(asked, size, &etag, mtime_secs) } else { Part::Whole };
    let (status, offset, len) = match part {
        Part::Whole => (200, 0, size),
        Part::Range(start, end) => (206, start, end - start + 1),
        Part::Unsatisfiable => {
            let head =
                with(ResponseHead::new(416), &[("Content-Range", format!("bytes */{size}"))]);
            return vec![Event::whole(head, Bytes::new())];
        }
    };
    let mut headers = vec![("Content-Type", content_type.to_string())];
    headers.extend(validators);
    headers.push(("Accept-Ranges", "bytes".into()));
    if let Some(coding) = coding {
        headers.push(("Content-Encoding", coding.name().into()));
    }
    if let Part::Range(start, end) = part {
        headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
    }
    let mut head = with(ResponseHead::new(status), &headers);
    head.set_content_length(len);
    if asked.method == b"HEAD" || len == 0 {
        return vec![Event::Whole { head, body: Vec::new(), complete: true }];
    }
    vec![
        Event::Head { head, body: Vec::new() },
        Event::File { file, offset, len },
        Event::End { complete: true },
    ]
}

/// The compressed sibling to serve, best first: `br`, then `gzip`, each
/// only if the client accepts it and the file exists.
fn negotiate(found: &Found<'_>, accept_encoding: &[u8]) -> Option<(Coding, File, Metadata)> {
    [Coding::Br, Coding::Gzip].into_iter().find_map(|coding| {
        if !accepts(accept_encoding, coding.name()) {
            return None;
        }
        found.sibling(coding.suffix()).map(|(file, meta)| (coding, file, meta))
    })
}

/// RFC 9110 §13.2.2: `If-None-Match` decides when present (weak
/// comparison, `*` matches); otherwise `If-Modified-Since`.
fn not_modified(asked: &Asked<'_>, etag: &str, mtime_secs: u64) -> bool {
    if let Some(tags) = asked.if_none_match {
        let tags = String::from_utf8_lossy(tags);
        let ours = etag.trim_start_matches("W/");
        return tags
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    asked.if_modified_since.and_then(http_date_secs).is_some_and(|since| mtime_secs <= since)
}

fn http_date_secs(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let when: SystemTime = httpdate::parse_http_date(text.trim()).ok()?;
    when.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// RFC 9110 §14: one `bytes` range, if `If-Range` (when sent) still names
/// this file; several ranges, another unit or a malformed value get the
/// whole file, as the RFC allows.
fn part(asked: &Asked<'_>, size: u64, etag: &str, mtime_secs: u64) -> Part {
    let Some(range) = asked.range.and_then(|r| std::str::from_utf8(r).ok()) else {
        return Part::Whole;
    };
    if let Some(if_range) = asked.if_range {
        let current = if if_range.starts_with(b"\"") {
            if_range == etag.as_bytes()
        } else {
            http_date_secs(if_range) == Some(mtime_secs)
        };
        if !current {
            return Part::Whole;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else { return Part::Whole };
    if spec.contains(',') {
        return Part::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Part::Whole };
    let number = |text: &str| -> Option<Option<u64>> {
        let text = text.trim();
        if text.is_empty() {
            return Some(None);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Too many digits to be a position in any file: the end of it.
        Some(Some(text.parse().unwrap_or(u64::MAX)))
    };
    let (Some(first), Some(last)) = (number(first), number(last)) else { return Part::Whole };
    match (first, last) {
        (Some(start), last) => {
            if last.is_some_and(|end| end < start) {
                return Part::Whole;
            }
            if start >= size {
                return Part::Unsatisfiable;
            }
            Part::Range(start, last.map_or(size - 1, |end| end.min(size - 1)))
        }
        (None, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                return Part::Unsatisfiable;
            }
            Part::Range(size - suffix.min(size), size - 1)
        }
        (None, None) => Part::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked_range<'a>(range: &'a str, if_range: Option<&'a str>) -> Asked<'a> {
        Asked {
            method: b"GET",
            range: Some(range.as_bytes()),
            if_range: if_range.map(str::as_bytes),
            ..Asked::default()
        }
    }

    #[test]
    fn byte_ranges() {
        let etag = "\"1-64\"";
        let cases: &[(&str, Part)] = &[
            ("bytes=0-9", Part::Range(0, 9)),
            ("bytes=90-", Part::Range(90, 99)),
            ("bytes=-10", Part::Range(90, 99)),
            ("bytes=-1000", Part::Range(0, 99)),
            ("bytes=50-5000", Part::Range(50, 99)),
            ("bytes= 5 - 6 ", Part::Range(5, 6)),
            ("bytes=99999999999999999999999-", Part::Unsatisfiable),
            ("bytes=100-", Part::Unsatisfiable),
            ("bytes=-0", Part::Unsatisfiable),
            ("bytes=9-5", Part::Whole),
            ("bytes=0-1,5-6", Part::Whole),
            ("items=0-1", Part::Whole),
            ("bytes=a-b", Part::Whole),
            ("bytes=-", Part::Whole),
            ("bytes=5", Part::Whole),
        ];
        for (range, want) in cases {
            assert_eq!(&part(&asked_range(range, None), 100, etag, 1), want, "{range}");
        }
        assert_eq!(part(&asked_range("bytes=0-0", None), 0, etag, 1), Part::Unsatisfiable);
    }

    #[test]
    fn if_range_must_name_this_version() {
        let etag = "\"5f5e100-64\"";
        let mtime = 100_000_000;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime));
        let older = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime - 1));
        let part_if =
            |if_range: &str| part(&asked_range("bytes=0-0", Some(if_range)), 100, etag, mtime);
        assert_eq!(part_if(etag), Part::Range(0, 0));
        assert_eq!(part_if(&date), Part::Range(0, 0));
        assert_eq!(part_if("\"other\""), Part::Whole);
        assert_eq!(part_if(&format!("W/{etag}")), Part::Whole, "a weak tag never matches");
        assert_eq!(part_if(&older), Part::Whole);
    }

    #[test]
    fn conditional_requests() {
        let etag = "\"a-b\"";
        fn none_match(tags: &str) -> Asked<'_> {
            Asked { if_none_match: Some(tags.as_bytes()), ..Asked::default() }
        }
        assert!(not_modified(&none_match("\"a-b\""), etag, 10));
        assert!(not_modified(&none_match("\"x\", W/\"a-b\""), etag, 10));
        assert!(not_modified(&none_match("*"), etag, 10));
        assert!(!not_modified(&none_match("\"x\""), etag, 10));
        let since =
            |secs: u64| httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let (at, before) = (since(10), since(9));
        fn modified_since(date: &str) -> Asked<'_> {
            Asked { if_modified_since: Some(date.as_bytes()), ..Asked::default() }
        }
        assert!(not_modified(&modified_since(&at), etag, 10));
        assert!(!not_modified(&modified_since(&before), etag, 10));
        assert!(!not_modified(&modified_since("yesterday"), etag, 10));
        let both = Asked {
            if_none_match: Some(b"\"x\""),
            if_modified_since: Some(at.as_bytes()),
            ..Asked::default()
        };
        assert!(!not_modified(&both, etag, 10), "If-None-Match decides when present");
    }
}
