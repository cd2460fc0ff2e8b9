//! Config files as uWSGI reads them: ini sections (our parser, which keeps
//! repeated keys in order), the `uwsgi` key of YAML and JSON files (figment's
//! providers), includes (`ini = other.ini`) read where they are named, and
//! placeholders resolved line by line against what was set so far.

use crate::entry::Entry;
use crate::error::{ConfigError, Source};
use crate::ini;
use crate::options::{self, Kind};
use figment::Provider;
use figment::providers::{Format as _, Json, Yaml};
use figment::value::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ini,
    Yaml,
    Json,
}

impl Format {
    /// The format an include option (`ini`, `yaml`, `json`) reads.
    pub(crate) fn of_option(name: &str) -> Format {
        match name {
            "yaml" => Format::Yaml,
            "json" => Format::Json,
            _ => Format::Ini,
        }
    }

    /// The format a bare file argument has, by its extension.
    pub fn of_path(path: &str) -> Option<Format> {
        let path = split_section(path).0;
        let extension = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "ini" => Some(Format::Ini),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A config file to read: `path` or `path:section`, and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub path: PathBuf,
    /// The section (ini) or top-level key (YAML, JSON); `uwsgi` by default.
    pub section: String,
    pub format: Format,
    /// The flag or line that named the file.
    pub named_by: Source,
}

impl FileRef {
    /// `file` or `file:section`.
    pub fn new(spec: &str, format: Format, named_by: Source) -> FileRef {
        let (path, section) = split_section(spec);
        FileRef {
            path: PathBuf::from(path),
            section: section.unwrap_or("uwsgi").to_string(),
            format,
            named_by,
        }
    }
}

/// `app.ini:section` → (`app.ini`, `section`); a colon followed by a path
/// (`C:/x`, `./a:b/c.ini`) is part of the path.
fn split_section(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((path, section))
            if !path.is_empty() && !section.is_empty() && !section.contains('/') =>
        {
            (path, Some(section))
        }
        _ => (spec, None),
    }
}

/// Where a line is: what the magic variables (`%d`, `%n`, ...) expand to.
struct FileContext {
    /// The path as named, for messages.
    shown: PathBuf,
    /// The canonical path.
    absolute: PathBuf,
}

impl FileContext {
    fn magic(&self, var: char) -> Option<String> {
        let dir = self.absolute.parent().unwrap_or(Path::new("/"));
        let text = |p: Option<&std::ffi::OsStr>| {
            p.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
        };
        Some(match var {
            'd' => {
                let dir = dir.to_string_lossy();
                if dir.ends_with('/') { dir.into_owned() } else { format!("{dir}/") }
            }
            'n' => text(self.absolute.file_stem()),
            'c' => text(dir.file_name()),
            'p' => self.absolute.to_string_lossy().into_owned(),
            '%' => "%".to_string(),
            _ => return None,
        })
    }
}

