//! One option given once, from any source, and the figment provider that
//! carries it: one provider per value, so figment's metadata names the
//! file line, variable or flag of every value.

use crate::error::{ConfigError, Source};
use crate::options::{Kind, OptionSpec};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// `spec` given once: `value` is `None` for a bare key or a flag alone.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub spec: &'static OptionSpec,
    pub value: Option<String>,
    pub at: Source,
}

/// uWSGI's booleans: `true/false`, `yes/no`, `on/off`, `1/0`, any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

impl Entry {
    /// The text the option holds: the value, or what a bare key means.
    fn text(&self) -> Result<&str, ConfigError> {
        match (self.value.as_deref(), self.spec.kind, self.spec.bare) {
            (Some(value), _, _) if !value.is_empty() => Ok(value),
            (_, Kind::Flag, _) => Ok("true"),
            (_, _, Some(bare)) => Ok(bare),
            (Some(empty), _, None) => Ok(empty),
            (None, _, None) => {
                Err(ConfigError::MissingValue { at: self.at.clone(), option: self.spec.name })
            }
        }
    }

    /// The value, checked and typed for figment.
    pub(crate) fn typed(&self) -> Result<Value, ConfigError> {
        let text = self.text()?;
        let bad = |reason: &str| ConfigError::BadValue {
            at: self.at.clone(),
            option: self.spec.name,
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let value = match self.spec.kind {
            Kind::Flag => Value::from(
                parse_bool(text).ok_or_else(|| bad("want true/false, yes/no, on/off or 1/0"))?,
            ),
            Kind::Number => {
                Value::from(text.parse::<u64>().map_err(|_| bad("want a whole number"))?)
            }
            Kind::List => Value::from(vec![Value::from(text.to_string())]),
            Kind::Text | Kind::Include | Kind::Action => Value::from(text.to_string()),
        };
        if let Some(check) = self.spec.check {
            check(text).map_err(|reason| bad(&reason))?;
        }
        Ok(value)
    }

    /// This entry as a figment provider.
    pub(crate) fn provider(&self) -> Result<EntryProvider, ConfigError> {
        Ok(EntryProvider { key: self.spec.name, value: self.typed()?, at: self.at.to_string() })
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

    fn typed(option: &str, value: Option<&str>) -> Result<Value, ConfigError> {
        Entry {
            spec: lookup(option).unwrap(),
            value: value.map(str::to_string),
            at: Source::Default,
        }
        .typed()
    }

    #[test]
    fn booleans() {
        for (text, want) in [
            ("true", true),
            ("yes", true),
            ("on", true),
            ("1", true),
            ("TRUE", true),
            ("Yes", true),
            ("false", false),
            ("no", false),
            ("off", false),
            ("0", false),
            ("Off", false),
        ] {
            assert_eq!(typed("master", Some(text)).unwrap().to_bool(), Some(want), "{text}");
        }
        assert_eq!(typed("master", None).unwrap().to_bool(), Some(true), "bare");
        assert_eq!(typed("vacuum", Some("")).unwrap().to_bool(), Some(true), "empty");
        let err = typed("vacuum", Some("maybe")).unwrap_err().to_string();
        assert!(err.contains("vacuum \"maybe\": want true/false"), "{err}");
    }

    #[test]
    fn values_by_kind() {
        assert_eq!(typed("threads", Some("4")).unwrap().to_u128(), Some(4));
        assert!(typed("threads", Some("four")).unwrap_err().to_string().contains("whole number"));
        assert!(typed("threads", Some("-1")).is_err());
        assert_eq!(typed("chmod-socket", None).unwrap().as_str(), Some("666"));
        assert!(matches!(
            typed("socket", None),
            Err(ConfigError::MissingValue { option: "socket", .. })
        ));
        assert!(typed("socket", Some(":9000")).unwrap().as_array().is_some());
        assert!(typed("env", Some("NOEQUALS")).is_err());
        assert!(typed("listen", Some("99999999999")).is_err());
    }
}
