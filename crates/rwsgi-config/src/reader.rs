//! Reads every source in uWSGI's order (the environment, then the command
//! line, with config files read where they are named) into one list of
//! `key = value` items, acting on the config language as it goes: magic
//! variables, includes, logic blocks (`if-*`, `for*`), `set`,
//! `declare-option`, `blacklist`. Placeholders (`%(x)`, `$(X)`, `@(f)`)
//! are resolved afterwards, over the whole list ([`crate::placeholders`]),
//! as uWSGI does.

use crate::error::{ConfigError, Diagnostics, Source};
use crate::formats;
use crate::ini;
use crate::magic::{FileMagic, Magic, ProcessMagic};
use crate::options::{self, Kind};
use crate::placeholders::Resolver;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Which source an item came from; later layers override earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Layer {
    File,
    Env,
    Flag,
}

/// One option or custom key given once.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub key: String,
    /// `None` for a bare key or a flag given alone.
    pub value: Option<String>,
    pub at: Source,
    pub layer: Layer,
    /// Set by `set-placeholder` and `resolve`: never an option.
    pub placeholder: bool,
}

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ini,
    Yaml,
    Json,
    Xml,
}

impl Format {
    /// The format a file has, by its extension.
    pub fn of_path(path: &str) -> Option<Format> {
        let path = split_section(path).0;
        let extension = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "ini" => Some(Format::Ini),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" | "js" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }
}

/// A config file to read: `path` or `path:section`, and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub path: PathBuf,
    /// The section (ini), top-level key (YAML, JSON) or id (XML); `uwsgi`
    /// by default.
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
        Some((path, section)) if !section.is_empty() && !section.contains('/') => {
            (path, Some(section))
        }
        _ => (spec, None),
    }
}

/// A logic block being read, up to its `end*`.
#[derive(Debug, Clone)]
struct Block {
    /// The opening option's name (`if-env`, `for`, ...).
    opener: &'static str,
    arg: Option<String>,
    at: Source,
    body: Vec<BlockLine>,
}

#[derive(Debug, Clone)]
enum BlockLine {
    Plain { key: String, value: Option<String>, at: Source, layer: Layer },
    Nested(Block),
}

/// The blocks open while reading: the outermost first.
#[derive(Debug)]
struct Capture {
    open: Vec<Block>,
    /// How deep in includes the outermost block was opened.
    depth: usize,
}

/// A `blacklist` or `whitelist` in force.
#[derive(Debug)]
struct Filter {
    names: Vec<String>,
    allow: bool,
    at: Source,
}

/// `for-times` beyond this is a typo, not a config: uWSGI would add that
/// many options until memory runs out.
const MAX_FOR_TIMES: u64 = 65_536;

/// What role a key plays in the block structure.
fn block_role(key: &str) -> Option<Result<&'static str, ()>> {
    if key == "end" {
        return Some(Err(()));
    }
    let spec = options::lookup(key)?;
    match spec.name {
        "endif" | "endfor" => Some(Err(())),
        name if spec.kind == Kind::Directive
            && (name.starts_with("if-") || name.starts_with("for")) =>
        {
            Some(Ok(name))
        }
        _ => None,
    }
}

/// An option's main name; any other key as it is.
pub(crate) fn canonical(key: &str) -> &str {
    options::lookup(key).map_or(key, |spec| spec.name)
}

