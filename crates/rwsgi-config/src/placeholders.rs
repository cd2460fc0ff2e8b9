//! Placeholders, resolved once everything is read, as uWSGI resolves them:
//! `$(VAR)` from the environment, `@(FILE)` from a file's content (or
//! `@(exec://CMD)` from a command's output), `%(KEY)` from the value an
//! option or custom key ends up with, and uWSGI's arithmetic
//! (`%(processes * 2)`, `%(port + 1)`, `%(base ++)`). A `%(KEY)` may name a
//! key set later in the files, or on the command line.
//!
//! One difference from uWSGI, on purpose: a key given several times
//! resolves to its last value (the one that takes effect), where uWSGI
//! takes the first.

use crate::error::{ConfigError, Diagnostics, Source};
use crate::options::{self, Kind};
use crate::reader::{Item, canonical};
use std::collections::{HashMap, HashSet};

/// Options whose values are templates filled per request: a `%(name)` that
/// names no key is theirs, left as written without a warning.
fn is_request_template(option: &str) -> bool {
    matches!(option, "log-format" | "logformat" | "log-req-encoder" | "log-encoder")
}

/// Which value of a key: its place in the list of items.
type Place = (String, usize);

/// Resolves placeholders against a list of items, recording the keys they
/// name and what was wrong.
pub(crate) struct Resolver<'a, 'b> {
    /// Every raw value of each key (options by their main name), with its
    /// place in the list, in order.
    values: HashMap<&'a str, Vec<(usize, Option<&'a str>)>>,
    /// Values already resolved.
    done: HashMap<Place, String>,
    getenv: &'a dyn Fn(&str) -> Option<String>,
    /// `@(file)` contents read so far.
    files: HashMap<String, String>,
    /// Values being resolved, to catch a cycle.
    stack: Vec<Place>,
    /// `$(VAR)`s already warned about.
    unset_warned: HashSet<String>,
    /// Every key a placeholder named.
    referenced: &'b mut HashSet<String>,
    diag: &'b mut Diagnostics,
}

