//! The ini syntax uWSGI reads, as a pure function of the text: sections,
//! `key = value` lines in file order (repeated keys kept), bare keys, and
//! comments on lines of their own. As in uWSGI, a value is the whole rest
//! of its line: a `;` or `#` after a value is part of it. What the keys
//! mean is [`crate::reader`]'s business.

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

/// A parsed file: every section header and entry in file order, and the
/// lines that could not be read (the rest is still read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub sections: Vec<String>,
    pub entries: Vec<IniEntry>,
    pub errors: Vec<SyntaxError>,
}

/// A line that is not ini.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// Parses raw file bytes. A line that is not UTF-8 is an error only if it
/// holds an option: comments in another encoding are fine.
pub fn parse_bytes(bytes: &[u8]) -> Ini {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut ini = Ini::default();
    let mut section = String::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        match std::str::from_utf8(raw) {
            Ok(text) => parse_line(text, line, &mut section, &mut ini),
            Err(_) => {
                let trimmed = raw.trim_ascii_start();
                if !trimmed.is_empty() && !trimmed.starts_with(b";") && !trimmed.starts_with(b"#") {
                    ini.errors.push(SyntaxError { line, reason: "not UTF-8 text".to_string() });
                }
            }
        }
    }
    ini
}

/// Parses ini text.
pub fn parse(text: &str) -> Ini {
    parse_bytes(text.as_bytes())
}

fn parse_line(raw: &str, line: usize, section: &mut String, ini: &mut Ini) {
    let trimmed = raw.trim_matches([' ', '\t', '\r']);
    if trimmed.is_empty() || trimmed.starts_with([';', '#']) {
        return;
    }
    if let Some(header) = trimmed.strip_prefix('[') {
        match header.strip_suffix(']').map(str::trim) {
            Some(name) if !name.is_empty() => {
                *section = name.to_string();
                ini.sections.push(section.clone());
            }
            _ => ini
                .errors
                .push(SyntaxError { line, reason: "a section header is [name]".to_string() }),
        }
        return;
    }
    let (key, value) = match trimmed.split_once('=') {
        Some((key, value)) => {
            (key.trim_end_matches([' ', '\t']), Some(value.trim_start_matches([' ', '\t'])))
        }
        None => (trimmed, None),
    };
    ini.entries.push(IniEntry {
        section: section.clone(),
        key: key.to_string(),
        value: value.map(str::to_string),
        line,
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entries(text: &str) -> Vec<(String, String, Option<String>, usize)> {
        parse(text).entries.into_iter().map(|e| (e.section, e.key, e.value, e.line)).collect()
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
                    socket = 127.0.0.1:9000   ; not a comment\n\
                    socket=/tmp/a.sock\n  master  \n\
                    env = A=B\r\n\
                    env = C=d;e#f  # part of the value\n\
                    empty =\n\
                    [ other ]\nprocesses = 2\n\tlog-format = %(addr) \"%(method)\"\t\n";
        assert_eq!(
            entries(text),
            vec![
                entry("", "before", Some("any section"), 3),
                entry("uwsgi", "socket", Some("127.0.0.1:9000   ; not a comment"), 5),
                entry("uwsgi", "socket", Some("/tmp/a.sock"), 6),
                entry("uwsgi", "master", None, 7),
                entry("uwsgi", "env", Some("A=B"), 8),
                entry("uwsgi", "env", Some("C=d;e#f  # part of the value"), 9),
                entry("uwsgi", "empty", Some(""), 10),
                entry("other", "processes", Some("2"), 12),
                entry("other", "log-format", Some("%(addr) \"%(method)\""), 13),
            ]
        );
        assert_eq!(parse(text).sections, ["uwsgi", "other"]);
        assert!(parse(text).errors.is_empty());
    }

    #[test]
    fn odd_lines_are_kept_for_the_reader_to_judge() {
        // uWSGI takes these as options with odd names; so do we, and the
        // reader warns that they are no options.
        assert_eq!(
            entries("[uwsgi]\nthis is not ini\n = value\n"),
            vec![entry("uwsgi", "this is not ini", None, 2), entry("uwsgi", "", Some("value"), 3)]
        );
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_is_read() {
        let ini = parse_bytes(b"[uwsgi]\n[broken\nx = 1\n[]\n# caf\xe9\nchdir = /\xff\ny = 2\n");
        let errors: Vec<(usize, &str)> =
            ini.errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        assert_eq!(
            errors,
            [
                (2, "a section header is [name]"),
                (4, "a section header is [name]"),
                (6, "not UTF-8 text")
            ]
        );
        let keys: Vec<&str> = ini.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["x", "y"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_bytes(&bytes);
        }

        #[test]
        fn every_entry_names_a_real_line(text in "([\\[\\];#= \t\r\nab%$()\u{feff}é]{0,12}\n){0,20}") {
            let lines = text.split('\n').count();
            for entry in parse(&text).entries {
                proptest::prop_assert!(entry.line >= 1 && entry.line <= lines);
            }
        }
    }
}