/// Reads the sources into items.
pub(crate) struct Reader<'a> {
    getenv: &'a dyn Fn(&str) -> Option<String>,
    /// Whether this is a master re-executed by a reload (`if-reload`).
    reload: bool,
    process: ProcessMagic,
    /// The first file read, for `%O`, `%D`, ...
    first: Option<FileMagic>,
    items: Vec<Item>,
    capture: Option<Capture>,
    filters: Vec<Filter>,
    /// `declare-option` templates, by name.
    declared: Vec<(String, String)>,
    /// The files being read, outermost first: (canonical, section, as named).
    reading: Vec<(PathBuf, String, PathBuf)>,
    /// The last file read, for `ini = :section` outside a file.
    last_file: Option<PathBuf>,
    /// Placeholders used while reading (include paths).
    pub referenced: HashSet<String>,
    pub diag: Diagnostics,
    /// `exit` was read: nothing after it is.
    stopped: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(getenv: &'a dyn Fn(&str) -> Option<String>, reload: bool) -> Self {
        Reader {
            getenv,
            reload,
            process: ProcessMagic::read(),
            first: None,
            items: Vec::new(),
            capture: None,
            filters: Vec::new(),
            declared: Vec::new(),
            reading: Vec::new(),
            last_file: None,
            referenced: HashSet::new(),
            diag: Diagnostics::default(),
            stopped: false,
        }
    }

    /// Everything read, in reading order; open blocks are closed first.
    pub(crate) fn finish(mut self) -> (Vec<Item>, HashSet<String>, Diagnostics) {
        self.close_blocks_from(0);
        (self.items, self.referenced, self.diag)
    }

    /// One item from the environment or the command line.
    pub(crate) fn feed(&mut self, key: &str, value: Option<String>, at: Source, layer: Layer) {
        if self.stopped {
            return;
        }
        if let Some(capture) = self.capture.as_mut() {
            match block_role(key) {
                Some(Ok(opener)) => {
                    capture.open.push(Block { opener, arg: value, at, body: Vec::new() });
                }
                Some(Err(())) => {
                    let Some(block) = capture.open.pop() else { return };
                    match capture.open.last_mut() {
                        Some(outer) => outer.body.push(BlockLine::Nested(block)),
                        None => {
                            self.capture = None;
                            self.run_block(block);
                        }
                    }
                }
                None => {
                    let line = BlockLine::Plain { key: key.to_string(), value, at, layer };
                    if let Some(innermost) = capture.open.last_mut() {
                        innermost.body.push(line);
                    }
                }
            }
            return;
        }
        match block_role(key) {
            Some(Ok(opener)) => {
                let block = Block { opener, arg: value, at, body: Vec::new() };
                self.capture = Some(Capture { open: vec![block], depth: self.reading.len() });
            }
            Some(Err(())) => self.diag.warn(&at, format!("{key} with no block open: ignored")),
            None => self.apply(key, value, at, layer),
        }
    }

    /// Closes (with a warning) the blocks opened at include depth `depth`
    /// or deeper, and runs them: a block ends with the file it opened in.
    fn close_blocks_from(&mut self, depth: usize) {
        if self.capture.as_ref().is_none_or(|capture| capture.depth < depth) {
            return;
        }
        let Some(mut capture) = self.capture.take() else { return };
        while let Some(block) = capture.open.pop() {
            let end = if block.opener.starts_with("for") { "endfor" } else { "endif" };
            self.diag.warn(
                &block.at,
                format!("{} has no {end}: it ends here, with its file", block.opener),
            );
            match capture.open.last_mut() {
                Some(outer) => outer.body.push(BlockLine::Nested(block)),
                None => self.run_block(block),
            }
        }
    }

    /// A closed block: each line, once per value of `%(_)` the block gives
    /// (once if an `if-*` holds, never if not, once per item of a `for`).
    /// As in uWSGI, a `for` repeats each line in turn, not the block.
    fn run_block(&mut self, block: Block) {
        let values = match self.block_values(&block) {
            Ok(values) => values,
            Err(err) => {
                self.diag.error(err);
                return;
            }
        };
        for line in block.body {
            for value in &values {
                match &line {
                    BlockLine::Plain { key, value: text, at, layer } => {
                        let text = text.as_ref().map(|text| text.replace("%(_)", value));
                        if !self.stopped {
                            self.apply(key, text, at.clone(), *layer);
                        }
                    }
                    BlockLine::Nested(nested) => {
                        let mut nested = nested.clone();
                        nested.arg = nested.arg.map(|arg| arg.replace("%(_)", value));
                        self.run_block(nested);
                    }
                }
            }
        }
    }

    /// The values of `%(_)` for each pass over a block's lines.
    fn block_values(&mut self, block: &Block) -> Result<Vec<String>, ConfigError> {
        // uWSGI tests the argument as written; placeholders known so far
        // are resolved first (`if-exists = $(CONF_DIR)/local.ini`).
        let arg =
            block.arg.as_deref().map_or_else(String::new, |arg| self.expand_early(arg, &block.at));
        let needs_arg = !matches!(block.opener, "if-reload" | "if-not-reload");
        if needs_arg && arg.is_empty() {
            return Err(ConfigError::MissingValue { at: block.at.clone(), option: block.opener });
        }
        let once_if = |holds: bool, value: String| if holds { vec![value] } else { Vec::new() };
        let (name, wanted) = match arg.split_once('=') {
            Some((name, wanted)) => (name.to_string(), Some(wanted.to_string())),
            None => (arg.clone(), None),
        };
        let matches = |found: Option<&String>| match (found, &wanted) {
            (Some(found), Some(wanted)) => found == wanted,
            (found, _) => found.is_some(),
        };
        Ok(match block.opener {
            "if-env" => {
                let found = (self.getenv)(&name);
                once_if(matches(found.as_ref()), found.unwrap_or_default())
            }
            "if-not-env" => once_if(!matches((self.getenv)(&name).as_ref()), name),
            "if-opt" => {
                let found = self.value_so_far(&name);
                once_if(matches(found.as_ref()), found.unwrap_or_default())
            }
            "if-not-opt" => once_if(!matches(self.value_so_far(&name).as_ref()), name),
            "if-exists" => once_if(readable(&arg), arg),
            "if-not-exists" => once_if(!readable(&arg), arg),
            "if-file" => once_if(Path::new(&arg).is_file(), arg),
            "if-not-file" => once_if(!Path::new(&arg).is_file(), arg),
            "if-dir" => once_if(Path::new(&arg).is_dir(), arg),
            "if-not-dir" => once_if(!Path::new(&arg).is_dir(), arg),
            "if-reload" => once_if(self.reload, arg),
            "if-not-reload" => once_if(!self.reload, arg),
            "if-hostname" => once_if(self.process.hostname() == arg, arg),
            "if-not-hostname" => once_if(self.process.hostname() != arg, arg),
            "if-hostname-match" | "if-not-hostname-match" => {
                let regex = regex::Regex::new(&arg).map_err(|err| ConfigError::BadValue {
                    at: block.at.clone(),
                    option: block.opener,
                    value: arg.clone(),
                    reason: err.to_string(),
                })?;
                let holds = regex.is_match(self.process.hostname());
                once_if(holds == (block.opener == "if-hostname-match"), arg)
            }
            "if-plugin" => once_if(is_builtin_plugin(&arg), arg),
            "if-not-plugin" => once_if(!is_builtin_plugin(&arg), arg),
            "for" => arg.split(' ').filter(|item| !item.is_empty()).map(str::to_string).collect(),
            "for-times" => {
                let (n, _) =
                    crate::value::number(&arg).map_err(|reason| ConfigError::BadValue {
                        at: block.at.clone(),
                        option: block.opener,
                        value: arg.clone(),
                        reason,
                    })?;
                if n > MAX_FOR_TIMES {
                    return Err(ConfigError::BadValue {
                        at: block.at.clone(),
                        option: block.opener,
                        value: arg,
                        reason: format!("at most {MAX_FOR_TIMES}"),
                    });
                }
                (1..=n).map(|i| i.to_string()).collect()
            }
            "for-glob" => glob_paths(&arg),
            "for-readline" => std::fs::read_to_string(&arg)
                .map_err(|error| ConfigError::Read {
                    at: block.at.clone(),
                    path: arg.into(),
                    error,
                })?
                .lines()
                .map(str::to_string)
                .collect(),
            other => unreachable!("block_role opened {other}"),
        })
    }

    /// The raw value an option or key was given last, so far.
    fn value_so_far(&self, key: &str) -> Option<String> {
        let key = canonical(key);
        self.items
            .iter()
            .rev()
            .find(|item| canonical(&item.key) == key)
            .map(|item| item.value.clone().unwrap_or_default())
    }

    /// One item, outside any open block: the config language acts here,
    /// anything else is kept.
    fn apply(&mut self, key: &str, value: Option<String>, at: Source, layer: Layer) {
        let spec = options::lookup(key);
        let name = spec.map_or(key, |spec| spec.name);
        if spec.is_some_and(|spec| spec.kind == Kind::Action) {
            match layer {
                Layer::Env => {
                    self.diag.warn(&at, format!("{name} is only a command-line flag; ignored"))
                }
                _ => self
                    .diag
                    .error(ConfigError::NotInFile { at, option: spec.map_or("", |s| s.name) }),
            }
            return;
        }
        let split = |value: Option<String>, at: &Source, option: &'static str| {
            let text = value.unwrap_or_default();
            match text.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(ConfigError::BadValue {
                    at: at.clone(),
                    option,
                    value: text.clone(),
                    reason: "want KEY=VALUE".to_string(),
                }),
            }
        };
        match name {
            "ini" | "yaml" | "json" | "xml" | "include" | "inherit" => {
                if let Some(spec) = spec {
                    self.include(spec.name, value, at);
                }
            }
            "set" => match split(value, &at, "set") {
                Ok((key, value)) => self.apply(&key, Some(value), at, layer),
                Err(err) => self.diag.error(err),
            },
            "set-placeholder" | "resolve" => match split(value, &at, spec.map_or("", |s| s.name)) {
                Ok((key, _)) if options::lookup(&key).is_some() => {
                    self.diag.error(ConfigError::BadValue {
                        at,
                        option: spec.map_or("", |s| s.name),
                        value: key.clone(),
                        reason: format!("{key} is an option: set it with set = {key}=..."),
                    });
                }
                Ok((key, value)) => {
                    let value =
                        if name == "resolve" { resolve_host(&value, &at) } else { Ok(value) };
                    match value {
                        Ok(value) => self.push(key, Some(value), at, layer, true),
                        Err(err) => self.diag.error(err),
                    }
                }
                Err(err) => self.diag.error(err),
            },
            "declare-option" => match split(value, &at, "declare-option") {
                Ok((new, _)) if options::lookup(&new).is_some() => {
                    self.diag.error(ConfigError::BadValue {
                        at,
                        option: "declare-option",
                        value: new.clone(),
                        reason: format!("{new} is an option already"),
                    });
                }
                Ok((new, template)) => self.declared.push((new, template)),
                Err(err) => self.diag.error(err),
            },
            "blacklist" | "whitelist" => {
                let names = value
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(|n| canonical(n).to_string())
                    .collect();
                self.filters.push(Filter { names, allow: name == "whitelist", at });
            }
            "end-blacklist" | "end-whitelist" => {
                let allow = name == "end-whitelist";
                match self.filters.iter().rposition(|filter| filter.allow == allow) {
                    Some(index) => drop(self.filters.remove(index)),
                    None => self.diag.warn(&at, format!("{name} with no list open: ignored")),
                }
            }
            "exit" => {
                self.push(name.to_string(), value, at, layer, false);
                self.stopped = true;
            }
            _ => {
                if let Some(template) = self
                    .declared
                    .iter()
                    .find(|(declared, _)| declared == key)
                    .map(|(_, t)| t.clone())
                {
                    self.declared_option(
                        &template,
                        value.as_deref().unwrap_or_default(),
                        &at,
                        layer,
                    );
                    return;
                }
                if let Some(filter) = self
                    .filters
                    .iter()
                    .find(|filter| filter.names.iter().any(|n| n == name) != filter.allow)
                {
                    self.diag.error(ConfigError::Forbidden {
                        at,
                        option: name.to_string(),
                        list: if filter.allow { "whitelist" } else { "blacklist" },
                        list_at: Box::new(filter.at.clone()),
                    });
                    return;
                }
                self.push(key.to_string(), value, at, layer, false);
            }
        }
    }

    fn push(
        &mut self,
        key: String,
        value: Option<String>,
        at: Source,
        layer: Layer,
        placeholder: bool,
    ) {
        self.items.push(Item { key, value, at, layer, placeholder });
    }

    /// A `declare-option` used: `$1`, `$2`, ... are its space-separated
    /// arguments; each `opt=value` of the template is applied in turn.
    fn declared_option(&mut self, template: &str, args: &str, at: &Source, layer: Layer) {
        let args: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
        let fill = |text: &str| {
            // $10 before $1: replace the longest numbers first.
            (1..=args.len())
                .rev()
                .fold(text.to_string(), |text, n| text.replace(&format!("${n}"), args[n - 1]))
        };
        for part in template.split(';').filter(|part| !part.is_empty()) {
            match part.split_once('=') {
                Some((key, value)) => self.apply(&fill(key), Some(fill(value)), at.clone(), layer),
                None => {
                    self.diag.warn(at, format!("declared option part {part:?} has no =: skipped"))
                }
            }
        }
    }

    /// `text` with the placeholders known so far resolved: for what must be
    /// decided while reading (include paths, block arguments).
    fn expand_early(&mut self, text: &str, at: &Source) -> String {
        Resolver::new(&self.items, self.getenv, &mut self.referenced, &mut self.diag)
            .expand(text, at, None)
    }

    /// `ini = FILE[:SECTION]` and its siblings: read the file here.
    fn include(&mut self, option: &'static str, value: Option<String>, at: Source) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            self.diag.error(ConfigError::MissingValue { at, option });
            return;
        };
        // Placeholders known so far may name the file (uWSGI reads includes
        // before any placeholder is resolved; this is a superset).
        let value = self.expand_early(&value, &at);
        let spec = match value.strip_prefix(':') {
            // Another section of the file being read (or of the last one).
            Some(section) => {
                let current = self
                    .reading
                    .last()
                    .map(|(_, _, shown)| shown.clone())
                    .or_else(|| self.last_file.clone());
                match current {
                    Some(path) => format!("{}:{section}", path.display()),
                    None => {
                        self.diag.error(ConfigError::Syntax {
                            at,
                            reason: format!(
                                "{option} = {value}: no file has been read to take a section from"
                            ),
                        });
                        return;
                    }
                }
            }
            None => value.clone(),
        };
        let format = match option {
            "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            "ini" => Some(Format::Ini),
            _ => Format::of_path(&spec),
        };
        match format {
            Some(format) => self.read_file(&FileRef::new(&spec, format, at)),
            None => self.diag.error(ConfigError::Syntax {
                at,
                reason: format!("{option} = {value}: a config file ends in .ini, .yaml, .yml, .json, .js or .xml"),
            }),
        }
    }

    /// Reads one config file, its options fed in file order.
    pub(crate) fn read_file(&mut self, file: &FileRef) {
        if self.stopped {
            return;
        }
        let read_error =
            |error| ConfigError::Read { at: file.named_by.clone(), path: file.path.clone(), error };
        let absolute = match std::fs::canonicalize(&file.path) {
            Ok(absolute) => absolute,
            Err(error) => return self.diag.error(read_error(error)),
        };
        if self
            .reading
            .iter()
            .any(|(canonical, section, _)| *canonical == absolute && *section == file.section)
        {
            let mut chain: Vec<String> =
                self.reading.iter().map(|(_, _, shown)| shown.display().to_string()).collect();
            chain.push(file.path.display().to_string());
            return self.diag.error(ConfigError::IncludeCycle {
                at: file.named_by.clone(),
                chain: chain.join(" -> "),
            });
        }
        let bytes = match std::fs::read(&absolute) {
            Ok(bytes) => bytes,
            Err(error) => return self.diag.error(read_error(error)),
        };
        let given = match file.section.as_str() {
            "uwsgi" => file.path.display().to_string(),
            section => format!("{}:{section}", file.path.display()),
        };
        let file_magic = FileMagic::new(&given, &absolute, &file.section);
        let first = self.first.get_or_insert_with(|| file_magic.clone()).clone();
        let lines = match self.parse(file, &bytes) {
            Some(lines) => lines,
            None => return,
        };
        self.reading.push((absolute, file.section.clone(), file.path.clone()));
        let depth = self.reading.len();
        for (key, value, at) in lines {
            let magic = Magic { file: &file_magic, first: &first, process: &self.process };
            let mut unknown = Vec::new();
            let key = magic.expand(&key, &mut unknown);
            let value = value.map(|value| magic.expand(&value, &mut unknown));
            for var in unknown {
                self.diag.warn(&at, format!("%{var} is no magic variable: uWSGI replaces it with nothing, and so does rwsgi (write %% for a %)"));
            }
            if key.is_empty() {
                self.diag.warn(&at, "a line with no option name: ignored");
                continue;
            }
            if file.format == Format::Ini {
                warn_inline_comment(&key, value.as_deref(), &at, &mut self.diag);
            }
            self.feed(&key, value, at, Layer::File);
        }
        self.close_blocks_from(depth);
        self.reading.pop();
        self.last_file = Some(file.path.clone());
    }

    /// The option lines of `file`'s section, each with where it is; `None`
    /// (and an error) if the file cannot be read as its format.
    fn parse(
        &mut self,
        file: &FileRef,
        bytes: &[u8],
    ) -> Option<Vec<(String, Option<String>, Source)>> {
        let line_at = |line: usize| Source::Line { file: file.path.clone(), line };
        let format_error = |reason: String| ConfigError::Format {
            at: file.named_by.clone(),
            path: file.path.clone(),
            reason,
        };
        let missing = || ConfigError::MissingSection {
            at: file.named_by.clone(),
            path: file.path.clone(),
            section: file.section.clone(),
        };
        if file.format == Format::Ini {
            let parsed = ini::parse_bytes(bytes);
            for error in parsed.errors {
                self.diag
                    .error(ConfigError::Syntax { at: line_at(error.line), reason: error.reason });
            }
            if !parsed.sections.contains(&file.section) {
                self.diag.error(missing());
                return None;
            }
            return Some(
                parsed
                    .entries
                    .into_iter()
                    .filter(|entry| entry.section == file.section)
                    .map(|entry| (entry.key, entry.value, line_at(entry.line)))
                    .collect(),
            );
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.diag.error(format_error("not UTF-8 text".to_string()));
            return None;
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let section = match file.format {
            Format::Yaml => Ok(formats::yaml(text, &file.section)),
            Format::Json => formats::json(text, &file.section),
            _ => {
                let id = (file.section != "uwsgi").then_some(file.section.as_str());
                let mode = self.value_so_far("mode");
                formats::xml(text, id, mode.as_deref())
            }
        };
        let section = match section {
            Ok(section) => section,
            Err(reason) => {
                self.diag.error(format_error(reason));
                return None;
            }
        };
        for warning in section.warnings {
            self.diag.warn(&Source::Line { file: file.path.clone(), line: 1 }, warning);
        }
        let at = |key: &str, line: Option<usize>| match line {
            Some(line) => line_at(line),
            None => Source::Key { file: file.path.clone(), key: format!("{}.{key}", file.section) },
        };
        for (line, reason) in section.errors {
            let at = line.map_or_else(
                || Source::Key { file: file.path.clone(), key: file.section.clone() },
                line_at,
            );
            self.diag.error(ConfigError::Syntax { at, reason });
        }
        let Some(lines) = section.lines else {
            self.diag.error(missing());
            return None;
        };
        Some(
            lines
                .into_iter()
                .map(|line| {
                    let at = at(&line.key, line.line);
                    (line.key, line.value, at)
                })
                .collect(),
        )
    }
}

