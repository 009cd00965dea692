//! What docker compose's YAML reader (go-yaml v3, a port of libyaml)
//! accepts and saphyr refuses, rewritten into what both read the same way.
//!
//! libyaml does not check indentation inside a flow collection (`[…]`,
//! `{…}`) or on the continuation lines of a quoted scalar, and takes a `#`
//! right after a closing quote or bracket as a comment. saphyr follows the
//! YAML 1.2 spec there, so a file `docker compose` runs, such as
//!
//! ```yaml
//! services:
//!   web:
//!     command: [
//!       "bundle", "exec", "puma"
//!     ]
//! ```
//!
//! is refused. [`relax`] indents such continuation lines one column past
//! the line that opened the collection or the quote (which changes no
//! value: YAML folds that whitespace away), turns leading tabs on them into
//! spaces, and blanks such comments. It is only used after the file failed
//! to parse as written, so a file saphyr reads is never touched and a file
//! neither reads keeps its first error. [`Shifts`] maps positions in the
//! rewritten text back to the file.

use std::borrow::Cow;

/// Spaces added at the start of each line (0-based line index).
#[derive(Debug, Default, Clone)]
pub struct Shifts(Vec<usize>);

impl Shifts {
    /// The column in the original file of 1-based `line`, `col` of the
    /// rewritten text.
    pub fn col(&self, line: usize, col: usize) -> usize {
        match line.checked_sub(1).and_then(|i| self.0.get(i)) {
            Some(&added) if added > 0 => col.saturating_sub(added).max(1),
            _ => col,
        }
    }
}

/// Where the scanner is at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Block,
    /// Inside a flow collection opened on a line indented this much.
    Flow {
        depth: usize,
        indent: usize,
    },
    /// Inside a quoted scalar opened on a line indented this much (and in a
    /// flow collection when `flow` is set).
    Quoted {
        quote: char,
        indent: usize,
        flow: Option<(usize, usize)>,
    },
    /// Inside a block scalar (`|`, `>`) of a node indented this much.
    BlockScalar {
        indent: usize,
    },
}

/// The rewritten text, or `None` when there is nothing to rewrite.
pub fn relax(source: &str) -> Option<(String, Shifts)> {
    let mut out = String::with_capacity(source.len() + 64);
    let mut shifts = Vec::new();
    let mut state = State::Block;
    let mut changed = false;
    for line in source.split_inclusive('\n') {
        let (body, end) = split_eol(line);
        let indent = body.len() - body.trim_start_matches(' ').len();
        if let State::BlockScalar { indent: parent } = state {
            if body.trim().is_empty() || indent > parent {
                out.push_str(line);
                shifts.push(0);
                continue;
            }
            state = State::Block;
        }
        // A continuation line: indent it past the line that opened the
        // collection or quote.
        let opened_at = match state {
            State::Flow { indent, .. } => Some(indent),
            State::Quoted { indent, .. } => Some(indent),
            _ => None,
        };
        let mut text: Cow<'_, str> = Cow::Borrowed(body);
        let mut added = 0;
        if let Some(opened) = opened_at
            && !body.trim().is_empty()
        {
            let in_flow = matches!(state, State::Flow { .. });
            let lead_len = body.len()
                - body
                    .trim_start_matches(|c| c == ' ' || (in_flow && c == '\t'))
                    .len();
            let rest = &body[lead_len..];
            let width = lead_len;
            if width <= opened || body[..lead_len].contains('\t') {
                added = (opened + 1).saturating_sub(width);
                text = Cow::Owned(format!("{}{rest}", " ".repeat(width + added)));
                changed = true;
            }
        }
        let (scanned, next) = scan_line(&text, state, indent);
        if let Cow::Owned(_) = scanned {
            changed = true;
        }
        state = next;
        out.push_str(&scanned);
        out.push_str(end);
        shifts.push(added);
    }
    changed.then_some((out, Shifts(shifts)))
}

fn split_eol(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\n', '\r']);
    (body, &line[body.len()..])
}