impl<'a, 'b> Resolver<'a, 'b> {
    /// `items` in the order their values override each other.
    pub(crate) fn new(
        items: &'a [Item],
        getenv: &'a dyn Fn(&str) -> Option<String>,
        referenced: &'b mut HashSet<String>,
        diag: &'b mut Diagnostics,
    ) -> Self {
        let mut values: HashMap<&str, Vec<_>> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            values.entry(canonical(&item.key)).or_default().push((index, item.value.as_deref()));
        }
        Resolver {
            values,
            done: HashMap::new(),
            getenv,
            files: HashMap::new(),
            stack: Vec::new(),
            unset_warned: HashSet::new(),
            referenced,
            diag,
        }
    }

    /// `text` with its placeholders resolved; `owner` is the key and place
    /// of the item it is the value of, if any.
    pub(crate) fn expand(
        &mut self,
        text: &str,
        at: &Source,
        owner: Option<(&str, usize)>,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(['$', '@', '%']) {
            let sigil = rest.as_bytes()[start];
            let after = &rest[start + 1..];
            let Some((name, tail)) = after.strip_prefix('(').and_then(|body| {
                closing_paren(body).map(|close| (&body[..close], &body[close + 1..]))
            }) else {
                out.push_str(&rest[..=start]);
                rest = after;
                continue;
            };
            out.push_str(&rest[..start]);
            let whole = &rest[start..rest.len() - tail.len()];
            rest = tail;
            let value = match sigil {
                b'$' => self.env(name, at),
                b'@' => self.file(name, at),
                _ => self.key(name, at, owner),
            };
            out.push_str(value.as_deref().unwrap_or(whole));
        }
        out.push_str(rest);
        out
    }

    fn env(&mut self, name: &str, at: &Source) -> Option<String> {
        let value = (self.getenv)(name);
        if value.is_none() && self.unset_warned.insert(name.to_string()) {
            self.diag
                .warn(at, format!("$({name}): {name} is not set: left as written, as uWSGI does"));
        }
        value
    }

    /// `@(path)`: the file's content less one final newline; `@(exec://cmd)`:
    /// what `sh -c cmd` prints.
    fn file(&mut self, target: &str, at: &Source) -> Option<String> {
        if let Some(cached) = self.files.get(target) {
            return Some(cached.clone());
        }
        let read = match target.split_once("://") {
            None => std::fs::read(target).map_err(|err| err.to_string()),
            Some(("exec", command)) => std::process::Command::new("/bin/sh")
                .args(["-c", command])
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|err| err.to_string())
                .and_then(|out| {
                    if out.status.success() {
                        Ok(out.stdout)
                    } else {
                        Err(format!("the command failed ({})", out.status))
                    }
                }),
            Some((scheme, _)) => {
                Err(format!("{scheme}:// is not supported: use a file or exec://"))
            }
        };
        match read {
            Ok(bytes) => {
                let mut text = String::from_utf8_lossy(&bytes).into_owned();
                if text.ends_with('\n') || text.ends_with('\r') {
                    text.pop();
                }
                self.files.insert(target.to_string(), text.clone());
                Some(text)
            }
            Err(reason) => {
                self.diag.error(ConfigError::Placeholder {
                    at: at.clone(),
                    reason: format!("@({target}): {reason}"),
                });
                None
            }
        }
    }

    /// `%(key)`, or uWSGI's arithmetic when it holds spaces. A key names
    /// its last value, the one in effect; in a key's own value, its value
    /// before (so `path = %(path)/more` extends it).
    fn key(&mut self, expr: &str, at: &Source, owner: Option<(&str, usize)>) -> Option<String> {
        if expr.contains(' ') {
            return Some(self.arithmetic(expr, at, owner));
        }
        let key = canonical(expr).to_string();
        self.referenced.insert(expr.to_string());
        self.referenced.insert(key.clone());
        let own = owner.is_some_and(|(owner, _)| owner == key);
        let found = self.values.get(key.as_str()).and_then(|values| match owner {
            Some((_, place)) if own => values.iter().rev().find(|(index, _)| *index < place),
            _ => values.last(),
        });
        let Some(&(place, raw)) = found else {
            let template = owner.is_some_and(|(owner, _)| is_request_template(owner));
            if expr == "_" {
                self.diag.warn(at, "%(_) is only set inside a for or if-* block: left as written");
            } else if own {
                self.diag.warn(at, format!("%({expr}) in {key}'s own value names its value before, and it has none: left as written"));
            } else if !template {
                self.diag.warn(at, format!("%({expr}) names no option or key that is set: left as written, as uWSGI does"));
            }
            return None;
        };
        let id = (key, place);
        if let Some(done) = self.done.get(&id) {
            return Some(done.clone());
        }
        if self.stack.contains(&id) {
            let chain: Vec<&str> =
                self.stack.iter().map(|(key, _)| key.as_str()).chain([id.0.as_str()]).collect();
            self.diag.error(ConfigError::Placeholder {
                at: at.clone(),
                reason: format!("placeholder cycle: {}", chain.join(" -> ")),
            });
            return None;
        }
        let raw = match raw {
            Some(text) => text.to_string(),
            None => bare_text(&id.0),
        };
        self.stack.push(id.clone());
        let value = self.expand(&raw, at, Some((id.0.as_str(), place)));
        self.stack.pop();
        self.done.insert(id, value.clone());
        Some(value)
    }

    /// uWSGI's placeholder arithmetic: space-separated tokens, each a
    /// number, an operator (`+ - * /`, `++`, `--`) or a key (empty if
    /// unset); values are concatenated unless an operator stands between.
    fn arithmetic(&mut self, expr: &str, at: &Source, owner: Option<(&str, usize)>) -> String {
        #[derive(Clone, Copy)]
        enum Op {
            Concat,
            Add,
            Sub,
            Mul,
            Div,
        }
        let mut op = Op::Concat;
        let mut current: Option<String> = None;
        for token in expr.split(' ').filter(|t| !t.is_empty()) {
            let value = match token {
                "+" | "-" | "*" | "/" => {
                    op = match token {
                        "+" => Op::Add,
                        "-" => Op::Sub,
                        "*" => Op::Mul,
                        _ => Op::Div,
                    };
                    continue;
                }
                "++" | "--" => {
                    if let Some(text) = &current {
                        let n = leading_int(text);
                        current = Some((if token == "++" { n + 1 } else { n - 1 }).to_string());
                    }
                    op = Op::Concat;
                    continue;
                }
                number if number.bytes().all(|b| b.is_ascii_digit()) => number.to_string(),
                key => {
                    let found = self.values.contains_key(canonical(key));
                    let value = if found { self.key(key, at, owner) } else { None };
                    value.unwrap_or_default()
                }
            };
            let (a, b) = (current.as_deref().map_or(0, leading_int), leading_int(&value));
            current = Some(match op {
                Op::Concat => format!("{}{value}", current.unwrap_or_default()),
                Op::Add => a.wrapping_add(b).to_string(),
                Op::Sub => a.wrapping_sub(b).to_string(),
                Op::Mul => a.wrapping_mul(b).to_string(),
                Op::Div => a.checked_div(b).unwrap_or(0).to_string(),
            });
            op = Op::Concat;
        }
        current.unwrap_or_default()
    }
}

