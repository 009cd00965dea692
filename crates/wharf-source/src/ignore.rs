//! Ignore files (`.wharfignore`, `.dockerignore`): Docker's pattern rules
//! on `globset`. Used here to pack an app and by `wharf-runtime` to filter
//! a docker build context.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::IgnoreError;

/// The patterns of an ignore file, applied as Docker applies a
/// `.dockerignore`: one pattern a line, `#` starts a comment line, blank
/// lines are skipped, `!` makes an exception; each pattern is cleaned
/// (`/foo`, `./foo` and `foo/` all mean `foo`) and matched against the path
/// relative to the root, `/`-separated. `*` and `?` do not cross `/`, `**`
/// matches any number of directories, `\` escapes. A pattern that matches a
/// directory excludes everything under it, and the last pattern that
/// matches a path (or one of its parent directories) decides. The globs
/// are `globset`'s, which also reads `{a,b}` as alternatives (Docker takes
/// the braces literally).
#[derive(Debug, Clone)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    glob: GlobMatcher,
    exception: bool,
}

impl Ignore {
    /// Parses the text of an ignore file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Ignore, IgnoreError> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let error = |reason: String| IgnoreError {
                location: format!("{}:{}", path.display(), n + 1),
                reason,
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                if exception {
                    return Err(error("`!` needs a pattern after it".to_owned()));
                }
                // `/` or `.`: Docker matches no path with these either.
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|err| error(format!("`{pattern}` is not a valid pattern: {err}")))?;
            rules.push(Rule {
                glob: glob.compile_matcher(),
                exception,
            });
        }
        Ok(Ignore { rules })
    }

    /// Whether `path` (relative to the root, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.exception == excluded && matches_or_parent(&rule.glob, path) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether some pattern is an exception: then an excluded directory
    /// must still be walked, since something under it may be kept.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

/// Whether `glob` matches `path` or one of its parent directories.
fn matches_or_parent(glob: &GlobMatcher, path: &str) -> bool {
    glob.is_match(path)
        || path
            .match_indices('/')
            .any(|(i, _)| glob.is_match(&path[..i]))
}

/// A pattern as Go's `filepath.Clean` leaves it, without a leading `/`:
/// `.` segments and repeated slashes dropped, `..` applied.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Checks which of `paths` the ignore file `text` excludes.
    fn check(text: &str, expect: &[(&str, bool)]) {
        let ignore = Ignore::parse(text, Path::new(".dockerignore")).unwrap();
        for (path, excluded) in expect {
            assert_eq!(
                ignore.excludes(path),
                *excluded,
                "{text:?} on {path}: expected excluded = {excluded}"
            );
        }
    }

    #[test]
    fn patterns_follow_dockers_rules() {
        // A directory excludes what is under it; cleaned forms are equal.
        for text in ["tmp", "/tmp", "./tmp", "tmp/", "a/../tmp"] {
            check(text, &[("tmp", true), ("tmp/x/y", true), ("tmpx", false)]);
        }
        // `*` and `?` stay within one segment; patterns are anchored.
        check(
            "*.md\nsrc/?.rs",
            &[
                ("README.md", true),
                ("docs/README.md", false),
                ("src/a.rs", true),
                ("src/ab.rs", false),
                ("src/x/a.rs", false),
            ],
        );
        // `**` crosses directories, including none.
        check(
            "**/*.log\ndocs/**",
            &[
                ("a.log", true),
                ("x/y/a.log", true),
                ("docs/a/b", true),
                ("docs", false),
            ],
        );
        // The last matching pattern decides; exceptions reach inside
        // excluded directories.
        check(
            "*.md\n!README.md\nvendor\n!vendor/keep\nvendor/keep/tmp",
            &[
                ("CHANGES.md", true),
                ("README.md", false),
                ("vendor/x", true),
                ("vendor/keep/y", false),
                ("vendor/keep/tmp/z", true),
            ],
        );
        // Escapes and classes.
        check(
            "\\*.txt\n[ab].c",
            &[
                ("*.txt", true),
                ("x.txt", false),
                ("a.c", true),
                ("c.c", false),
            ],
        );
        // Comments and blank lines are nothing; `/` alone is nothing.
        check("# all\n\n  \n/", &[("x", false)]);
    }

    #[test]
    fn exceptions_are_known() {
        let plain = Ignore::parse("a\nb", Path::new("i")).unwrap();
        let with = Ignore::parse("a\n!a/b", Path::new("i")).unwrap();
        assert!(!plain.has_exceptions() && with.has_exceptions());
    }

    #[test]
    fn bad_patterns_are_reported_with_their_line() {
        for (text, needle) in [
            ("ok\n!\n", ".dockerignore:2: `!` needs a pattern"),
            (
                "ok\n\n[a-\n",
                ".dockerignore:3: `[a-` is not a valid pattern",
            ),
        ] {
            let err = Ignore::parse(text, Path::new(".dockerignore")).unwrap_err();
            assert!(err.to_string().contains(needle), "{text:?}: {err}");
        }
    }
}
