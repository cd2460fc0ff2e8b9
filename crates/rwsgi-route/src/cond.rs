//! `route-if` conditions: `NAME:ARGS`, two arguments separated by the
//! first `;`, each a [`Template`].

use crate::RuleError;
use crate::template::{Groups, Template};
use regex::bytes::Regex;
use rwsgi_proto::Environ;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

#[derive(Debug)]
enum Test {
    Exists,
    IsFile,
    IsDir,
    IsLink,
    IsExec,
    Empty,
    Equal,
    StartsWith,
    EndsWith,
    Contains,
    Higher,
    HigherEqual,
    Lower,
    LowerEqual,
    Regexp(Regex),
    IpIn { net: IpAddr, bits: u8 },
}

/// A parsed condition.
#[derive(Debug)]
pub(crate) struct Cond {
    test: Test,
    subject: Template,
    other: Option<Template>,
}

impl Cond {
    pub(crate) fn parse(text: &str) -> Result<Cond, RuleError> {
        let Some((name, args)) = text.split_once(':') else {
            return Err(RuleError::new(format!("{text:?} is no condition: want NAME:ARGS")));
        };
        let pair = || -> Result<(Template, Template), RuleError> {
            let (a, b) = args.split_once(';').ok_or_else(|| {
                RuleError::new(format!("the {name} condition takes two arguments: A;B"))
            })?;
            Ok((Template::parse(a)?, Template::parse(b)?))
        };
        let one = |test: Test| -> Result<Cond, RuleError> {
            Ok(Cond { test, subject: Template::parse(args)?, other: None })
        };
        let two = |test: Test| -> Result<Cond, RuleError> {
            let (subject, other) = pair()?;
            Ok(Cond { test, subject, other: Some(other) })
        };
        match name {
            "exists" => one(Test::Exists),
            "isfile" => one(Test::IsFile),
            "isdir" => one(Test::IsDir),
            "islink" => one(Test::IsLink),
            "isexec" => one(Test::IsExec),
            "empty" => one(Test::Empty),
            "equal" | "isequal" | "eq" | "==" => two(Test::Equal),
            "startswith" => two(Test::StartsWith),
            "endswith" => two(Test::EndsWith),
            "contains" | "contain" => two(Test::Contains),
            "ishigher" | ">" => two(Test::Higher),
            "ishigherequal" | ">=" => two(Test::HigherEqual),
            "islower" | "<" => two(Test::Lower),
            "islowerequal" | "<=" => two(Test::LowerEqual),
            "regexp" | "re" => {
                let (subject, pattern) = args.split_once(';').ok_or_else(|| {
                    RuleError::new("the regexp condition takes two arguments: SUBJECT;REGEX")
                })?;
                let regex = crate::rules::byte_regex(pattern)?;
                Ok(Cond {
                    test: Test::Regexp(regex),
                    subject: Template::parse(subject)?,
                    other: None,
                })
            }
            "ipv4in" | "ipv6in" => {
                let (subject, net) = args.split_once(';').ok_or_else(|| {
                    RuleError::new(format!(
                        "the {name} condition takes two arguments: ADDR;NET/BITS"
                    ))
                })?;
                let (net, bits) = parse_net(net, name == "ipv6in")?;
                Ok(Cond {
                    test: Test::IpIn { net, bits },
                    subject: Template::parse(subject)?,
                    other: None,
                })
            }
            other => Err(RuleError::new(format!(
                "the route condition {other:?} is not implemented by rwsgi (it has exists, isfile, \
                 isdir, islink, isexec, empty, equal, startswith, endswith, contains, regexp, \
                 ishigher, islower (and =), ipv4in, ipv6in)"
            ))),
        }
    }

