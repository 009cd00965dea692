//! A small YAML tree with a source position on every key and value.
//!
//! Built from saphyr's marked nodes with scalar resolution turned off, so a
//! value keeps the exact text the user wrote (`3.10` stays `3.10`, not the
//! float 3.1) and whether it was quoted. Aliases are expanded by saphyr (with
//! its node budget against "billion laughs" documents); merge keys
//! (`<<: *defaults`), which saphyr leaves alone, are resolved here.
//!
//! What docker compose's reader accepts and saphyr does not (indentation
//! inside flow collections, mostly) is read through [`lenient`], only when
//! the file as written fails.

use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use saphyr_parser::Parser;

mod lenient;

use lenient::Shifts;

/// A 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(marker: &saphyr::Marker, shifts: &Shifts) -> Pos {
        // saphyr counts lines from 1 and columns from 0; editors count both
        // from 1.
        let line = marker.line();
        Pos {
            line,
            col: shifts.col(line, marker.col() + 1),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// `~`, `null`, or nothing at all (`KEY:`).
    Null,
    /// Any other scalar, as written. `quoted` is true for quoted and block
    /// scalars and `!!str` tags, which are always strings.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// Why a document could not be read.
#[derive(Debug)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses the first document of `source`. `None` for an empty file (or one
/// holding only comments).
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let shifts = Shifts::default();
    let first = match load(source, &shifts) {
        Ok(node) => return Ok(node),
        Err(e) => e,
    };
    // What go-yaml reads and saphyr does not. When that fails too, the
    // error further in the file: the first one was only saphyr's.
    match lenient::relax(source) {
        Some((relaxed, shifts)) => {
            load(&relaxed, &shifts).map_err(|e| if e.pos > first.pos { e } else { first })
        }
        None => Err(first),
    }
}

fn load(source: &str, shifts: &Shifts) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(source);
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    let scanned = parser.load(&mut loader, false);
    if let Some(e) = loader.error() {
        return Err(SyntaxError {
            pos: Pos::of(e.marker(), shifts),
            message: e.info().to_owned(),
        });
    }
    if let Err(e) = scanned {
        return Err(SyntaxError {
            pos: Pos::of(e.marker(), shifts),
            message: e.info().to_owned(),
        });
    }
    let Some(doc) = loader.into_documents().into_iter().next() else {
        return Ok(None);
    };
    let node = convert(&doc, 0, shifts)?;
    Ok(match node.kind {
        Kind::Null => None,
        _ => Some(node),
    })
}

/// Deeper than any real config; keeps a hostile file from overflowing the
/// stack while merge keys are resolved.
const MAX_DEPTH: usize = 200;

fn convert(node: &MarkedYaml<'_>, depth: usize, shifts: &Shifts) -> Result<Node, SyntaxError> {
    let pos = Pos::of(&node.span.start, shifts);
    if depth > MAX_DEPTH {
        return Err(SyntaxError {
            pos,
            message: format!("nested more than {MAX_DEPTH} levels deep"),
        });
    }
    let kind = match &node.data {
        YamlData::Representation(text, style, tag) => {
            let quoted = !matches!(style, ScalarStyle::Plain)
                || tag.as_ref().is_some_and(|t| t.suffix == "str");
            if !quoted && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL") {
                Kind::Null
            } else {
                Kind::Scalar {
                    text: text.to_string(),
                    quoted,
                }
            }
        }
        // Not produced with early parsing off, but harmless to handle.
        YamlData::Value(v) => match v {
            saphyr::Scalar::Null => Kind::Null,
            saphyr::Scalar::Boolean(b) => scalar(b.to_string()),
            saphyr::Scalar::Integer(i) => scalar(i.to_string()),
            saphyr::Scalar::FloatingPoint(f) => scalar(f.to_string()),
            saphyr::Scalar::String(s) => Kind::Scalar {
                text: s.to_string(),
                quoted: true,
            },
        },
        YamlData::Sequence(items) => Kind::Seq(
            items
                .iter()
                .map(|i| convert(i, depth + 1, shifts))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            let mut merges = Vec::new();
            for (k, v) in map {
                let key_pos = Pos::of(&k.span.start, shifts);
                let key = match convert(k, depth + 1, shifts)?.kind {
                    Kind::Scalar { text, quoted } => {
                        if text == "<<" && !quoted {
                            merges.push(convert(v, depth + 1, shifts)?);
                            continue;
                        }
                        text
                    }
                    Kind::Null => String::new(),
                    _ => {
                        return Err(SyntaxError {
                            pos: key_pos,
                            message: "a list or mapping used as a key; keys must be plain names"
                                .into(),
                        });
                    }
                };
                entries.push(Entry {
                    key,
                    key_pos,
                    value: convert(v, depth + 1, shifts)?,
                });
            }
            for merge in merges {
                merge_into(&mut entries, merge)?;
            }
            Kind::Map(entries)
        }
        // Compose's `!reset` and `!override` only matter when several files
        // are merged; a single file reads as if they were not there.
        YamlData::Tagged(_, inner) => return convert(inner, depth + 1, shifts),
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(SyntaxError {
                pos,
                message: "an alias to an unknown anchor".into(),
            });
        }
    };
    Ok(Node { pos, kind })
}

