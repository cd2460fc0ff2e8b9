//! What answers a request before the app: uWSGI's route rules, static
//! files, and the response headers every answer gets.
//!
//! [`Site`] is the [`Responder`] the core runs. For each request it runs
//! the route rules in order (which may rewrite the request, add variables,
//! ask for headers, or answer: a redirect, a `401`, a status, a file),
//! then looks for a static file, then hands the request to the app (the
//! Python responder, or any other). `add-header`/`del-header` and the
//! rules' `addheader:`/`delheader:` apply to whatever answers, and
//! `donotlog:` keeps the request out of the log. Everything is parsed at
//! start-up ([`Front::new`]); nothing here knows a protocol or Python.

mod auth;
mod cond;
mod rules;
mod script_name;
mod template;

use bytes::Bytes;
pub use rules::RuleSpec;
use rules::{Marks, Routes, Verdict};
use rwsgi_proto::{Answerer, HeadEdit, LentBody, Replies, Request, Responder};
pub use rwsgi_static::Settings as StaticSettings;
use rwsgi_static::StaticFiles;
use script_name::ScriptNames;
use std::sync::Arc;

/// The options, as the config gives them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The route rules, in the order given.
    pub routes: Vec<RuleSpec>,
    /// `add-header = Name: value`.
    pub add_headers: Vec<String>,
    /// `del-header = Name`.
    pub del_headers: Vec<String>,
    pub statics: rwsgi_static::Settings,
    /// The `mount` prefixes, and `manage-script-name`.
    pub mounts: Vec<String>,
    pub manage_script_name: bool,
}

/// A rule or setting that cannot work, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(String);

impl RuleError {
    pub(crate) fn new(reason: impl Into<String>) -> RuleError {
        RuleError(reason.into())
    }

    /// The error, led by where the rule was given.
    fn at(self, spec: &RuleSpec) -> RuleError {
        RuleError(format!("{}: {} = {}: {}", spec.at, spec.option, spec.value, self.0))
    }
}

/// Everything in front of the app, ready to serve; shared by every
/// connection of a worker.
#[derive(Debug)]
pub struct Front {
    routes: Routes,
    /// The static options' files; also what a route's `static:` serves.
    statics: StaticFiles,
    /// Whether any static option maps a path.
    maps_paths: bool,
    /// `add-header`/`del-header`, applied to every response.
    headers: Option<Arc<HeadEdit>>,
    /// `manage-script-name`, done first.
    script_names: Option<ScriptNames>,
}

impl Front {
    /// Parses every rule and option; every problem is reported.
    pub fn new(settings: &Settings) -> Result<Front, Vec<RuleError>> {
        let mut errors = Vec::new();
        let routes = Routes::parse(&settings.routes).unwrap_or_else(|mut found| {
            errors.append(&mut found);
            Routes::default()
        });
        let statics = StaticFiles::new(&settings.statics).unwrap_or_else(|err| {
            errors.push(RuleError::new(err.to_string()));
            StaticFiles::default()
        });
        let mut edit = HeadEdit::default();
        for header in &settings.add_headers {
            match rules::header_pair(header.as_bytes()) {
                Ok(pair) => edit.add.push(pair),
                Err(err) => errors.push(RuleError::new(format!("add-header = {header}: {err}"))),
            }
        }
        for name in &settings.del_headers {
            if name.trim().eq_ignore_ascii_case("content-length") {
                errors.push(RuleError::new(format!(
                    "del-header = {name}: Content-Length frames the response: rwsgi keeps it"
                )));
            }
            edit.remove.push(Bytes::from(name.trim().to_string()));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Front {
            routes,
            statics,
            maps_paths: !settings.statics.is_empty(),
            headers: (!edit.is_empty()).then(|| Arc::new(edit)),
            script_names: ScriptNames::new(&settings.mounts, settings.manage_script_name),
        })
    }

    /// Whether it does nothing: the app answers every request as it is.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && !self.maps_paths
            && self.headers.is_none()
            && self.script_names.is_none()
    }

    /// The responder with this in front of `app`.
    pub fn with<R: Responder>(self: Arc<Self>, app: R) -> Site<R> {
        Site { front: self, app }
    }

    /// Answers what it can; hands the rest to `app`.
    async fn respond<R: Responder>(&self, app: &R, mut request: Request) -> Replies {
        if let Some(names) = &self.script_names {
            names.apply(&mut request.environ);
        }
        let mut marks = Marks::default();
        let verdict = self.routes.apply(&mut request.environ, &mut marks, &self.statics).await;
        let replies = match verdict {
            Verdict::Answer(events) => Replies::ready(events).answered_by(Answerer::Route),
            Verdict::Pass => {
                match self.maps_paths.then(|| self.statics.serve(&request.environ)).flatten() {
                    Some(events) => Replies::ready(events).answered_by(Answerer::Static),
                    None => app.respond(request).await,
                }
            }
        };
        let replies = if marks.quiet { replies.quiet() } else { replies };
        match (&self.headers, marks.add.is_empty() && marks.remove.is_empty()) {
            (None, true) => replies,
            (Some(shared), true) => replies.edited(Arc::clone(shared)),
            (shared, false) => {
                let mut edit = shared.as_deref().cloned().unwrap_or_default();
                // A rule's delheader also takes back an add-header's.
                edit.add.retain(|(name, _)| {
                    !marks.remove.iter().any(|gone| gone.eq_ignore_ascii_case(name))
                });
                edit.remove.extend(marks.remove);
                edit.add.extend(marks.add);
                replies.edited(Arc::new(edit))
            }
        }
    }
}

/// [`Front`] in front of an app: the responder the core runs.
#[derive(Debug)]
pub struct Site<R> {
    front: Arc<Front>,
    app: R,
}

impl<R: Responder> Responder for Site<R> {
    fn respond(&self, request: Request) -> impl Future<Output = Replies> + Send {
        self.front.respond(&self.app, request)
    }

    fn runs_inline(&self) -> bool {
        self.app.runs_inline()
    }

    /// The app's memory: a request the front answers itself drops it unread.
    fn lend_body(&self, size: usize) -> impl Future<Output = Option<LentBody>> + Send {
        self.app.lend_body(size)
    }
}

#[cfg(test)]
mod tests;