    /// Whether it holds, and the groups a `regexp` captured.
    pub(crate) fn holds(&self, environ: &Environ, groups: &Groups) -> (bool, Groups) {
        let subject = self.subject.expand(environ, groups);
        let other = || self.other.as_ref().map(|t| t.expand(environ, groups)).unwrap_or_default();
        let path = || {
            std::path::PathBuf::from(std::ffi::OsString::from(
                String::from_utf8_lossy(&subject).into_owned(),
            ))
        };
        let number = |bytes: &[u8]| -> i64 {
            std::str::from_utf8(bytes).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
        };
        let holds = match &self.test {
            Test::Exists => path().exists(),
            Test::IsFile => path().is_file(),
            Test::IsDir => path().is_dir(),
            Test::IsLink => path().is_symlink(),
            Test::IsExec => std::fs::metadata(path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0),
            Test::Empty => subject.is_empty(),
            Test::Equal => subject == other(),
            Test::StartsWith => subject.starts_with(&other()),
            Test::EndsWith => subject.ends_with(&other()),
            Test::Contains => {
                let needle = other();
                needle.is_empty() || subject.windows(needle.len()).any(|w| w == needle.as_slice())
            }
            Test::Higher => number(&subject) > number(&other()),
            Test::HigherEqual => number(&subject) >= number(&other()),
            Test::Lower => number(&subject) < number(&other()),
            Test::LowerEqual => number(&subject) <= number(&other()),
            Test::Regexp(regex) => {
                return match regex.captures(&subject) {
                    Some(found) => {
                        (true, found.iter().map(|g| g.map(|m| m.as_bytes().to_vec())).collect())
                    }
                    None => (false, Vec::new()),
                };
            }
            Test::IpIn { net, bits } => std::str::from_utf8(&subject)
                .ok()
                .and_then(|text| text.trim().parse::<IpAddr>().ok())
                .is_some_and(|addr| in_net(addr, *net, *bits)),
        };
        (holds, Vec::new())
    }
}

fn parse_net(text: &str, v6: bool) -> Result<(IpAddr, u8), RuleError> {
    let (addr, bits) = text.split_once('/').unwrap_or((text, if v6 { "128" } else { "32" }));
    let bad = || RuleError::new(format!("{text:?} is no network: want ADDR/BITS"));
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let bits: u8 = bits.trim().parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits > max || addr.is_ipv6() != v6 {
        return Err(bad());
    }
    Ok((addr, bits))
}

fn in_net(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    let mask = |width: u32| if bits == 0 { 0 } else { u128::MAX << (width - u32::from(bits)) };
    match (addr.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = mask(32) as u32;
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = mask(128);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rwsgi_proto::CgiVar;

    fn holds(cond: &str, environ: &Environ) -> bool {
        Cond::parse(cond).unwrap().holds(environ, &Vec::new()).0
    }

    #[test]
    fn conditions() {
        let mut environ = Environ::with_capacity(4);
        environ.set(CgiVar::PathInfo, "/admin/users");
        environ.set(CgiVar::RemoteAddr, "10.1.2.3");
        environ.set_other("HTTP_X_COUNT", "12");
        let dir = std::env::temp_dir().display().to_string();
        for (cond, want) in [
            ("equal:${PATH_INFO};/admin/users", true),
            ("eq:${PATH_INFO};/admin", false),
            ("startswith:${PATH_INFO};/admin", true),
            ("endswith:${PATH_INFO};users", true),
            ("contains:${PATH_INFO};min/us", true),
            ("empty:${HTTP_NOPE}", true),
            ("empty:${PATH_INFO}", false),
            ("ishigher:${HTTP_X_COUNT};10", true),
            ("<=:${HTTP_X_COUNT};11", false),
            ("regexp:${PATH_INFO};^/admin/(.*)$", true),
            ("ipv4in:${REMOTE_ADDR};10.0.0.0/8", true),
            ("ipv4in:${REMOTE_ADDR};192.168.0.0/16", false),
            (&format!("isdir:{dir}"), true),
            (&format!("isfile:{dir}"), false),
            ("exists:/no/such/path", false),
        ] {
            assert_eq!(holds(cond, &environ), want, "{cond}");
        }
        let (_, groups) =
            Cond::parse("re:${PATH_INFO};^/admin/(.*)$").unwrap().holds(&environ, &Vec::new());
        assert_eq!(groups[1].as_deref(), Some(&b"users"[..]));
        for bad in [
            "nocolon",
            "lord:x",
            "equal:onlyone",
            "re:x;(",
            "ipv4in:x;10.0.0.0/33",
            "ipv6in:x;10.0.0.0/8",
        ] {
            assert!(Cond::parse(bad).is_err(), "{bad}");
        }
    }
}