/// Follows one line's quotes, brackets, comments and block scalar
/// indicators; returns the line (with go-yaml-only comments blanked) and
/// the state at its end.
fn scan_line<'a>(line: &'a str, mut state: State, indent: usize) -> (Cow<'a, str>, State) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    // Whether a node may start here: line start, after `- `, `: `, `? `,
    // or a flow indicator.
    let mut node_start = true;
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let next = chars.get(i + 1).map(|(_, c)| *c);
        if let State::Quoted { quote, flow, .. } = state {
            match (quote, c) {
                ('"', '\\') => i += 1,
                ('"', '"') => state = after_quote(flow),
                ('\'', '\'') if next == Some('\'') => i += 1,
                ('\'', '\'') => state = after_quote(flow),
                _ => {}
            }
            prev = Some(c);
            i += 1;
            if !matches!(state, State::Quoted { .. }) {
                // go-yaml: `"x"#c` is a value and a comment.
                if chars.get(i).is_some_and(|(_, c)| *c == '#') {
                    return (blank_from(line, chars[i].0), state);
                }
                node_start = false;
            }
            continue;
        }
        let blank_before = prev.is_none_or(char::is_whitespace);
        let in_flow = matches!(state, State::Flow { .. });
        match c {
            ' ' | '\t' => {}
            '#' if blank_before => return (Cow::Borrowed(line), state),
            '#' if matches!(prev, Some(']' | '}')) => return (blank_from(line, at), state),
            '"' | '\'' if node_start => {
                let flow = match state {
                    State::Flow { depth, indent } => Some((depth, indent)),
                    _ => None,
                };
                let indent = flow.map_or(indent, |(_, i)| i);
                state = State::Quoted {
                    quote: c,
                    indent,
                    flow,
                };
            }
            '[' | '{' if node_start || in_flow => {
                state = match state {
                    State::Flow { depth, indent } => State::Flow {
                        depth: depth + 1,
                        indent,
                    },
                    _ => State::Flow { depth: 1, indent },
                };
                node_start = true;
            }
            ']' | '}' if in_flow => {
                if let State::Flow { depth, indent } = state {
                    state = if depth > 1 {
                        State::Flow {
                            depth: depth - 1,
                            indent,
                        }
                    } else {
                        State::Block
                    };
                }
                node_start = false;
            }
            ',' if in_flow => node_start = true,
            ':' if in_flow || next.is_none_or(char::is_whitespace) => node_start = true,
            '-' | '?' if node_start && next.is_none_or(char::is_whitespace) => {}
            '|' | '>' if node_start && !in_flow => {
                let rest: String = chars[i + 1..].iter().map(|(_, c)| *c).collect();
                let header = rest.split(" #").next().unwrap_or("").trim();
                if header.chars().all(|c| matches!(c, '-' | '+' | '0'..='9')) {
                    return (Cow::Borrowed(line), State::BlockScalar { indent });
                }
                node_start = false;
            }
            // Anchors and tags come before the node they name.
            '&' | '!' if node_start => {
                while i + 1 < chars.len() && !chars[i + 1].1.is_whitespace() {
                    i += 1;
                }
            }
            _ => node_start = false,
        }
        prev = Some(c);
        i += 1;
    }
    (Cow::Borrowed(line), state)
}

fn after_quote(flow: Option<(usize, usize)>) -> State {
    match flow {
        Some((depth, indent)) => State::Flow { depth, indent },
        None => State::Block,
    }
}

/// `line` with everything from byte `at` on replaced by spaces (a comment
/// go-yaml reads and saphyr refuses; spaces keep every column).
fn blank_from(line: &str, at: usize) -> Cow<'_, str> {
    let width = line[at..].chars().count();
    Cow::Owned(format!("{}{}", &line[..at], " ".repeat(width)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relaxed(s: &str) -> String {
        relax(s).map(|(t, _)| t).unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn indents_flow_continuation_lines() {
        let src = "services:\n  web:\n    command: [\n      \"a\", \"b\"\n    ]\n    image: x\n";
        assert_eq!(
            relaxed(src),
            "services:\n  web:\n    command: [\n      \"a\", \"b\"\n     ]\n    image: x\n"
        );
        let (_, shifts) = relax(src).unwrap();
        assert_eq!(shifts.col(5, 6), 5);
        assert_eq!(shifts.col(4, 7), 7);
    }

    #[test]
    fn tabs_in_flow_become_spaces() {
        assert_eq!(relaxed("a: [\n\t1\n]\n"), "a: [\n 1\n ]\n");
    }

    #[test]
    fn indents_quoted_continuation_lines() {
        assert_eq!(relaxed("s:\n  a: 'x\n y'\n"), "s:\n  a: 'x\n   y'\n");
    }

    #[test]
    fn blanks_comments_right_after_a_closer() {
        assert_eq!(relaxed("a: \"x\"#c\nb: [1]#d\n"), "a: \"x\"  \nb: [1]  \n");
    }

    #[test]
    fn leaves_block_scalars_and_plain_text_alone() {
        let src = "a: |\n  [x\n  'y\nb: it's [fine]\nc: x#y\n";
        assert!(relax(src).is_none());
    }
}
