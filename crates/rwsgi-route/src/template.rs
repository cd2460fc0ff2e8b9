//! uWSGI's substitutions in a route's arguments: `$1`..`$9` (the groups
//! of the rule's regex, `$0` the whole match) and `${VAR}` (a request
//! variable), `${qs[NAME]}` and `${cookie[NAME]}`. Parsed at start-up, so
//! an unknown `${x[...]}` is an error there; expanded in one pass, so text
//! taken from the request is never expanded again (uWSGI expands twice).

use crate::RuleError;
use rwsgi_proto::Environ;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Group(usize),
    Var(String),
    Query(String),
    Cookie(String),
}

/// A parsed argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Piece>);

/// A regex match's groups, `$0` first (`None`: the group did not take part).
pub(crate) type Groups = Vec<Option<Vec<u8>>>;

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, RuleError> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1)) {
                (b'$', Some(d)) if d.is_ascii_digit() => {
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::Group(usize::from(d - b'0')));
                    i += 2;
                }
                (b'$', Some(b'{')) => match text[i + 2..].find('}') {
                    Some(len) => {
                        flush(&mut literal, &mut pieces);
                        pieces.push(variable(&text[i + 2..i + 2 + len])?);
                        i += 3 + len;
                    }
                    None => {
                        literal.extend_from_slice(&bytes[i..]);
                        i = bytes.len();
                    }
                },
                (byte, _) => {
                    literal.push(byte);
                    i += 1;
                }
            }
        }
        flush(&mut literal, &mut pieces);
        Ok(Template(pieces))
    }

    /// Whether it has no substitution (a plain text).
    pub(crate) fn literal(&self) -> Option<&[u8]> {
        match self.0.as_slice() {
            [] => Some(&[]),
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }

    pub(crate) fn expand(&self, environ: &Environ, groups: &Groups) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text),
                Piece::Group(n) => {
                    if let Some(Some(group)) = groups.get(*n) {
                        out.extend_from_slice(group);
                    }
                }
                Piece::Var(name) => {
                    if let Some(value) = environ.get(name) {
                        out.extend_from_slice(value);
                    }
                }
                Piece::Query(name) => {
                    let query = environ.get("QUERY_STRING").map(|q| q.to_vec()).unwrap_or_default();
                    if let Some(value) = pair_value(&query, b'&', name) {
                        out.extend_from_slice(value);
                    }
                }
                Piece::Cookie(name) => {
                    let cookies =
                        environ.get("HTTP_COOKIE").map(|c| c.to_vec()).unwrap_or_default();
                    if let Some(value) = pair_value(&cookies, b';', name) {
                        out.extend_from_slice(value);
                    }
                }
            }
        }
        out
    }
}

fn flush(literal: &mut Vec<u8>, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Text(std::mem::take(literal)));
    }
}

/// `${...}`: a variable, or one of the keyed ones rwsgi has.
fn variable(inner: &str) -> Result<Piece, RuleError> {
    let Some((kind, rest)) = inner.split_once('[') else {
        return Ok(Piece::Var(inner.to_string()));
    };
    let Some(key) = rest.strip_suffix(']') else {
        return Ok(Piece::Var(inner.to_string()));
    };
    match kind {
        "qs" => Ok(Piece::Query(key.to_string())),
        "cookie" => Ok(Piece::Cookie(key.to_string())),
        other => Err(RuleError::new(format!(
            "${{{other}[...]}} is not supported by rwsgi (it has ${{VAR}}, ${{qs[NAME]}} and ${{cookie[NAME]}})"
        ))),
    }
}

/// The value of `name` in `a=1&b=2` (or `a=1; b=2`), as given.
fn pair_value<'t>(text: &'t [u8], separator: u8, name: &str) -> Option<&'t [u8]> {
    text.split(|&b| b == separator).find_map(|pair| {
        let pair = pair.trim_ascii_start();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rwsgi_proto::CgiVar;

    #[test]
    fn groups_variables_and_keyed_variables() {
        let mut environ = Environ::with_capacity(4);
        environ.set(CgiVar::PathInfo, "/a/b");
        environ.set(CgiVar::QueryString, "x=1&page=7");
        environ.set_other("HTTP_COOKIE", "theme=dark; lang=fr");
        let groups: Groups = vec![Some(b"/old/x".to_vec()), Some(b"x".to_vec()), None];
        let expand = |text: &str| {
            String::from_utf8(Template::parse(text).unwrap().expand(&environ, &groups)).unwrap()
        };
        assert_eq!(expand("/new/$1"), "/new/x");
        assert_eq!(expand("$0|$2|$9"), "/old/x||");
        assert_eq!(expand("${PATH_INFO}?p=${qs[page]}&l=${cookie[lang]}"), "/a/b?p=7&l=fr");
        assert_eq!(expand("${MISSING}${qs[none]}"), "");
        assert_eq!(expand("cost: $ 5 and ${unclosed"), "cost: $ 5 and ${unclosed");
        assert!(Template::parse("${time[unix]}").is_err());
        assert_eq!(Template::parse("plain").unwrap().literal(), Some(&b"plain"[..]));
        assert_eq!(Template::parse("/x/$1").unwrap().literal(), None);
    }

    #[test]
    fn text_from_the_request_is_not_expanded_again() {
        let mut environ = Environ::with_capacity(2);
        environ.set(CgiVar::PathInfo, "/${HTTP_SECRET}");
        environ.set_other("HTTP_SECRET", "s3cr3t");
        let out = Template::parse("${PATH_INFO}").unwrap().expand(&environ, &vec![]);
        assert_eq!(out, b"/${HTTP_SECRET}");
    }
}
