//! YAML, JSON and XML config files as uWSGI reads them: the options of one
//! section (`uwsgi` unless named), in file order, repeated keys kept. Each
//! reader returns plain `key = value` lines; [`crate::reader`] gives them
//! their meaning exactly as it does an ini file's.

/// One option line of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub key: String,
    /// `None` for a key with no value (YAML `master:`, XML `<master/>`).
    pub value: Option<String>,
    /// 1-based line number, where the format has one.
    pub line: Option<usize>,
}

/// A section of a file: its lines, or `None` if the file has no such
/// section; and what a reader had to say about the file.
#[derive(Debug, Default)]
pub(crate) struct Section {
    pub lines: Option<Vec<Line>>,
    /// Problems with single lines: the rest is still read.
    pub errors: Vec<(Option<usize>, String)>,
    pub warnings: Vec<String>,
}

/// A file whose syntax cannot be read at all.
pub(crate) type FormatError = String;

/// A YAML file. uWSGI's default build reads YAML with its own lenient line
/// reader, so real files are often not valid YAML (`log-format: %(addr)
/// ...` starts a plain scalar with `%`). Valid YAML is read as YAML (lists,
/// quotes); anything else as uWSGI's line reader does, with a warning.
pub(crate) fn yaml(text: &str, section: &str) -> Section {
    match yaml_events(text, section) {
        Ok(found) => found,
        Err(error) => {
            let mut found = yaml_lines(text, section);
            found.warnings.push(format!(
                "not valid YAML ({error}): read line by line, as uWSGI's own YAML reader does"
            ));
            found
        }
    }
}

/// Valid YAML, through the event parser (which keeps order, repeated keys
/// and line numbers).
fn yaml_events(text: &str, section: &str) -> Result<Section, String> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let mut next = move || parser.next_token().map_err(|err| err.to_string());
    let scalar = |event: &Event| match event {
        Event::Scalar(text, style, _, _) => {
            let null = *style == yaml_rust2::scanner::TScalarStyle::Plain
                && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
            Some((!null).then(|| text.clone()))
        }
        _ => None,
    };
    let mut found = Section::default();
    // Walk to the top-level mapping.
    loop {
        match next()?.0 {
            Event::MappingStart(..) => break,
            Event::StreamEnd | Event::SequenceStart(..) | Event::Scalar(..) => return Ok(found),
            _ => {}
        }
    }
    // Top-level keys; the asked one holds the options.
    loop {
        let (event, _) = next()?;
        let key = match &event {
            Event::MappingEnd | Event::StreamEnd => return Ok(found),
            other => scalar(other).flatten().unwrap_or_default(),
        };
        let (value, _) = next()?;
        if key != section {
            skip_node(&value, &mut next)?;
            continue;
        }
        let mut lines = Vec::new();
        match value {
            Event::MappingStart(..) => {}
            ref empty if scalar(empty) == Some(None) => {
                return Ok(Section { lines: Some(lines), ..found });
            }
            _ => return Err(format!("{section} must hold option: value pairs")),
        }
        loop {
            let (event, mark) = next()?;
            let line = Some(mark.line());
            let key = match &event {
                Event::MappingEnd => break,
                other => match scalar(other) {
                    Some(key) => key.unwrap_or_default(),
                    None => return Err("option names must be plain text".to_string()),
                },
            };
            let (value, _) = next()?;
            match &value {
                Event::SequenceStart(..) => loop {
                    let (item, item_mark) = next()?;
                    match scalar(&item) {
                        Some(value) => lines.push(Line {
                            key: key.clone(),
                            value,
                            line: Some(item_mark.line()),
                        }),
                        None if matches!(item, Event::SequenceEnd) => break,
                        None => {
                            found.errors.push((line, format!("{key}: want a list of values")));
                            skip_node(&item, &mut next)?;
                        }
                    }
                },
                other => match scalar(other) {
                    Some(text) => lines.push(Line { key, value: text, line }),
                    None => {
                        found
                            .errors
                            .push((line, format!("{key}: want a value or a list of values")));
                        skip_node(&value, &mut next)?;
                    }
                },
            }
        }
        found.lines = Some(lines);
        return Ok(found);
    }
}