/// uWSGI keeps `; ...` after a value as part of it; so does rwsgi, but a
/// value that looks like it ends in a comment gets a warning.
fn warn_inline_comment(key: &str, value: Option<&str>, at: &Source, diag: &mut Diagnostics) {
    let Some(value) = value else { return };
    let template = matches!(canonical(key), "log-format" | "logformat");
    let commented = value
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_whitespace() && matches!(w[1], b';' | b'#'));
    if commented && !template {
        diag.warn(
            at,
            format!(
                "{key} {value:?} holds what looks like a comment: uWSGI keeps it as part of the value, \
                 and so does rwsgi (put comments on their own line)"
            ),
        );
    }
}

/// `access(R_OK)`, as uWSGI's `if-exists` asks.
fn readable(path: &str) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::R_OK).is_ok()
}

fn is_builtin_plugin(name: &str) -> bool {
    name.starts_with("python") || name == "http"
}

/// `for-glob`: as glob(3) with GLOB_MARK (directories end in `/`) and
/// GLOB_NOCHECK (no match gives the pattern itself).
fn glob_paths(pattern: &str) -> Vec<String> {
    let found: Vec<String> = glob::glob(pattern)
        .map(|paths| {
            paths
                .filter_map(Result::ok)
                .map(|path| {
                    let text = path.to_string_lossy().into_owned();
                    if path.is_dir() { format!("{text}/") } else { text }
                })
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() { vec![pattern.to_string()] } else { found }
}

/// `resolve = KEY=HOST`: HOST's first IPv4 address.
fn resolve_host(host: &str, at: &Source) -> Result<String, ConfigError> {
    use std::net::ToSocketAddrs;
    let addrs = (host, 0).to_socket_addrs().map_err(|err| ConfigError::Syntax {
        at: at.clone(),
        reason: format!("resolve: cannot resolve {host}: {err}"),
    })?;
    let addrs: Vec<_> = addrs.collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .map(|addr| addr.ip().to_string())
        .ok_or_else(|| ConfigError::Syntax {
            at: at.clone(),
            reason: format!("resolve: {host} has no address"),
        })
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
            (":prod", "", Some("prod")),
        ] {
            assert_eq!(split_section(spec), (path, section), "{spec}");
        }
        for (path, format) in [
            ("a.ini", Some(Format::Ini)),
            ("a.INI:prod", Some(Format::Ini)),
            ("a.yaml", Some(Format::Yaml)),
            ("a.yml", Some(Format::Yaml)),
            ("a.json", Some(Format::Json)),
            ("a.js", Some(Format::Json)),
            ("a.xml:prod", Some(Format::Xml)),
            ("a.py", None),
            ("app", None),
        ] {
            assert_eq!(Format::of_path(path), format, "{path}");
        }
    }

    #[test]
    fn glob_marks_directories_and_keeps_a_pattern_without_matches() {
        let dir = std::env::temp_dir().join(format!("rwsgi-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).ok();
        std::fs::write(dir.join("a.ini"), "").ok();
        let mut found = glob_paths(&format!("{}/*", dir.display()));
        found.sort();
        assert_eq!(found, [format!("{}/a.ini", dir.display()), format!("{}/sub/", dir.display())]);
        assert_eq!(glob_paths("/no/such/*.ini"), ["/no/such/*.ini"]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
