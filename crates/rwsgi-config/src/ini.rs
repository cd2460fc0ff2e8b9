//! The ini syntax uWSGI reads, as a pure function of the text: sections,
//! `key = value` lines in file order (repeated keys kept), bare keys,
//! comments. What the keys mean is [`crate::files`]'s business.

/// One `key = value` (or bare `key`) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The section it is in; `""` before any section header.
    pub section: String,
    pub key: String,
    /// `None` for a bare key.
    pub value: Option<String>,
    /// 1-based.
    pub line: usize,
}

/// A parsed file: every section header and every entry, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub sections: Vec<String>,
    pub entries: Vec<IniEntry>,
}

/// A line that is not ini.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// Parses raw file bytes: UTF-8 (an optional BOM is skipped), else an error
/// naming the first line that is not.
pub fn parse_bytes(bytes: &[u8]) -> Result<Ini, SyntaxError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(err) => {
            let line = bytes[..err.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            Err(SyntaxError { line, reason: "not UTF-8 text".to_string() })
        }
    }
}

/// Parses ini text into its entries, in file order.
pub fn parse(text: &str) -> Result<Ini, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut section = String::new();
    let mut ini = Ini::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |reason: &str| SyntaxError { line, reason: reason.to_string() };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with([';', '#']) {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let name = strip_inline_comment(header)
                .strip_suffix(']')
                .ok_or_else(|| error("a section header must end with ]"))?
                .trim();
            if name.is_empty() {
                return Err(error("empty section name"));
            }
            section = name.to_string();
            ini.sections.push(section.clone());
            continue;
        }
        let (key, value) = match trimmed.split_once('=') {
            Some((key, value)) => {
                (key.trim(), Some(strip_inline_comment(value.trim()).to_string()))
            }
            None => (strip_inline_comment(trimmed), None),
        };
        if key.is_empty() {
            return Err(error("an option name is missing before ="));
        }
        if key.contains(char::is_whitespace) {
            return Err(error(&format!("{key:?} is not an option name (want key = value)")));
        }
        ini.entries.push(IniEntry { section: section.clone(), key: key.to_string(), value, line });
    }
    Ok(ini)
}

/// Cuts a comment that follows a value: whitespace, then `;` or `#`
/// (`socket = :9000   ; uwsgi`). A `;` or `#` inside a value stays.
fn strip_inline_comment(text: &str) -> &str {
    let cut = text
        .char_indices()
        .zip(text.chars().skip(1))
        .find(|((_, c), next)| c.is_whitespace() && matches!(next, ';' | '#'))
        .map(|((at, _), _)| at);
    match cut {
        Some(at) => text[..at].trim_end(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entries(text: &str) -> Vec<(String, String, Option<String>, usize)> {
        parse(text)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.section, e.key, e.value, e.line))
            .collect()
    }

    fn entry(
        section: &str,
        key: &str,
        value: Option<&str>,
        line: usize,
    ) -> (String, String, Option<String>, usize) {
        (section.to_string(), key.to_string(), value.map(str::to_string), line)
    }

    #[test]
    fn the_rules() {
        let text = "\u{feff}; comment\n# comment\nbefore = any section\n[uwsgi]\n\
                    socket = 127.0.0.1:9000   ; uwsgi protocol\n\
                    socket=/tmp/a.sock\n  master  \n\
                    env = A=B\r\n\
                    env = C=d;e#f  # comment\n\
                    empty =\n\
                    [ other ] ; trailing\nprocesses = 2\n";
        assert_eq!(
            entries(text),
            vec![
                entry("", "before", Some("any section"), 3),
                entry("uwsgi", "socket", Some("127.0.0.1:9000"), 5),
                entry("uwsgi", "socket", Some("/tmp/a.sock"), 6),
                entry("uwsgi", "master", None, 7),
                entry("uwsgi", "env", Some("A=B"), 8),
                entry("uwsgi", "env", Some("C=d;e#f"), 9),
                entry("uwsgi", "empty", Some(""), 10),
                entry("other", "processes", Some("2"), 12),
            ]
        );
        assert_eq!(parse(text).unwrap().sections, ["uwsgi", "other"]);
    }

    #[test]
    fn bad_syntax_names_the_line() {
        for (text, line, reason) in [
            ("[uwsgi]\n[broken\n", 2, "must end with ]"),
            ("[uwsgi]\nx = 1\n[]\n", 3, "empty section"),
            ("[uwsgi]\n\n = value\n", 3, "missing before ="),
            ("[uwsgi]\nthis is not ini\n", 2, "not an option name"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.reason.contains(reason), "{text:?}: {}", err.reason);
        }
        let err = parse_bytes(b"[uwsgi]\nchdir = /\xff\n").unwrap_err();
        assert_eq!((err.line, err.reason.as_str()), (2, "not UTF-8 text"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_bytes(&bytes);
        }

        #[test]
        fn never_panics_on_ini_like_text(text in "([\\[\\];#= \t\r\nab%$()\u{feff}é]{0,12}\n){0,20}") {
            if let Ok(ini) = parse(&text) {
                for entry in ini.entries {
                    proptest::prop_assert!(!entry.key.is_empty());
                    proptest::prop_assert!(entry.line >= 1);
                }
            }
        }
    }
}