/// Skips the rest of a node whose first event was `first`.
fn skip_node(
    first: &yaml_rust2::parser::Event,
    next: &mut impl FnMut() -> Result<(yaml_rust2::parser::Event, yaml_rust2::scanner::Marker), String>,
) -> Result<(), String> {
    use yaml_rust2::parser::Event;
    let mut depth = match first {
        Event::MappingStart(..) | Event::SequenceStart(..) => 1,
        _ => 0,
    };
    while depth > 0 {
        match next()?.0 {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(())
}

/// uWSGI's own YAML line reader: `#` starts a comment anywhere, the
/// section is the `name:` line and the more-indented lines after it, each
/// `key: value` (split at the first `: `). A list item ends the section,
/// as it does there.
fn yaml_lines(text: &str, section: &str) -> Section {
    let mut found = Section::default();
    let mut lines: Option<Vec<Line>> = None;
    let mut section_depth = 0;
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.split('#').next().unwrap_or_default();
        let depth: usize = raw
            .chars()
            .take_while(|c| c.is_whitespace())
            .map(|c| if c == ' ' { 1 } else { 8 })
            .sum();
        let content = raw.trim();
        if content.is_empty() {
            continue;
        }
        if let Some(options) = lines.as_mut() {
            if depth <= section_depth || content.starts_with(['-', '[', '{']) {
                break;
            }
            let (key, value) = match content.split_once(": ").or_else(|| content.split_once(":\t"))
            {
                Some((key, value)) => (key.trim_end(), Some(value.trim().to_string())),
                None => match content.strip_suffix(':') {
                    Some(key) => (key, None),
                    None => {
                        found.errors.push((Some(index + 1), "want key: value".to_string()));
                        continue;
                    }
                },
            };
            options.push(Line { key: key.to_string(), value, line: Some(index + 1) });
        } else if depth == 0 && content.split(':').next() == Some(section) {
            section_depth = depth;
            lines = Some(Vec::new());
        }
    }
    found.lines = lines;
    found
}

/// A JSON file: the object under the section's key; a value is a string,
/// number, boolean or null, or a list of them, which gives the option once
/// per item.
pub(crate) fn json(text: &str, section: &str) -> Result<Section, FormatError> {
    use serde_json::Value;
    let document: Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
    let mut found = Section::default();
    let Some(options) = document.get(section) else { return Ok(found) };
    let Value::Object(options) = options else {
        return Err(format!("{section} must hold \"option\": value pairs"));
    };
    let text_of = |value: &Value| match value {
        Value::String(text) => Some(Some(text.clone())),
        Value::Number(n) => Some(Some(n.to_string())),
        Value::Bool(b) => Some(Some(b.to_string())),
        Value::Null => Some(None),
        Value::Array(_) | Value::Object(_) => None,
    };
    let mut lines = Vec::new();
    for (key, value) in options {
        let items = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for item in items {
            match text_of(item) {
                Some(value) => lines.push(Line { key: key.clone(), value, line: None }),
                None => found.errors.push((
                    None,
                    format!("{key}: want a string, number, boolean or a list of them"),
                )),
            }
        }
    }
    found.lines = Some(lines);
    Ok(found)
}

/// An XML file: the `<uwsgi>` root element, or the `<uwsgi>` child of the
/// root whose `id` is `id` (`file.xml:id`); each child element is an
/// option (`<socket>:3031</socket>`, `<master/>`). When an id or a mode is
/// asked for, elements with another `id` or `mode` attribute are skipped;
/// `<app mountpoint="/x">module</app>` is `mount = /x=module`.
pub(crate) fn xml(
    text: &str,
    id: Option<&str>,
    mode: Option<&str>,
) -> Result<Section, FormatError> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let document =
        roxmltree::Document::parse_with_options(text, options).map_err(|err| err.to_string())?;
    let mut found = Section::default();
    let root = document.root_element();
    let uwsgi = if root.has_tag_name("uwsgi") {
        Some(root)
    } else {
        root.children().find(|node| {
            node.has_tag_name("uwsgi")
                && match (id, node.attribute("id")) {
                    (Some(wanted), Some(has)) => wanted == has,
                    _ => true,
                }
        })
    };
    let Some(uwsgi) = uwsgi else { return Ok(found) };
    let mut lines = Vec::new();
    for node in uwsgi.children() {
        let line = Some(document.text_pos_at(node.range().start).row as usize);
        if node.is_text() {
            if node.text().is_some_and(|text| !text.trim().is_empty()) {
                // Text (or CDATA) directly in <uwsgi> is Python for uWSGI's eval.
                lines.push(Line {
                    key: "eval".to_string(),
                    value: node.text().map(str::to_string),
                    line,
                });
            }
            continue;
        }
        if !node.is_element() {
            continue;
        }
        // As in uWSGI, an attribute filters only when both sides name one.
        let skipped = |attribute: &str, wanted: Option<&str>| matches!((node.attribute(attribute), wanted), (Some(has), Some(wanted)) if has != wanted);
        if skipped("id", id) || skipped("mode", mode) {
            continue;
        }
        let name = node.tag_name().name();
        let value = node.text().map(str::trim).filter(|text| !text.is_empty()).map(str::to_string);
        if name == "app" {
            let Some(app) = value else { continue };
            let mount = match (node.attribute("mountpoint"), node.attribute("domain")) {
                (Some(mountpoint), _) => format!("{mountpoint}={app}"),
                (None, Some(domain)) => format!("{domain}|={app}"),
                (None, None) => format!("/={app}"),
            };
            lines.push(Line { key: "mount".to_string(), value: Some(mount), line });
            continue;
        }
        lines.push(Line { key: name.to_string(), value, line });
    }
    found.lines = Some(lines);
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pairs(section: &Section) -> Vec<(String, Option<String>, Option<usize>)> {
        section
            .lines
            .as_ref()
            .unwrap()
            .iter()
            .map(|l| (l.key.clone(), l.value.clone(), l.line))
            .collect()
    }

    fn p(
        key: &str,
        value: Option<&str>,
        line: Option<usize>,
    ) -> (String, Option<String>, Option<usize>) {
        (key.to_string(), value.map(str::to_string), line)
    }

    #[test]
    fn valid_yaml_keeps_order_repeats_lists_and_lines() {
        let text = "other:\n  threads: 9\nuwsgi:\n  socket: \":3031\"\n  threads: 4\n  master:\n  \
                    socket: /tmp/a.sock\n  http-socket:\n    - :8000\n    - :8001\n  chmod-socket: 0660\n";
        let section = yaml(text, "uwsgi");
        assert!(section.warnings.is_empty(), "{:?}", section.warnings);
        assert_eq!(
            pairs(&section),
            [
                p("socket", Some(":3031"), Some(4)),
                p("threads", Some("4"), Some(5)),
                p("master", None, Some(6)),
                p("socket", Some("/tmp/a.sock"), Some(7)),
                p("http-socket", Some(":8000"), Some(9)),
                p("http-socket", Some(":8001"), Some(10)),
                p("chmod-socket", Some("0660"), Some(11)),
            ]
        );
        assert_eq!(pairs(&yaml(text, "other")), [p("threads", Some("9"), Some(2))]);
        assert!(yaml(text, "missing").lines.is_none());
    }

    #[test]
    fn yaml_that_is_not_yaml_is_read_as_uwsgi_reads_it() {
        let text = "uwsgi:\n  socket: 127.0.0.1:3031\n  log-format: %(addr) - %(user) [%(ltime)] \"%(method) %(uri)\"\n  \
                    master: true   # a comment\n  vacuum:\nnext:\n  threads: 2\n";
        let section = yaml(text, "uwsgi");
        assert_eq!(section.warnings.len(), 1, "{:?}", section.warnings);
        assert!(section.warnings[0].contains("not valid YAML"));
        assert_eq!(
            pairs(&section),
            [
                p("socket", Some("127.0.0.1:3031"), Some(2)),
                p("log-format", Some("%(addr) - %(user) [%(ltime)] \"%(method) %(uri)\""), Some(3)),
                p("master", Some("true"), Some(4)),
                p("vacuum", None, Some(5)),
            ]
        );
    }

    #[test]
    fn json_keeps_order_and_lists() {
        let text = r#"{"uwsgi": {"socket": [":1", ":2"], "threads": 3, "master": true, "vacuum": null, "bad": {"x": 1}}}"#;
        let section = json(text, "uwsgi").unwrap();
        assert_eq!(
            pairs(&section),
            [
                p("socket", Some(":1"), None),
                p("socket", Some(":2"), None),
                p("threads", Some("3"), None),
                p("master", Some("true"), None),
                p("vacuum", None, None),
            ]
        );
        assert_eq!(section.errors.len(), 1);
        assert!(json("{", "uwsgi").is_err());
        assert!(json(r#"{"uwsgi": 3}"#, "uwsgi").is_err());
        assert!(json(r#"{"other": {}}"#, "uwsgi").unwrap().lines.is_none());
    }

    #[test]
    fn xml_elements_ids_modes_and_apps() {
        let text = "<?xml version=\"1.0\"?>\n<all>\n<uwsgi id=\"dev\">\n  <socket>:1</socket>\n</uwsgi>\n\
                    <uwsgi id=\"prod\">\n  <socket>:2</socket>\n  <master/>\n  <processes mode=\"big\">8</processes>\n  \
                    <processes mode=\"small\">2</processes>\n  <app mountpoint=\"/api\">api.wsgi</app>\n</uwsgi>\n</all>\n";
        assert_eq!(
            pairs(&xml(text, Some("dev"), None).unwrap()),
            [p("socket", Some(":1"), Some(4))]
        );
        assert_eq!(
            pairs(&xml(text, Some("prod"), Some("small")).unwrap()),
            [
                p("socket", Some(":2"), Some(7)),
                p("master", None, Some(8)),
                p("processes", Some("2"), Some(10)),
                p("mount", Some("/api=api.wsgi"), Some(11)),
            ]
        );
        let root = "<uwsgi>\n<socket>/tmp/s</socket>\n<![CDATA[print(1)]]>\n</uwsgi>";
        assert_eq!(
            pairs(&xml(root, None, None).unwrap()),
            [p("socket", Some("/tmp/s"), Some(2)), p("eval", Some("\nprint(1)\n"), Some(2))]
        );
        assert!(xml("<uwsgi><socket>", None, None).is_err());
        assert!(xml("<other/>", None, None).unwrap().lines.is_none());
    }
}