/// Reads config files in order, following includes.
pub(crate) struct FileReader<'a> {
    entries: Vec<Entry>,
    /// Each option's (and custom key's) latest value, for `%(name)`.
    set_so_far: HashMap<String, String>,
    /// Keys that are not options, with where they were set: allowed only
    /// as custom placeholders.
    custom_keys: Vec<(String, Source)>,
    referenced: HashSet<String>,
    /// The files being read, outermost first, for cycle detection.
    reading: Vec<(PathBuf, PathBuf)>,
    getenv: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> FileReader<'a> {
    pub(crate) fn new(getenv: &'a dyn Fn(&str) -> Option<String>) -> Self {
        FileReader {
            entries: Vec::new(),
            set_so_far: HashMap::new(),
            custom_keys: Vec::new(),
            referenced: HashSet::new(),
            reading: Vec::new(),
            getenv,
        }
    }

    /// Every entry read, in order; an error for a key that is neither an
    /// option nor used as a placeholder.
    pub(crate) fn finish(self) -> Result<Vec<Entry>, ConfigError> {
        let unused = self.custom_keys.into_iter().find(|(key, _)| !self.referenced.contains(key));
        match unused {
            Some((name, at)) => {
                Err(ConfigError::UnknownOption { suggestion: options::suggest(&name), name, at })
            }
            None => Ok(self.entries),
        }
    }

    pub(crate) fn read(&mut self, file: &FileRef) -> Result<(), ConfigError> {
        let read_error =
            |error| ConfigError::Read { at: file.named_by.clone(), path: file.path.clone(), error };
        let absolute = std::fs::canonicalize(&file.path).map_err(read_error)?;
        if self.reading.iter().any(|(canonical, _)| *canonical == absolute) {
            let mut chain: Vec<String> =
                self.reading.iter().map(|(_, shown)| shown.display().to_string()).collect();
            chain.push(file.path.display().to_string());
            return Err(ConfigError::IncludeCycle {
                at: file.named_by.clone(),
                chain: chain.join(" -> "),
            });
        }
        let bytes = std::fs::read(&absolute).map_err(read_error)?;
        let context = FileContext { shown: file.path.clone(), absolute: absolute.clone() };
        self.reading.push((absolute, file.path.clone()));
        match file.format {
            Format::Ini => self.read_ini(file, &bytes, &context)?,
            Format::Yaml | Format::Json => self.read_structured(file, &bytes, &context)?,
        }
        self.reading.pop();
        Ok(())
    }

    fn read_ini(
        &mut self,
        file: &FileRef,
        bytes: &[u8],
        context: &FileContext,
    ) -> Result<(), ConfigError> {
        let parsed = ini::parse_bytes(bytes).map_err(|err| ConfigError::Syntax {
            at: Source::Line { file: file.path.clone(), line: err.line },
            reason: err.reason,
        })?;
        if !parsed.sections.contains(&file.section) {
            return Err(self.missing_section(file));
        }
        for entry in parsed.entries.into_iter().filter(|e| e.section == file.section) {
            let at = Source::Line { file: context.shown.clone(), line: entry.line };
            self.entry(&entry.key, entry.value, at, context)?;
        }
        Ok(())
    }

    /// YAML and JSON: the options are the keys under `uwsgi:` (or the
    /// section named); a list gives the option once per item.
    fn read_structured(
        &mut self,
        file: &FileRef,
        bytes: &[u8],
        context: &FileContext,
    ) -> Result<(), ConfigError> {
        let format_error = |reason: String| ConfigError::Format {
            at: file.named_by.clone(),
            path: file.path.clone(),
            reason,
        };
        let text =
            std::str::from_utf8(bytes).map_err(|_| format_error("not UTF-8 text".to_string()))?;
        let data = match file.format {
            Format::Json => Json::string(text).data(),
            _ => Yaml::string(text).data(),
        }
        .map_err(|err| format_error(err.to_string()))?;
        let section = data.into_values().find_map(|mut dict| dict.remove(&file.section));
        let Some(section) = section else { return Err(self.missing_section(file)) };
        let Value::Dict(_, dict) = section else {
            return Err(format_error(format!("{} must hold option: value pairs", file.section)));
        };
        for (key, value) in dict {
            let at =
                Source::Key { file: context.shown.clone(), key: format!("{}.{key}", file.section) };
            let items = match value {
                Value::Array(_, items) => items,
                single => vec![single],
            };
            for item in items {
                let text = scalar_text(&item).ok_or_else(|| ConfigError::Syntax {
                    at: at.clone(),
                    reason: "want a string, number, boolean or a list of them".to_string(),
                })?;
                self.entry(&key, text, at.clone(), context)?;
            }
        }
        Ok(())
    }

    fn missing_section(&self, file: &FileRef) -> ConfigError {
        ConfigError::MissingSection {
            at: file.named_by.clone(),
            path: file.path.clone(),
            section: file.section.clone(),
        }
    }

    /// One `key = value` of a file.
    fn entry(
        &mut self,
        key: &str,
        value: Option<String>,
        at: Source,
        context: &FileContext,
    ) -> Result<(), ConfigError> {
        let value = value.map(|value| self.expand(&value, context, &at)).transpose()?;
        let Some(spec) = options::lookup(key) else {
            self.set_so_far.insert(key.to_string(), value.unwrap_or_default());
            self.custom_keys.push((key.to_string(), at));
            return Ok(());
        };
        match spec.kind {
            Kind::Action => Err(ConfigError::NotInFile { at, option: spec.name }),
            Kind::Include => {
                let value = value.ok_or_else(|| ConfigError::MissingValue {
                    at: at.clone(),
                    option: spec.name,
                })?;
                self.read(&FileRef::new(&value, Format::of_option(spec.name), at))
            }
            _ => {
                let shown = value
                    .clone()
                    .or_else(|| spec.bare.map(str::to_string))
                    .unwrap_or_else(|| "true".to_string());
                self.set_so_far.insert(spec.name.to_string(), shown);
                self.entries.push(Entry { spec, value, at });
                Ok(())
            }
        }
    }

    /// Resolves `%(option)`, `$(ENV)` and the magic variables of one value.
    fn expand(
        &mut self,
        value: &str,
        context: &FileContext,
        at: &Source,
    ) -> Result<String, ConfigError> {
        let error = |reason: String| ConfigError::Placeholder { at: at.clone(), reason };
        let mut out = String::with_capacity(value.len());
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek().copied()) {
                ('%', Some('(')) | ('$', Some('(')) => {
                    chars.next();
                    let mut name = String::new();
                    let mut closed = false;
                    for n in chars.by_ref() {
                        if n == ')' {
                            closed = true;
                            break;
                        }
                        name.push(n);
                    }
                    if !closed {
                        return Err(error(format!("{c}({name} is not closed with )")));
                    }
                    out.push_str(&self.placeholder(c, &name).map_err(error)?);
                }
                ('%', Some(var)) => {
                    chars.next();
                    let text = context.magic(var).ok_or_else(|| {
                        error(format!("unknown placeholder %{var} (write %% for a % sign)"))
                    })?;
                    out.push_str(&text);
                }
                ('%', None) => {
                    return Err(error("a lone % at the end (write %% for a % sign)".to_string()));
                }
                _ => out.push(c),
            }
        }
        Ok(out)
    }

    fn placeholder(&mut self, sigil: char, name: &str) -> Result<String, String> {
        if sigil == '$' {
            return (self.getenv)(name)
                .ok_or_else(|| format!("$({name}): environment variable {name} is not set"));
        }
        let key = options::lookup(name).map_or(name, |spec| spec.name);
        self.referenced.insert(name.to_string());
        self.set_so_far
            .get(key)
            .cloned()
            .ok_or_else(|| format!("%({name}): no option or key {name} is set before this line"))
    }
}

