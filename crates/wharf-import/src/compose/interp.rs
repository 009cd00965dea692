//! Compose's variable interpolation, with the values of the `.env` file
//! next to the compose file, which is where `docker compose` takes them
//! from when the shell it runs in does not set them.
//!
//! `${VAR}`, `$VAR`, `${VAR:-default}` (unset or empty), `${VAR-default}`
//! (unset), `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`,
//! `${VAR+replacement}` and `$$` (a literal `$`); defaults may themselves
//! hold variables. The `.env` file is read as compose reads it
//! ([`parse_dotenv`]). Pure functions: the CLI reads the file.

use std::collections::{BTreeMap, HashMap};

/// Variables from `.env`.
#[derive(Debug, Default, Clone)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A line of `.env` that compose would refuse.
#[derive(Debug, PartialEq, Eq)]
pub struct DotenvProblem {
    pub line: usize,
    pub message: String,
}

/// Reads a `.env` file as wharf reads an `env_file` (which is as compose
/// reads it: see `wharf_config::dotenv`). Every bad line is a problem; the
/// others are kept.
pub fn parse_dotenv(text: &str) -> (Vars, Vec<DotenvProblem>) {
    let (pairs, errors) = wharf_config::dotenv::parse_lenient(text, &BTreeMap::new());
    let problems = errors
        .into_iter()
        .map(|e| DotenvProblem {
            line: e.line,
            message: format!("this line {}", e.message),
        })
        .collect();
    (Vars(pairs.into_iter().collect()), problems)
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `.env` file.
    DotEnv,
    /// Not in `.env`: its default (or the empty `:+`/`+` replacement).
    Default,
    /// Not in `.env`, and no default: only the environment compose runs
    /// in knows it.
    Unset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub name: String,
    pub source: Source,
}

/// A value after interpolation.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    /// `None` when a variable is [`Source::Unset`].
    pub text: Option<String>,
    /// The variables, in order.
    pub uses: Vec<Use>,
    /// The whole value is one variable without a default (`${VAR}`,
    /// `$VAR`, `${VAR:?err}`): its name.
    pub only_var: Option<String>,
    /// The whole value is one `${…}`, whatever its operator: its name.
    pub whole: Option<String>,
}

impl Resolved {
    pub fn names(&self, source: &Source) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.uses {
            if u.source == *source && !out.contains(&u.name) {
                out.push(u.name.clone());
            }
        }
        out
    }
}

/// Interpolates `text` with the `.env` values.
pub fn resolve(text: &str, vars: &Vars) -> Resolved {
    let mut out = String::new();
    let mut uses = Vec::new();
    let mut complete = true;
    let chars: Vec<char> = text.chars().collect();
    let mut only_var = None;
    let mut whole = None;
    let mut i = 0;
    let mut pieces = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            pieces += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
                pieces += 1;
            }
            Some('{') => {
                let Some(end) = matching_brace(&chars, i + 1) else {
                    out.extend(&chars[i..]);
                    break;
                };
                let inner: String = chars[i + 2..end].iter().collect();
                let name_len = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let (name, op) = inner.split_at(name_len);
                let value = vars.get(name);
                let set = value.is_some();
                let non_empty = value.is_some_and(|v| !v.is_empty());
                let (colon, op) = match op.strip_prefix(':') {
                    Some(rest) => (true, rest),
                    None => (false, op),
                };
                let present = if colon { non_empty } else { set };
                let nested = |word: &str, uses: &mut Vec<Use>| -> Option<String> {
                    let r = resolve(word, vars);
                    uses.extend(r.uses);
                    r.text
                };
                let (piece, source) = match op.chars().next() {
                    None if !colon => (value.map(str::to_owned), None),
                    Some('-') if present => (value.map(str::to_owned), None),
                    Some('-') => (nested(&op[1..], &mut uses), Some(Source::Default)),
                    Some('?') if present => (value.map(str::to_owned), None),
                    Some('?') => (None, None),
                    Some('+') if present => (nested(&op[1..], &mut uses), None),
                    Some('+') => (Some(String::new()), Some(Source::Default)),
                    // `${VAR:}` or another operator compose refuses: kept
                    // as written.
                    _ => {
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                        pieces += 1;
                        continue;
                    }
                };
                let source = match (&piece, source) {
                    (_, Some(s)) => s,
                    (Some(_), None) => Source::DotEnv,
                    (None, None) => Source::Unset,
                };
                if pieces == 0 && end + 1 == chars.len() {
                    whole = Some(name.to_owned());
                    if matches!(op.chars().next(), None | Some('?')) {
                        only_var = Some(name.to_owned());
                    }
                }
                uses.push(Use {
                    name: name.to_owned(),
                    source,
                });
                match piece {
                    Some(p) => out.push_str(&p),
                    None => complete = false,
                }
                i = end + 1;
                pieces += 1;
            }
            Some(n) if n.is_ascii_alphabetic() || *n == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                if pieces == 0 && j == chars.len() {
                    only_var = Some(name.clone());
                    whole = Some(name.clone());
                }
                match vars.get(&name) {
                    Some(v) => {
                        out.push_str(v);
                        uses.push(Use {
                            name,
                            source: Source::DotEnv,
                        });
                    }
                    None => {
                        complete = false;
                        uses.push(Use {
                            name,
                            source: Source::Unset,
                        });
                    }
                }
                i = j;
                pieces += 1;
            }
            _ => {
                out.push('$');
                i += 1;
                pieces += 1;
            }
        }
    }
    Resolved {
        text: complete.then_some(out),
        uses,
        only_var,
        whole,
    }
}

