//! The path rules of an upload, as pure functions: what an entry's path
//! may be, and where a link may point. Packing and unpacking both apply
//! them, so the CLI refuses what the server would.

use crate::error::Refusal;

/// The path of an entry, cleaned: `/`-separated components with `.` and
/// empty components dropped (`./a//b/` is `a/b`). The empty string is the
/// root itself (an entry `./`). Refused: an empty path, a path over
/// `max_len` bytes, a NUL byte, a path that is not UTF-8, an absolute path,
/// a `..` component.
pub(crate) fn entry_path(raw: &[u8], max_len: usize) -> Result<String, Refusal> {
    let text = checked_text(raw, max_len, Refusal::EmptyPath)?;
    if text.starts_with('/') {
        return Err(Refusal::AbsolutePath);
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Refusal::ParentDir),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// The target of the symlink at `link` (a cleaned, non-empty entry path),
/// if it is one wharf keeps: relative, and once resolved from the link's
/// directory, inside the tree. The target is written as leading `..`
/// components then names (`../../lib/x`, `./bin/y`); a `..` after a name
/// (`a/../b`) is refused, since `a` may itself be a link and the lexical
/// answer would then be wrong. With this form, and parents that are never
/// links, every link of an unpacked tree resolves inside it (or nowhere).
pub(crate) fn symlink_target(link: &str, raw: &[u8], max_len: usize) -> Result<String, Refusal> {
    let text = checked_text(raw, max_len, Refusal::EmptyLink)?;
    if text.starts_with('/') {
        return Err(Refusal::AbsoluteLink {
            target: text.to_owned(),
        });
    }
    let mut ups = 0usize;
    let mut down = false;
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." if down => {
                return Err(Refusal::LinkUpAfterDown {
                    target: text.to_owned(),
                });
            }
            ".." => ups += 1,
            _ => down = true,
        }
    }
    // The number of directories between the root and the link.
    let depth = link.split('/').count().saturating_sub(1);
    if ups > depth {
        return Err(Refusal::LinkOutside {
            target: text.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// `raw` as text: not empty (else `empty`), at most `max_len` bytes, no NUL
/// byte, UTF-8.
fn checked_text(raw: &[u8], max_len: usize, empty: Refusal) -> Result<&str, Refusal> {
    if raw.is_empty() {
        return Err(empty);
    }
    if raw.len() > max_len {
        return Err(Refusal::TooLong {
            len: raw.len(),
            max: max_len,
        });
    }
    if raw.contains(&0) {
        return Err(Refusal::Nul);
    }
    std::str::from_utf8(raw).map_err(|_| Refusal::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_cleaned() {
        for (raw, clean) in [
            ("a", "a"),
            ("a/b/c", "a/b/c"),
            ("./a//b/", "a/b"),
            ("dir/", "dir"),
            ("./", ""),
            (".", ""),
            ("a/./b", "a/b"),
            ("..x/x..", "..x/x.."),
        ] {
            assert_eq!(
                entry_path(raw.as_bytes(), 100).as_deref(),
                Ok(clean),
                "{raw}"
            );
        }
    }

    #[test]
    fn unsafe_entry_paths_are_refused() {
        for (raw, refusal) in [
            (&b""[..], Refusal::EmptyPath),
            (b"/etc/x", Refusal::AbsolutePath),
            (b"//x", Refusal::AbsolutePath),
            (b"..", Refusal::ParentDir),
            (b"../x", Refusal::ParentDir),
            (b"a/../../x", Refusal::ParentDir),
            (b"a/..", Refusal::ParentDir),
            (b"a\0b", Refusal::Nul),
            (b"a\xffb", Refusal::NotUtf8),
            (&[b'a'; 11], Refusal::TooLong { len: 11, max: 10 }),
        ] {
            assert_eq!(entry_path(raw, 10), Err(refusal), "{raw:?}");
        }
    }

    #[test]
    fn symlinks_inside_are_kept() {
        for (link, target) in [
            ("a", "b"),
            ("a", "."),
            ("a", "./b/c"),
            ("d/a", ".."),
            ("d/a", "../b"),
            ("d/e/a", "../../x/y"),
            ("node_modules/.bin/tool", "../tool/bin/cli.js"),
        ] {
            assert_eq!(
                symlink_target(link, target.as_bytes(), 100).as_deref(),
                Ok(target),
                "{link} -> {target}"
            );
        }
    }

    #[test]
    fn symlinks_out_are_refused() {
        let outside = |t: &str| Refusal::LinkOutside {
            target: t.to_owned(),
        };
        for (link, target, refusal) in [
            (
                "a",
                "/etc",
                Refusal::AbsoluteLink {
                    target: "/etc".into(),
                },
            ),
            ("a", "..", outside("..")),
            ("a", "../x", outside("../x")),
            ("d/a", "../../x", outside("../../x")),
            ("d/e/a", "./../../../x", outside("./../../../x")),
            (
                "a",
                "b/../..",
                Refusal::LinkUpAfterDown {
                    target: "b/../..".into(),
                },
            ),
            (
                "d/a",
                "x/../y",
                Refusal::LinkUpAfterDown {
                    target: "x/../y".into(),
                },
            ),
            ("a", "", Refusal::EmptyLink),
            ("a", "x\0", Refusal::Nul),
        ] {
            assert_eq!(
                symlink_target(link, target.as_bytes(), 100),
                Err(refusal),
                "{link} -> {target}"
            );
        }
        assert_eq!(
            symlink_target("a", &[b'x'; 101], 100),
            Err(Refusal::TooLong { len: 101, max: 100 })
        );
    }
}
