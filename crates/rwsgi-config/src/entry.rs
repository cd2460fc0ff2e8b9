//! One option given once, from any source, checked and typed, and the
//! figment provider that carries it: one provider per value, so figment's
//! metadata names the file line, variable or flag of every value.

use crate::error::{ConfigError, Diagnostics, Source};
use crate::options::{Kind, OptionSpec};
use crate::value;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// `spec` given once: `value` is `None` for a bare key or a flag alone.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub spec: &'static OptionSpec,
    pub value: Option<String>,
    pub at: Source,
}

impl Entry {
    /// The text the option holds: the value, or what a bare key means.
    pub(crate) fn text(&self) -> Result<&str, ConfigError> {
        match (self.value.as_deref(), self.spec.kind, self.spec.bare) {
            (Some(value), _, _) if !value.is_empty() => Ok(value),
            (_, Kind::Flag | Kind::Number, _) => Ok(self.value.as_deref().unwrap_or_default()),
            (_, _, Some(bare)) => Ok(bare),
            (Some(empty), _, None) if self.spec.kind == Kind::Directive => Ok(empty),
            _ => Err(ConfigError::MissingValue { at: self.at.clone(), option: self.spec.name }),
        }
    }

    /// The value, checked and typed for figment. Where uWSGI's reading of
    /// a value is surprising, it is kept and `diag` says so.
    pub(crate) fn typed(&self, diag: &mut Diagnostics) -> Result<Value, ConfigError> {
        let text = self.text()?;
        let bad = |reason: &str| ConfigError::BadValue {
            at: self.at.clone(),
            option: self.spec.name,
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let typed = match self.spec.kind {
            Kind::Flag => {
                let (on, recognised) = value::flag(text);
                if !recognised {
                    diag.warn(
                        &self.at,
                        format!(
                            "{} {text:?} is not a boolean: uWSGI reads it as {on}, and so does rwsgi",
                            self.spec.name
                        ),
                    );
                }
                Value::from(on)
            }
            Kind::Number => {
                let (n, note) = value::number(text).map_err(|reason| bad(&reason))?;
                if let Some(note) = note {
                    diag.warn(&self.at, format!("{}: {note}", self.spec.name));
                }
                if let Some(check) = self.spec.check {
                    check(&n.to_string()).map_err(|reason| bad(&reason))?;
                }
                return Ok(Value::from(n));
            }
            Kind::List => Value::from(vec![Value::from(text.to_string())]),
            Kind::Text | Kind::Directive | Kind::Action => Value::from(text.to_string()),
        };
        if let Some(check) = self.spec.check {
            check(text).map_err(|reason| bad(&reason))?;
        }
        Ok(typed)
    }

    /// This entry as a figment provider.
    pub(crate) fn provider(&self, diag: &mut Diagnostics) -> Result<EntryProvider, ConfigError> {
        Ok(EntryProvider { key: self.spec.name, value: self.typed(diag)?, at: self.at.to_string() })
    }
}

/// One option's value, named in figment's metadata by where it came from.
#[derive(Debug)]
pub(crate) struct EntryProvider {
    key: &'static str,
    value: Value,
    at: String,
}

impl Provider for EntryProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.at.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = Dict::from([(self.key.to_string(), self.value.clone())]);
        Ok(Map::from([(Profile::Default, dict)]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::options::lookup;

    fn typed(option: &str, value: Option<&str>) -> (Result<Value, ConfigError>, Vec<String>) {
        let mut diag = Diagnostics::default();
        let entry = Entry {
            spec: lookup(option).unwrap(),
            value: value.map(str::to_string),
            at: Source::Default,
        };
        (entry.typed(&mut diag), diag.warnings)
    }

    #[test]
    fn booleans_as_uwsgi_reads_them() {
        for (text, want) in [
            ("true", true),
            ("yes", true),
            ("on", true),
            ("1", true),
            ("TRUE", true),
            ("false", false),
            ("no", false),
            ("off", false),
            ("0", false),
            ("Off", false),
        ] {
            let (value, warnings) = typed("master", Some(text));
            assert_eq!(value.unwrap().to_bool(), Some(want), "{text}");
            assert!(warnings.is_empty(), "{text}");
        }
        assert_eq!(typed("master", None).0.unwrap().to_bool(), Some(true), "bare");
        assert_eq!(typed("vacuum", Some("")).0.unwrap().to_bool(), Some(true), "empty");
        let (value, warnings) = typed("vacuum", Some("enabled"));
        assert_eq!(value.unwrap().to_bool(), Some(true));
        assert_eq!(
            warnings,
            [
                "default: vacuum \"enabled\" is not a boolean: uWSGI reads it as true, and so does rwsgi"
            ]
        );
    }

    #[test]
    fn numbers_as_atoi_reads_them() {
        assert_eq!(typed("threads", Some("4")).0.unwrap().to_u128(), Some(4));
        let (value, warnings) = typed("threads", Some("4 # per worker"));
        assert_eq!(value.unwrap().to_u128(), Some(4));
        assert!(warnings[0].contains("uWSGI reads it as 4"), "{warnings:?}");
        let (value, warnings) = typed("harakiri", Some("true"));
        assert_eq!(value.unwrap().to_u128(), Some(0));
        assert!(warnings[0].contains("\"true\" is not a number: uWSGI reads it as 0"));
        assert!(typed("threads", Some("-1")).0.is_err());
        let err = typed("processes", Some("true")).0.unwrap_err().to_string();
        assert!(err.contains("processes \"true\": at least 1"), "{err}");
        assert!(typed("listen", Some("99999999999")).0.is_err());
    }

    #[test]
    fn values_by_kind() {
        assert_eq!(typed("chmod-socket", None).0.unwrap().as_str(), Some("666"));
        assert!(matches!(
            typed("socket", None).0,
            Err(ConfigError::MissingValue { option: "socket", .. })
        ));
        assert!(typed("socket", Some(":9000")).0.unwrap().as_array().is_some());
        assert!(typed("env", Some("NOEQUALS")).0.is_err());
    }
}
