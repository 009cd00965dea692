//! The build context of a release: the context directory as a tar archive
//! in memory, filtered the way the docker CLI filters it, plus, when the
//! Dockerfile is not in what is sent, the Dockerfile under an extra name
//! (as the docker CLI does).
//!
//! What is left out:
//! * always: `.git` (at any depth), `.wharf` at the top, and the data
//!   directory when it lives inside the context;
//! * with an ignore file, what it excludes. The ignore file is
//!   `<Dockerfile>.dockerignore` next to the Dockerfile if there is one
//!   (as BuildKit reads it), else `.dockerignore` at the top of the context;
//!   its patterns follow Docker's rules (`wharf_source::Ignore`, shared
//!   with the packing of uploads);
//! * without one, `target` at the top (a Rust or Maven build directory is
//!   rarely meant for the image and can be gigabytes; a `.dockerignore`
//!   that does not list it sends it).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use wharf_source::Ignore;

use super::error::DockerError;

/// Names never sent at any depth (`.git` may be a file in worktrees).
const SKIP_ANYWHERE: &[&str] = &[".git"];
/// Names never sent at the top of the source.
const SKIP_AT_TOP: &[&str] = &[".wharf"];
/// Names not sent at the top of the source when there is no ignore file.
const SKIP_AT_TOP_BY_DEFAULT: &[&str] = &["target"];

/// The ignore file of a build: `<dockerfile>.dockerignore` if it exists,
/// else `<context>/.dockerignore`; `None` when neither does. The patterns
/// are `wharf-source`'s [`Ignore`] (Docker's rules).
pub(crate) fn load_ignore(
    context: &Path,
    dockerfile: &Path,
) -> Result<Option<Ignore>, DockerError> {
    let mut beside = dockerfile.as_os_str().to_owned();
    beside.push(".dockerignore");
    for path in [PathBuf::from(beside), context.join(".dockerignore")] {
        match fs::read_to_string(&path) {
            Ok(text) => {
                return Ignore::parse(&text, &path)
                    .map(Some)
                    .map_err(|err| DockerError::Ignore {
                        location: err.location,
                        reason: err.reason,
                    });
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(DockerError::Ignore {
                    location: path.display().to_string(),
                    reason: format!("could not be read: {err}"),
                });
            }
        }
    }
    Ok(None)
}

/// What [`tar_context`] leaves out of one context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter<'a> {
    ignore: Option<&'a Ignore>,
    /// `(dev, inode)` of a directory never sent (the data dir).
    avoid: Option<(u64, u64)>,
}

impl<'a> Filter<'a> {
    /// `avoid` is a directory never included (the data dir, when it lives
    /// inside the source tree).
    pub(crate) fn new(ignore: Option<&'a Ignore>, avoid: &Path) -> Self {
        let avoid = fs::metadata(avoid).ok().map(|m| (m.dev(), m.ino()));
        Filter { ignore, avoid }
    }

    /// What becomes of the entry at `rel` (`/`-separated, `name` its last
    /// part): always-skipped names first, then the ignore file (or the
    /// defaults without one). The ignore file itself is always sent, as the
    /// docker CLI does.
    fn verdict(&self, rel: &str, name: &str) -> Verdict {
        let top = !rel.contains('/');
        if SKIP_ANYWHERE.contains(&name) || (top && SKIP_AT_TOP.contains(&name)) {
            return Verdict::Never;
        }
        let ignored = match self.ignore {
            Some(_) if rel == ".dockerignore" => false,
            Some(ignore) => ignore.excludes(rel),
            None => top && SKIP_AT_TOP_BY_DEFAULT.contains(&name),
        };
        match ignored {
            false => Verdict::Send,
            // Left out itself, but an exception may bring back something
            // under it: walk it.
            true if self.ignore.is_some_and(Ignore::has_exceptions) => Verdict::Walk,
            true => Verdict::Never,
        }
    }
}

/// What [`Filter::verdict`] says of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Sent (a directory: walked too).
    Send,
    /// Not sent; a directory is walked for exceptions.
    Walk,
    /// Not sent, nor anything under it.
    Never,
}

