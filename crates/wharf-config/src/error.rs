//! Errors: one located [`ConfigError`] per problem, all of a file's problems
//! gathered in [`ConfigErrors`], and [`LoadError`] for reading the file.
//!
//! Also holds [`Sink`], the collector the parser and validator push into, which
//! turns byte offsets into `line:col` so no other module has to.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::Location;

/// One problem in a config, with where it is and, when we can tell, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    pub location: Location,
    /// What is wrong, on what, e.g. "unknown key `comand` in [processes.web]".
    pub message: String,
    /// What to do about it, e.g. "did you mean `command`?".
    pub hint: Option<String>,
}

impl ConfigError {
    /// Adds or replaces the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// `path:line:col`, or just `path` for problems that are not in a file
/// (line 0, e.g. `--env` overrides given on the command line).
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.path.display())
        } else {
            write!(f, "{}:{}:{}", self.path.display(), self.line, self.col)
        }
    }
}

/// Every problem found in one config, in source order. Never empty when
/// returned by this crate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let count = self.0.len();
        let noun = if count == 1 { "error" } else { "errors" };
        write!(f, "{count} {noun}")?;
        // Name the file only when all errors agree on it, so the summary
        // never lies about where to look.
        if let Some(first) = self.0.first() {
            let path = &first.location.path;
            if self.0.iter().all(|e| &e.location.path == path) {
                write!(f, " in {}", path.display())?;
            }
        }
        Ok(())
    }
}

/// Why [`crate::AppConfig::load`] failed.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(
        "could not read {}: {source}; is this an app directory with a wharf.toml?",
        path.display()
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

/// Collects errors while parsing one source; locates byte spans in it.
#[derive(Debug)]
pub(crate) struct Sink<'s> {
    path: PathBuf,
    source: &'s str,
    errors: Vec<ConfigError>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(path: &Path, source: &'s str) -> Self {
        Sink {
            path: path.to_path_buf(),
            source,
            errors: Vec::new(),
        }
    }

    /// Records an error at the start of `span`.
    pub(crate) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let location = self.locate(span.start);
        self.push(location, message.into(), None);
    }

    /// Records an error at the start of `span`, with a hint.
    pub(crate) fn error_hint(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let location = self.locate(span.start);
        self.push(location, message.into(), Some(hint.into()));
    }

    /// Records an error that has no position in the source (line 0).
    pub(crate) fn error_unlocated(&mut self, message: String, hint: Option<String>) {
        let location = Location {
            path: self.path.clone(),
            line: 0,
            col: 0,
        };
        self.push(location, message, hint);
    }

    fn push(&mut self, location: Location, message: String, hint: Option<String>) {
        self.errors.push(ConfigError {
            location,
            message,
            hint,
        });
    }

    /// The text of `span`, or "" if it is not inside the source.
    pub(crate) fn text(&self, span: &Range<usize>) -> &'s str {
        self.source.get(span.clone()).unwrap_or("")
    }

    /// Ok(value) if nothing was reported, else every error in source order.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.into_errors())
        }
    }

    /// Everything reported so far, in source order.
    pub(crate) fn into_errors(mut self) -> ConfigErrors {
        // Stable sort: errors at the same spot keep the order they were found in.
        self.errors
            .sort_by_key(|e| (e.location.line, e.location.col));
        ConfigErrors(self.errors)
    }

    /// 1-based line and column (in characters) of byte `offset`.
    fn locate(&self, offset: usize) -> Location {
        // Clamp to a char boundary at or before `offset` so a bogus span can
        // never make slicing panic.
        let mut end = offset.min(self.source.len());
        while !self.source.is_char_boundary(end) {
            end -= 1;
        }
        let before = self.source.get(..end).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).unwrap_or("").chars().count() + 1;
        Location {
            path: self.path.clone(),
            line,
            col,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_char_columns() {
        let sink = Sink::new(Path::new("w.toml"), "a = 1\nbé = 2\n");
        let at = |o| {
            let l = sink.locate(o);
            (l.line, l.col)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(6), (2, 1));
        // "é" is two bytes but one column: `=` is byte 10, column 4.
        assert_eq!(at(10), (2, 4));
        // Inside a multi-byte char and past the end do not panic.
        assert_eq!(at(8), (2, 2));
        assert_eq!(at(999), (3, 1));
    }
}
