//! Imports a `docker-compose.yml` or a Kamal `config/deploy.yml` as a
//! `wharf.toml` (`wharf import compose|kamal`).
//!
//! Both importers read the YAML with a position on every key
//! ([`yaml`](crate::yaml)), walk it key by key, and either carry a key over
//! into the [`model`](crate::model) of a docker-runtime `wharf.toml` or add a
//! [`Warning`] saying where it was, why it was not carried over and what to
//! do instead. Nothing is dropped silently: a key neither mapped nor warned
//! about is a bug, and every warning says what changes because of it. Only
//! what makes an import impossible (broken YAML, no app to deploy, a host
//! that is still a placeholder) is an [`ImportError`].
//!
//! The result is text, not a config value: it is meant to be read and edited
//! by the person who ran the import, so it keeps their order and adds a
//! header saying where it came from.
//!
//! This crate reads strings and nothing else; the CLI reads and writes the
//! files (the compose file's `.env` too, passed in [`ComposeOptions`]). The
//! one place it looks at the environment is to turn a host path outside the
//! app directory (a compose bind mount, a secret file) into an absolute
//! one, from the current directory, as `docker compose` would.

use std::path::Path;

mod common;
mod compose;
mod kamal;
mod model;
mod yaml;

/// A `wharf.toml` made from another tool's config, and what could not be
/// carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The `wharf.toml` text, valid TOML, with a header comment.
    pub toml: String,
    /// In file order.
    pub warnings: Vec<Warning>,
}

/// A key of the source file that was not (fully) carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `file:line:col` of the key (or value) in the source file.
    pub location: String,
    /// Dotted path of the key, e.g. `services.web.deploy.resources`.
    pub key: String,
    /// Why it was not carried over, and what to do instead.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.key, self.message)
    }
}

/// Why nothing could be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{location}: invalid YAML: {message}; fix the file and import again")]
    Syntax { location: String, message: String },
    #[error("{file} is empty; point `wharf import {kind}` at your {what}")]
    Empty {
        file: String,
        kind: &'static str,
        what: &'static str,
    },
    #[error(
        "{location}: expected a mapping of keys at the top of the file, found {found}; is this a {what}?"
    )]
    NotAMapping {
        location: String,
        found: &'static str,
        what: &'static str,
    },
    #[error("{location}: `{key}` must be {expected}, found {found}; fix it and import again")]
    WrongType {
        location: String,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{file} has no `services`; is this a compose file?")]
    NoServices { file: String },
    #[error(
        "no service in {file} looks like the app to deploy: none publishes HTTP (`ports`, `expose`, traefik labels) or is built from this directory, and the others look like databases, caches or proxies (services: {services}); pass `--service NAME` to choose it"
    )]
    NoApp { file: String, services: String },
    #[error(
        "{file} has no service `{name}` (services: {services}); pass one of them to `--service`"
    )]
    UnknownService {
        file: String,
        name: String,
        services: String,
    },
    #[error(
        "no service in {file} can be built by wharf: {reasons}; fix the `build:` and import again"
    )]
    Unbuildable { file: String, reasons: String },
    #[error(
        "{location}: `{key}` is `{host}`, {why}; write the real one and import again, as the imported app would otherwise be routed at a host nobody reaches"
    )]
    Placeholder {
        location: String,
        key: String,
        host: String,
        why: &'static str,
    },
    #[error("`{name}` is not a valid app name: {reason}; try `--name {suggestion}`")]
    InvalidName {
        name: String,
        reason: &'static str,
        suggestion: String,
    },
    #[error("could not derive an app name from {file} or its directory; pass `--name NAME`")]
    NoName { file: String },
}

/// What `wharf import compose` may be told besides the file.
#[derive(Debug, Default, Clone, Copy)]
pub struct ComposeOptions<'a> {
    /// The app name; must already be a valid one.
    pub name: Option<&'a str>,
    /// The service that is the app (`--service`), instead of the one that
    /// publishes HTTP.
    pub service: Option<&'a str>,
    /// The text of the `.env` file next to the compose file, which compose
    /// reads values from for `${VAR}` when its shell does not set them.
    pub dotenv: Option<&'a str>,
}

/// Imports a compose file (`docker-compose.yml`, `compose.yaml`…).
///
/// `path` is used for locations in warnings and errors (as given), for the
/// default app name (the file's directory, as compose names its project),
/// and to resolve host paths outside the app directory. `app_name`, when
/// given, must already be a valid app name.
pub fn compose(path: &Path, source: &str, app_name: Option<&str>) -> Result<Import, ImportError> {
    compose_with(
        path,
        source,
        &ComposeOptions {
            name: app_name,
            ..ComposeOptions::default()
        },
    )
}

/// [`compose`], with the `.env` file and the app's service.
pub fn compose_with(
    path: &Path,
    source: &str,
    options: &ComposeOptions<'_>,
) -> Result<Import, ImportError> {
    compose::import(path, source, options)
}

/// Imports a Kamal `config/deploy.yml`. `app_name` defaults to its
/// `service`, else the app directory's name (the one holding `config/`).
pub fn kamal(path: &Path, source: &str, app_name: Option<&str>) -> Result<Import, ImportError> {
    kamal::import(path, source, app_name)
}

/// Parses the file and checks that it is a mapping.
fn parse_root(
    file: &str,
    source: &str,
    kind: &'static str,
    what: &'static str,
) -> Result<yaml::Node, ImportError> {
    let root = yaml::parse(source)
        .map_err(|e| ImportError::Syntax {
            location: format!("{file}:{}:{}", e.pos.line, e.pos.col),
            message: e.message,
        })?
        .ok_or_else(|| ImportError::Empty {
            file: file.to_owned(),
            kind,
            what,
        })?;
    if root.as_map().is_none() {
        return Err(ImportError::NotAMapping {
            location: format!("{file}:{}:{}", root.pos.line, root.pos.col),
            found: root.describe(),
            what,
        });
    }
    Ok(root)
}

/// The app name: `--name` as given (checked), else the first usable
/// candidate, sanitized.
fn app_name(
    explicit: Option<&str>,
    candidates: &[Option<String>],
    file: &str,
) -> Result<String, ImportError> {
    if let Some(name) = explicit {
        if common::is_valid_name(name) {
            return Ok(name.to_owned());
        }
        let suggestion = common::sanitize_name(name);
        return Err(ImportError::InvalidName {
            name: name.to_owned(),
            reason: "use lowercase letters, digits and `-`, not starting with `-`, at most 63 characters",
            suggestion: if suggestion.is_empty() {
                "my-app".into()
            } else {
                suggestion
            },
        });
    }
    candidates
        .iter()
        .flatten()
        .map(|c| common::sanitize_name(c))
        .find(|n| !n.is_empty())
        .ok_or_else(|| ImportError::NoName {
            file: file.to_owned(),
        })
}

/// The comment at the top of every imported file.
fn header(file: &str, command: &str, warnings: usize) -> Vec<String> {
    let mut lines = vec![format!("Imported from {file} by `wharf import {command}`.")];
    if warnings == 0 {
        lines.push("Every key was carried over.".into());
    } else {
        let s = if warnings == 1 { "" } else { "s" };
        lines.push(format!(
            "The import printed {warnings} warning{s} about what it could not carry over."
        ));
    }
    lines.push("Review it, then `wharf config check` and `wharf deploy`.".into());
    lines
}
