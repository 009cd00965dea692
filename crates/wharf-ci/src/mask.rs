//! Secret values hidden in step output: every occurrence of a value becomes
//! `[masked]`.
//!
//! Values shorter than [`MIN_SECRET_LEN`] are not masked: hiding every `1`
//! or `on` would garble the output and tell nothing anyway. A value of
//! several lines (a PEM key) is masked line by line, since output is
//! masked a line at a time. The longest value is tried first, so a secret
//! that contains another is hidden whole.

use std::borrow::Cow;

/// What a secret value is replaced with.
pub const MASK: &str = "[masked]";
/// Shortest value that is masked, in bytes.
pub const MIN_SECRET_LEN: usize = 4;

/// Replaces secret values in lines of output.
#[derive(Clone, Default)]
pub struct Masker {
    /// Longest first, no duplicates.
    values: Vec<String>,
}

/// Never prints the values.
impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} values)", self.values.len())
    }
}

impl Masker {
    pub fn new<I, S>(secrets: I) -> Masker
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut values: Vec<String> = secrets
            .into_iter()
            .flat_map(|s| {
                s.as_ref()
                    .lines()
                    .map(|l| l.trim_end_matches('\r').to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Masker { values }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `line` with every secret value replaced by [`MASK`].
    pub fn mask<'a>(&self, line: &'a str) -> Cow<'a, str> {
        if !self.values.iter().any(|v| line.contains(v.as_str())) {
            return Cow::Borrowed(line);
        }
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            match self.values.iter().find(|v| rest.starts_with(v.as_str())) {
                Some(v) => {
                    out.push_str(MASK);
                    rest = &rest[v.len()..];
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence() {
        let m = Masker::new(["s3cr3t", "hunter2"]);
        assert_eq!(
            m.mask("token=s3cr3t and s3cr3t, pw hunter2"),
            "token=[masked] and [masked], pw [masked]"
        );
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_not_masked() {
        let m = Masker::new(["abc", "", "1"]);
        assert!(m.is_empty());
        assert_eq!(m.mask("abc 1"), "abc 1");
        assert_eq!(Masker::new(["abcd"]).mask("xabcdx"), "x[masked]x");
    }

    #[test]
    fn the_longest_value_wins() {
        let m = Masker::new(["pass", "password123"]);
        assert_eq!(m.mask("password123 pass"), "[masked] [masked]");
        // The mask itself is never masked again.
        let m = Masker::new(["mask", "[masked]x"]);
        assert_eq!(m.mask("mask"), "[masked]");
    }

    #[test]
    fn multi_line_values_are_masked_line_by_line() {
        let m = Masker::new(["-----BEGIN KEY-----\r\nAAAAbbbbCCCC\n-----END KEY-----\n"]);
        assert_eq!(m.mask("AAAAbbbbCCCC"), "[masked]");
        assert_eq!(m.mask("x -----END KEY----- y"), "x [masked] y");
    }

    #[test]
    fn unicode_around_and_in_values() {
        let m = Masker::new(["clé-secrète"]);
        assert_eq!(m.mask("é clé-secrète ü"), "é [masked] ü");
    }

    #[test]
    fn debug_does_not_show_values() {
        let m = Masker::new(["s3cr3t"]);
        assert_eq!(format!("{m:?}"), "Masker(1 values)");
    }
}