/// Tars `source` (symlinks as links, never followed), leaving out what
/// `filter` does. `extra`: a file added at the top under the given name.
pub(crate) fn tar_context(
    source: &Path,
    filter: Filter<'_>,
    extra: Option<(&str, &Path)>,
) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    // Sparse files (a linked binary copied by `cp` keeps its holes) go as
    // plain files: the engine's tar reader refuses GNU sparse entries
    // ("unhandled tar header type 83").
    builder.sparse(false);
    add_dir(&mut builder, source, "", filter)?;
    if let Some((name, path)) = extra {
        // Its content, not a link: the file lives outside the context.
        let mut file = fs::File::open(path)?;
        builder.append_file(name, &mut file)?;
    }
    builder.into_inner()
}

/// Where `dockerfile` is in the archive [`tar_context`] makes of `context`
/// (a `/`-separated relative path), or `None` when it is not sent: outside
/// the context, or left out by `filter`. Both paths must be canonical.
pub(crate) fn path_in_context(
    context: &Path,
    dockerfile: &Path,
    filter: Filter<'_>,
) -> Option<String> {
    let rel = dockerfile.strip_prefix(context).ok()?;
    let mut parts: Vec<&str> = Vec::new();
    let count = rel.components().count();
    for part in rel.components() {
        let std::path::Component::Normal(name) = part else {
            return None;
        };
        parts.push(name.to_str()?);
        let sent = match filter.verdict(&parts.join("/"), name.to_str()?) {
            Verdict::Send => true,
            // A directory walked for exceptions.
            Verdict::Walk => parts.len() < count,
            Verdict::Never => false,
        };
        if !sent {
            return None;
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn add_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    rel: &str,
    filter: Filter<'_>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name() else {
            continue;
        };
        let name = name.to_string_lossy();
        let rel_path = if rel.is_empty() {
            name.clone().into_owned()
        } else {
            format!("{rel}/{name}")
        };
        let verdict = filter.verdict(&rel_path, &name);
        if verdict == Verdict::Never {
            continue;
        }
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            if filter.avoid == Some((meta.dev(), meta.ino())) {
                continue;
            }
            if verdict == Verdict::Send {
                builder.append_dir(&rel_path, &path)?;
            }
            // The engine creates the parents of what an exception brings back.
            add_dir(builder, &path, &rel_path, filter)?;
        } else if verdict == Verdict::Walk {
            continue;
        } else if kind.is_file() || kind.is_symlink() {
            builder.append_path_with_name(&path, &rel_path)?;
        } else {
            tracing::debug!(path = %path.display(), "not sending special file to the image build");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The sorted entry names of the archive of `src`.
    fn sent(src: &Path, ignore: Option<&Ignore>, extra: Option<(&str, &Path)>) -> Vec<String> {
        let filter = Filter::new(ignore, &src.join(".wharf/data"));
        let bytes = tar_context(src, filter, extra).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Creates `files` (a trailing `/` makes a directory) under `root`.
    fn tree(root: &Path, files: &[&str]) {
        for file in files {
            let path = root.join(file);
            if file.ends_with('/') {
                fs::create_dir_all(&path).unwrap();
            } else {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, "x").unwrap();
            }
        }
    }

    /// A file with a hole (as `cp` leaves a linked binary) is sent as a
    /// plain file with all its bytes, never as a GNU sparse entry.
    #[test]
    fn sparse_files_are_sent_as_plain_files() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let mut file = fs::File::create(dir.path().join("app")).unwrap();
        file.write_all(b"head").unwrap();
        file.seek(SeekFrom::Start(1 << 20)).unwrap();
        file.write_all(b"tail").unwrap();
        drop(file);
        let filter = Filter::new(None, &dir.path().join(".wharf"));
        let bytes = tar_context(dir.path(), filter, None).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        assert_eq!(content.len(), (1 << 20) + 4);
        assert!(content.ends_with(b"tail"));
    }

    #[test]
    fn skips_and_keeps_without_an_ignore_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        tree(
            src,
            &[
                ".git/HEAD",
                "target/x",
                ".wharf/data/",
                "sub/target/keep",
                "sub/.git/HEAD",
                "Dockerfile",
            ],
        );
        std::os::unix::fs::symlink("Dockerfile", src.join("link")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = elsewhere.path().join("outside.Dockerfile");
        fs::write(&outside, "FROM scratch\n").unwrap();
        assert_eq!(
            sent(src, None, Some((".x", &outside))),
            [
                ".x",
                "Dockerfile",
                "link",
                "sub",
                "sub/target",
                "sub/target/keep"
            ]
        );
    }

    #[test]
    fn an_ignore_file_decides_what_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        tree(
            src,
            &[
                ".git/HEAD",
                ".wharf/data/",
                "target/app.jar",
                "node_modules/left/index.js",
                "node_modules/kept/index.js",
                "logs/a.log",
                "src/main.rs",
                "src/debug.log",
                "Dockerfile",
            ],
        );
        let text =
            "# comment\n\nnode_modules\n!node_modules/kept\n**/*.log\n/logs/\n.dockerignore\n";
        let ignore = Ignore::parse(text, Path::new(".dockerignore")).unwrap();
        fs::write(src.join(".dockerignore"), text).unwrap();
        // `target` is sent once an ignore file does not list it; `.git`
        // and `.wharf` never are; the ignore file itself always is.
        assert_eq!(
            sent(src, Some(&ignore), None),
            [
                ".dockerignore",
                "Dockerfile",
                "node_modules/kept",
                "node_modules/kept/index.js",
                "src",
                "src/main.rs",
                "target",
                "target/app.jar",
            ]
        );
    }

    #[test]
    fn the_dockerfiles_own_ignore_file_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        tree(src, &["docker/web.Dockerfile", "a", "b"]);
        fs::write(src.join(".dockerignore"), "a\n").unwrap();
        let dockerfile = src.join("docker/web.Dockerfile");
        let general = load_ignore(src, &dockerfile).unwrap().unwrap();
        assert!(general.excludes("a") && !general.excludes("b"));
        fs::write(src.join("docker/web.Dockerfile.dockerignore"), "b\n").unwrap();
        let own = load_ignore(src, &dockerfile).unwrap().unwrap();
        assert!(!own.excludes("a") && own.excludes("b"));
        assert!(
            load_ignore(&src.join("docker"), &src.join("a"))
                .unwrap()
                .is_none()
        );
        // A bad pattern is the build's error, naming the file and line.
        fs::write(src.join("docker/.dockerignore"), "ok\n!\n").unwrap();
        let err = load_ignore(&src.join("docker"), &src.join("a")).unwrap_err();
        assert!(
            matches!(&err, DockerError::Ignore { location, .. } if location.ends_with(".dockerignore:2")),
            "{err}"
        );
    }

    #[test]
    fn dockerfile_paths() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        let none = Filter::new(None, &ctx.join(".wharf"));
        let at = |p: &str, filter| path_in_context(ctx, &ctx.join(p), filter);
        assert_eq!(at("Dockerfile", none).as_deref(), Some("Dockerfile"));
        assert_eq!(
            at("docker/web.Dockerfile", none).as_deref(),
            Some("docker/web.Dockerfile")
        );
        assert_eq!(
            path_in_context(ctx, Path::new("/elsewhere/Dockerfile"), none),
            None
        );
        assert_eq!(at("target/Dockerfile", none), None);
        assert_eq!(at("a/.git/Dockerfile", none), None);
        assert_eq!(
            at("a/target/Dockerfile", none).as_deref(),
            Some("a/target/Dockerfile")
        );

        // Left out by the ignore file: sent under the extra name instead.
        let ignore = Ignore::parse("docker\nDockerfile\n!docker/keep", Path::new("i")).unwrap();
        let ignoring = Filter::new(Some(&ignore), &ctx.join(".wharf"));
        assert_eq!(at("Dockerfile", ignoring), None);
        assert_eq!(at("docker/web.Dockerfile", ignoring), None);
        assert_eq!(
            at("docker/keep/Dockerfile", ignoring).as_deref(),
            Some("docker/keep/Dockerfile")
        );
        assert_eq!(
            at("target/Dockerfile", ignoring).as_deref(),
            Some("target/Dockerfile")
        );
    }
}
