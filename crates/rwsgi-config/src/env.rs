//! Options from the environment, as uWSGI reads them: `UWSGI_HTTP_SOCKET`
//! is `http-socket`; `RWSGI_` works the same. The environment is shared
//! with other software, so an unknown variable is a warning, not an error.

use crate::entry::Entry;
use crate::error::Source;
use crate::options::{self, Kind};

/// Variables uWSGI sets for itself (in its children, or on reload): never options.
const UWSGI_OWN: &[&str] = &[
    "UWSGI_ORIGINAL_PROC_NAME",
    "UWSGI_RELOADS",
    "UWSGI_EMPEROR_FD",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_VASSAL_NAME",
    "UWSGI_JAIL_PID",
    "UWSGI_FIFO",
];

/// The options `vars` set, and a warning for each `UWSGI_*`/`RWSGI_*`
/// variable that is not one.
pub(crate) fn entries(vars: &[(String, String)]) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix("UWSGI_").or_else(|| var.strip_prefix("RWSGI_")) else {
            continue;
        };
        if UWSGI_OWN.contains(&var.as_str()) {
            continue;
        }
        let name = rest.to_ascii_lowercase().replace('_', "-");
        match options::lookup(&name) {
            Some(spec) if matches!(spec.kind, Kind::Include | Kind::Action) => {
                warnings.push(format!(
                    "env {var}: {} is not read from the environment; ignored",
                    spec.name
                ));
            }
            Some(spec) => entries.push(Entry {
                spec,
                value: Some(value.clone()),
                at: Source::Env(var.clone()),
            }),
            None => warnings.push(format!("env {var}: not an rwsgi option; ignored")),
        }
    }
    (entries, warnings)
}