/// A YAML/JSON scalar as the text an ini file would hold; `None` for a
/// nested map or list. A null (`master:`) is a bare key.
fn scalar_text(value: &Value) -> Option<Option<String>> {
    Some(Some(match value {
        Value::String(_, text) => text.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(..) => value
            .to_u128()
            .map(|n| n.to_string())
            .or_else(|| value.to_i128().map(|n| n.to_string()))
            .or_else(|| value.to_f64().map(|n| n.to_string()))?,
        Value::Empty(..) => return Some(None),
        Value::Dict(..) | Value::Array(..) => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sections_and_formats() {
        for (spec, path, section) in [
            ("app.ini", "app.ini", None),
            ("app.ini:prod", "app.ini", Some("prod")),
            ("/etc/a:b/app.ini", "/etc/a:b/app.ini", None),
            ("./x.ini:", "./x.ini:", None),
            (":prod", ":prod", None),
        ] {
            assert_eq!(split_section(spec), (path, section), "{spec}");
        }
        for (path, format) in [
            ("a.ini", Some(Format::Ini)),
            ("a.INI:prod", Some(Format::Ini)),
            ("a.yaml", Some(Format::Yaml)),
            ("a.yml", Some(Format::Yaml)),
            ("a.json", Some(Format::Json)),
            ("a.py", None),
            ("app", None),
        ] {
            assert_eq!(Format::of_path(path), format, "{path}");
        }
    }
}