/// The index of the `}` closing the `{` at `open` (defaults may nest).
fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (j, ch) in chars.iter().enumerate().skip(open) {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// "the default of `A`, `B` from .env" for messages.
pub fn describe(uses: &[Use]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for u in uses {
        if seen.contains(&u.name.as_str()) {
            continue;
        }
        seen.push(&u.name);
        parts.push(match u.source {
            Source::DotEnv => format!("`{}` from .env", u.name),
            Source::Default => format!("the default of `{}`", u.name),
            Source::Unset => format!("`{}`", u.name),
        });
    }
    parts.join(", ")
}

/// `` `A`, `B` `` for messages.
pub fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vars {
        let (vars, problems) = parse_dotenv(text);
        assert!(problems.is_empty(), "{problems:?}");
        vars
    }

    fn text(s: &str, v: &Vars) -> Option<String> {
        resolve(s, v).text
    }

    #[test]
    fn compose_defaults() {
        let v = vars("EMPTY=\nSET=x\n");
        assert_eq!(text("${EMPTY:-d}", &v).as_deref(), Some("d"));
        assert_eq!(text("${EMPTY-d}", &v).as_deref(), Some(""));
        assert_eq!(text("${UNSET-d}", &v).as_deref(), Some("d"));
        assert_eq!(text("${SET:-d}", &v).as_deref(), Some("x"));
        assert_eq!(text("${SET:+r}", &v).as_deref(), Some("r"));
        assert_eq!(text("${UNSET:+r}", &v).as_deref(), Some(""));
        assert_eq!(text("${EMPTY+r}", &v).as_deref(), Some("r"));
        assert_eq!(text("${UNSET:-${SET}y}", &v).as_deref(), Some("xy"));
        assert_eq!(text("a$$b", &v).as_deref(), Some("a$b"));
        assert_eq!(text("cost: 5$", &v).as_deref(), Some("cost: 5$"));
        assert_eq!(text("${OPEN", &v).as_deref(), Some("${OPEN"));
    }

    #[test]
    fn unset_variables_leave_the_value_unknown() {
        let v = vars("SET=x\n");
        let r = resolve("${UNSET}", &v);
        assert_eq!(r.text, None);
        assert_eq!(r.only_var.as_deref(), Some("UNSET"));
        let r = resolve("$SET", &v);
        assert_eq!(r.text.as_deref(), Some("x"));
        assert_eq!(r.only_var.as_deref(), Some("SET"));
        assert_eq!(r.uses[0].source, Source::DotEnv);
        let r = resolve("${KEY:?set KEY}", &v);
        assert_eq!((r.text, r.only_var.as_deref()), (None, Some("KEY")));
        let r = resolve("${EMPTY:?set it}", &vars("EMPTY=\n"));
        assert_eq!(r.text, None);
        let r = resolve("postgres://u:${PW}@db/x", &v);
        assert_eq!((r.text, r.only_var), (None, None));
        assert_eq!(r.uses[0].source, Source::Unset);
        let r = resolve("${PORT:-80}:80", &v);
        assert_eq!(r.text.as_deref(), Some("80:80"));
        assert_eq!(r.uses[0].source, Source::Default);
        assert_eq!(r.only_var, None);
        assert_eq!(resolve("${LEVEL:-info}", &v).only_var, None);
    }

    #[test]
    fn dotenv_like_compose() {
        let (v, problems) = parse_dotenv(
            "\u{feff}# comment\nexport A=1\nB = two words # note\nC='x # $A'\nD=\"line\\nnext $A\"\nE=\"multi\nline\"\nF=${A}-${MISSING:-d}\nG=a#b\nnot a line\n",
        );
        assert_eq!(v.get("A"), Some("1"));
        assert_eq!(v.get("B"), Some("two words"));
        assert_eq!(v.get("C"), Some("x # $A"));
        assert_eq!(v.get("D"), Some("line\nnext 1"));
        assert_eq!(v.get("E"), Some("multi\nline"));
        assert_eq!(v.get("F"), Some("1-d"));
        assert_eq!(v.get("G"), Some("a#b"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 10);
        assert!(
            problems[0].message.starts_with("this line has no `=`"),
            "{problems:?}"
        );
    }
}