fn scalar(text: String) -> Kind {
    Kind::Scalar {
        text,
        quoted: false,
    }
}

/// YAML merge keys: the keys of the merged mapping(s) that the mapping does
/// not set itself. With a list of mappings, earlier ones win.
fn merge_into(entries: &mut Vec<Entry>, merge: Node) -> Result<(), SyntaxError> {
    let sources = match merge.kind {
        Kind::Map(m) => vec![m],
        Kind::Seq(items) => {
            let mut maps = Vec::new();
            for item in items {
                match item.kind {
                    Kind::Map(m) => maps.push(m),
                    _ => return Err(merge_error(item.pos)),
                }
            }
            maps
        }
        _ => return Err(merge_error(merge.pos)),
    };
    for source in sources {
        for entry in source {
            if !entries.iter().any(|e| e.key == entry.key) {
                entries.push(entry);
            }
        }
    }
    Ok(())
}

fn merge_error(pos: Pos) -> SyntaxError {
    SyntaxError {
        pos,
        message: "`<<` (merge key) takes a mapping or a list of mappings, usually `<<: *anchor`"
            .into(),
    }
}

impl Node {
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar (numbers and booleans as written).
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// A mapping's value for `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// What the node is, for messages: "a list", "a mapping"…
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "nothing",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// A plain `true`/`false` (and YAML 1.1's spellings compose accepts).
    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            Kind::Scalar { text, .. } => match text.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                    Some(false)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keeps_text_and_positions() {
        let doc = parse("a:\n  b: 3.10\n  c: 'x'\n").unwrap().unwrap();
        let a = doc.get("a").unwrap();
        let entries = a.as_map().unwrap();
        assert_eq!(entries[0].key, "b");
        assert_eq!(entries[0].key_pos, Pos { line: 2, col: 3 });
        assert_eq!(entries[0].value.as_str(), Some("3.10"));
        assert_eq!(entries[0].value.pos, Pos { line: 2, col: 6 });
    }

    #[test]
    fn resolves_merge_keys() {
        let src = "x: &d\n  a: 1\n  b: 2\ny:\n  <<: *d\n  b: 3\nz:\n  <<: [*d, {c: 4}]\n";
        let doc = parse(src).unwrap().unwrap();
        let y = doc.get("y").unwrap();
        assert_eq!(y.get("a").unwrap().as_str(), Some("1"));
        assert_eq!(y.get("b").unwrap().as_str(), Some("3"));
        let z = doc.get("z").unwrap();
        assert_eq!(z.get("c").unwrap().as_str(), Some("4"));
        assert_eq!(z.as_map().unwrap().len(), 3);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2, "{e:?}");
    }

    #[test]
    fn reads_what_docker_compose_reads() {
        let src = "services:\n  web:\n    command: [\n      \"a\", \"b\"\n    ]\n    image: x\n";
        let doc = parse(src).unwrap().unwrap();
        let web = doc.get("services").unwrap().get("web").unwrap();
        let command = web.get("command").unwrap().as_seq().unwrap();
        assert_eq!(command[1].as_str(), Some("b"));
        assert_eq!(command[1].pos, Pos { line: 4, col: 12 });
        assert_eq!(web.as_map().unwrap()[1].key_pos, Pos { line: 6, col: 5 });
        // The closing bracket on a less indented line, and items too.
        let src = "a:\n  b: {\n  c: 1,\n d: [x,\ny]}\n";
        let doc = parse(src).unwrap().unwrap();
        let b = doc.get("a").unwrap().get("b").unwrap();
        assert_eq!(b.get("d").unwrap().as_seq().unwrap().len(), 2);
        assert_eq!(b.as_map().unwrap()[1].key_pos, Pos { line: 4, col: 2 });
    }

    #[test]
    fn what_docker_compose_refuses_keeps_its_position() {
        // A tab as indentation, a duplicate key: go-yaml refuses them too.
        let e = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(e.pos.line, 2, "{e:?}");
        let e = parse("a: [\n  1\n]\na: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 4, "{e:?}");
    }

    #[test]
    fn empty_documents_are_none() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
    }

    #[test]
    fn alias_bombs_fail_instead_of_eating_memory() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&src).is_err());
    }
}