/// What a key given with no value stands for in a placeholder.
fn bare_text(key: &str) -> String {
    match options::lookup(key) {
        Some(spec) if spec.kind == Kind::Flag => "true".to_string(),
        Some(spec) => spec.bare.unwrap_or_default().to_string(),
        None => String::new(),
    }
}

/// C's `strtoll(text, NULL, 10)`: leading blanks, a sign, digits; else 0.
fn leading_int(text: &str) -> i64 {
    let text = text.trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// Where in `text` (what follows an opening paren) the paren that closes
/// it is, nested parens included.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::reader::Layer;

    fn items(pairs: &[(&str, Option<&str>)]) -> Vec<Item> {
        pairs
            .iter()
            .map(|(k, v)| Item {
                key: k.to_string(),
                value: v.map(str::to_string),
                at: Source::Default,
                layer: Layer::File,
                placeholder: false,
            })
            .collect()
    }

    fn expand_with(
        items: &[Item],
        text: &str,
        env: &[(&str, &str)],
    ) -> (String, Diagnostics, HashSet<String>) {
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let getenv = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut diag = Diagnostics::default();
        let mut referenced = HashSet::new();
        let out = Resolver::new(items, &getenv, &mut referenced, &mut diag).expand(
            text,
            &Source::Default,
            None,
        );
        (out, diag, referenced)
    }

    #[test]
    fn keys_resolve_late_recursively_and_to_the_last_value() {
        let list = items(&[
            ("base", Some("/srv/%(project)")),
            ("project", Some("shop")),
            ("project", Some("store")),
            ("file", Some("app.py")),
            ("master", None),
        ]);
        let (out, diag, referenced) =
            expand_with(&list, "%(base)/x %(wsgi-file) %(master) 100%", &[]);
        assert_eq!(out, "/srv/store/x app.py true 100%");
        assert!(diag.warnings.is_empty(), "{:?}", diag.warnings);
        assert!(referenced.contains("project") && referenced.contains("base"));
    }

    #[test]
    fn unknown_names_and_unset_variables_stay_as_written_with_a_warning() {
        let (out, diag, _) = expand_with(&[], "%(nothing)/$(RWSGI_UNSET)/%(_)", &[]);
        assert_eq!(out, "%(nothing)/$(RWSGI_UNSET)/%(_)");
        assert_eq!(diag.warnings.len(), 3, "{:?}", diag.warnings);
        assert!(diag.warnings[0].contains("names no option or key"));
        assert!(diag.warnings[1].contains("RWSGI_UNSET is not set"));
        let mut diag = Diagnostics::default();
        let getenv = |_: &str| None;
        let mut referenced = HashSet::new();
        let out = Resolver::new(&[], &getenv, &mut referenced, &mut diag).expand(
            "%(addr) %(uri) %(status)",
            &Source::Default,
            Some(("log-format", 0)),
        );
        assert_eq!(out, "%(addr) %(uri) %(status)");
        assert!(diag.warnings.is_empty(), "request-log variables pass silently");
    }

    #[test]
    fn environment_files_and_commands() {
        let dir = std::env::temp_dir().join(format!("rwsgi-ph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("somaxconn");
        std::fs::write(&file, "4096\n").unwrap();
        let text = format!("$(HOME)|@({})|@(exec://echo hi)|$(", file.display());
        let (out, diag, _) = expand_with(&[], &text, &[("HOME", "/home/me")]);
        assert_eq!(out, "/home/me|4096|hi|$(");
        assert!(diag.errors.is_empty() && diag.warnings.is_empty());
        let (_, diag, _) = expand_with(&[], "@(/no/such/file)", &[]);
        assert!(diag.errors[0].to_string().contains("@(/no/such/file)"));
        let (_, diag, _) = expand_with(&[], "@(http://example.com/x)", &[]);
        assert!(diag.errors[0].to_string().contains("http:// is not supported"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arithmetic_as_uwsgi_computes_it() {
        let list =
            items(&[("processes", Some("4")), ("port", Some("8000")), ("name", Some("app"))]);
        for (expr, want) in [
            ("%(processes * 2)", "8"),
            ("%(port + 1)", "8001"),
            ("%(port - 1000)", "7000"),
            ("%(port / 0)", "0"),
            ("%(2 * 1024)", "2048"),
            ("%(name -dev)", "app"),
            ("%(name processes)", "app4"),
            ("%(processes ++)", "5"),
            ("%(processes -- ++ ++)", "5"),
            ("%(unset 7)", "7"),
        ] {
            assert_eq!(expand_with(&list, expr, &[]).0, want, "{expr}");
        }
    }

    #[test]
    fn a_key_in_its_own_value_is_its_value_before() {
        let list = items(&[
            ("base", Some("/srv")),
            ("pythonpath", Some("/lib")),
            ("base", Some("%(base)/app")),
            ("chdir", Some("%(base)/code")),
            ("alone", Some("%(alone)x")),
        ]);
        let getenv = |_: &str| None;
        let mut diag = Diagnostics::default();
        let mut referenced = HashSet::new();
        let mut resolver = Resolver::new(&list, &getenv, &mut referenced, &mut diag);
        let mut value_of = |index: usize| {
            let item = &list[index];
            resolver.expand(
                item.value.as_deref().unwrap(),
                &item.at,
                Some((canonical(&item.key), index)),
            )
        };
        assert_eq!(value_of(3), "/srv/app/code");
        assert_eq!(value_of(2), "/srv/app");
        assert_eq!(value_of(4), "%(alone)x");
        assert!(diag.errors.is_empty(), "{:?}", diag.errors);
        assert!(
            diag.warnings[0].contains("names its value before, and it has none"),
            "{:?}",
            diag.warnings
        );
    }

    #[test]
    fn a_cycle_is_an_error() {
        let list = items(&[("a", Some("%(b)")), ("b", Some("x%(a)"))]);
        let (_, diag, _) = expand_with(&list, "%(a)", &[]);
        assert!(
            diag.errors[0].to_string().contains("placeholder cycle: a -> b -> a"),
            "{:?}",
            diag.errors
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(leading_int(" -12abc"), -12);
        assert_eq!(leading_int("x"), 0);
        assert_eq!(closing_paren("a)b"), Some(1));
        assert_eq!(closing_paren(")"), Some(0));
        assert_eq!(closing_paren("a(b)c)d"), Some(5));
        assert_eq!(closing_paren("abc"), None);
    }
}
