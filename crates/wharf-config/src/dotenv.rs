//! Dotenv files (`env_file`), read as docker compose reads them.
//!
//! One `KEY=VALUE` per line; blank lines and lines starting with `#` are
//! skipped; `export KEY=VALUE` is accepted. Values:
//! - unquoted: trimmed; a `#` after whitespace starts a comment;
//!   `${VAR}`, `$VAR`, `${VAR:-default}` and `${VAR-default}` are expanded;
//! - `"double quoted"`: may span lines; `\n`, `\r`, `\t`, `\"`, `\\` and
//!   `\$` are escapes; variables are expanded;
//! - `'single quoted'`: taken as written.
//!
//! Variables expand from the keys defined before them — in this file and
//! in the files read before it — never from the wharf server's own
//! environment: a release is made of what its files say. An unset
//! variable is empty (or its default). Parsing is pure; every bad line is
//! reported, with its number.

use std::collections::BTreeMap;

/// A problem on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

/// Parses `text`; `known` are the values defined before this file (for
/// expansion). Returns the pairs in file order, or every bad line.
pub fn parse(
    text: &str,
    known: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, Vec<DotenvError>> {
    let (pairs, errors) = parse_lenient(text, known);
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(errors)
    }
}

/// Parses `text` as [`parse`] does, keeping the good lines when others are
/// bad (as `wharf import` reads a compose project's `.env`).
pub fn parse_lenient(
    text: &str,
    known: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<DotenvError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    let mut defined = known.clone();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let raw = lines[i];
        i += 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, rest)) = line.split_once('=') else {
            errors.push(DotenvError {
                line: number,
                message: format!(
                    "has no `=`: write KEY=VALUE (a bare {:?} would take its value from where compose runs; wharf reads only what the file says)",
                    line.trim()
                ),
            });
            continue;
        };
        let key = key.trim();
        if !valid_key(key) {
            errors.push(DotenvError {
                line: number,
                message: format!(
                    "has key {key:?}: keys are letters, digits and `_`, not starting with a digit"
                ),
            });
            continue;
        }
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => body[..end].to_owned(),
                None => {
                    errors.push(DotenvError {
                        line: number,
                        message: "has a `'` that is never closed".into(),
                    });
                    continue;
                }
            }
        } else if let Some(body) = rest.strip_prefix('"') {
            // May continue on the next lines until the closing quote.
            let mut text = body.to_owned();
            let closed = loop {
                if let Some(end) = closing_quote(&text) {
                    text.truncate(end);
                    break true;
                }
                match lines.get(i) {
                    Some(next) => {
                        text.push('\n');
                        text.push_str(next);
                        i += 1;
                    }
                    None => break false,
                }
            };
            if !closed {
                errors.push(DotenvError {
                    line: number,
                    message: "has a `\"` that is never closed".into(),
                });
                continue;
            }
            expand(&unescape(&text), &defined)
        } else {
            let value = match rest.find(" #").or_else(|| rest.find("\t#")) {
                Some(comment) => &rest[..comment],
                None => rest,
            };
            expand(value.trim(), &defined)
        };
        defined.insert(key.to_owned(), value.clone());
        out.retain(|(k, _)| k != key);
        out.push((key.to_owned(), value));
    }
    (out, errors)
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The index of the first unescaped `"`.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// Double-quoted escapes. `\$` is kept as `\u{0}$`-free `$` by marking it
/// so expansion leaves it alone.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push(ESCAPED_DOLLAR),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Stands for a `$` that must not start an expansion.
const ESCAPED_DOLLAR: char = '\u{f8ff}';

/// `${VAR}`, `$VAR`, `${VAR:-default}` (unset or empty) and `${VAR-default}`
/// (unset) from `defined`.
fn expand(text: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{')
            && let Some(end) = inner.find('}')
        {
            let spec = &inner[..end];
            let (name, default, empty_too) = if let Some((n, d)) = spec.split_once(":-") {
                (n, Some(d), true)
            } else if let Some((n, d)) = spec.split_once('-') {
                (n, Some(d), false)
            } else {
                (spec, None, false)
            };
            let value = defined.get(name);
            let use_default = match value {
                None => true,
                Some(v) => empty_too && v.is_empty(),
            };
            match (use_default, default) {
                (true, Some(d)) => out.push_str(&expand(d, defined)),
                (true, None) => {}
                (false, _) => out.push_str(value.map_or("", String::as_str)),
            }
            rest = &inner[end + 1..];
            continue;
        }
        let name_len = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .count();
        if name_len == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('$');
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        out.push_str(defined.get(name).map_or("", String::as_str));
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out.replace(ESCAPED_DOLLAR, "$")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parsed(text: &str) -> Vec<(String, String)> {
        parse(text, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn values_as_compose_reads_them() {
        let text = r#"
# a comment
export RAILS_ENV=production
PLAIN = spaced value   # trailing comment
HASH=a#b
SINGLE='no $EXPANSION here # nor comment'
DOUBLE="line\nnext \"quoted\" \$HOME"
HOST=db
URL=postgres://${HOST}:5432/${NAME:-app}
EMPTY=
MULTI="first
second"
"#;
        let got = parsed(text);
        let map: BTreeMap<_, _> = got.into_iter().collect();
        assert_eq!(map["RAILS_ENV"], "production");
        assert_eq!(map["PLAIN"], "spaced value");
        assert_eq!(map["HASH"], "a#b");
        assert_eq!(map["SINGLE"], "no $EXPANSION here # nor comment");
        assert_eq!(map["DOUBLE"], "line\nnext \"quoted\" $HOME");
        assert_eq!(map["URL"], "postgres://db:5432/app");
        assert_eq!(map["EMPTY"], "");
        assert_eq!(map["MULTI"], "first\nsecond");
    }

    #[test]
    fn defaults_and_earlier_files() {
        let known = BTreeMap::from([("PORT".to_owned(), "5432".to_owned())]);
        let got = parse(
            "A=${PORT}\nB=${UNSET:-x}\nC=${UNSET-y}\nD=${EMPTYV:-z}\nEMPTYV=\nE=${EMPTYV:-z}${EMPTYV-w}\nF=$PORT-$UNSET.\n",
            &known,
        )
        .unwrap();
        let map: BTreeMap<_, _> = got.into_iter().collect();
        assert_eq!(map["A"], "5432");
        assert_eq!(map["B"], "x");
        assert_eq!(map["C"], "y");
        assert_eq!(map["D"], "z");
        assert_eq!(map["E"], "z");
        assert_eq!(map["F"], "5432-.");
    }

    #[test]
    fn a_later_line_wins_and_order_is_kept() {
        assert_eq!(
            parsed("A=1\nB=2\nA=3\n"),
            [("B".into(), "2".into()), ("A".into(), "3".into())]
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let errors = parse(
            "GOOD=1\nNOEQUALS\n1BAD=x\nQ='open\nR=\"never closed\n",
            &BTreeMap::new(),
        )
        .unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{errors:?}");
        assert!(errors[0].message.contains("has no `=`"));
    }
}
