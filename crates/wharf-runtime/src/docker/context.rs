//! The build context of a release: the context directory as a tar archive
//! in memory, skipping `.git` (at any depth), `.wharf` and `target` (at the
//! top), and the data directory when it lives inside it; plus, when the
//! Dockerfile is not in what is sent, the Dockerfile under an extra name
//! (as the docker CLI does).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Names never sent at any depth (`.git` may be a file in worktrees).
const SKIP_ANYWHERE: &[&str] = &[".git"];
/// Names never sent at the top of the source.
const SKIP_AT_TOP: &[&str] = &[".wharf", "target"];

/// Tars `source` (symlinks as links, never followed). `avoid` is a directory
/// never included (the data dir, when it lives inside the source tree).
/// `extra`: a file added at the top under the given name.
pub(crate) fn tar_context(
    source: &Path,
    avoid: &Path,
    extra: Option<(&str, &Path)>,
) -> std::io::Result<Vec<u8>> {
    let avoid = fs::metadata(avoid).ok().map(|m| (m.dev(), m.ino()));
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    add_dir(&mut builder, source, Path::new(""), true, avoid)?;
    if let Some((name, path)) = extra {
        // Its content, not a link: the file lives outside the context.
        let mut file = fs::File::open(path)?;
        builder.append_file(name, &mut file)?;
    }
    builder.into_inner()
}

/// Where `dockerfile` is in the archive [`tar_context`] makes of `context`
/// (a `/`-separated relative path), or `None` when it is not sent: outside
/// the context, or under a skipped name. Both paths must be canonical.
pub(crate) fn path_in_context(context: &Path, dockerfile: &Path) -> Option<String> {
    let rel = dockerfile.strip_prefix(context).ok()?;
    let mut parts = Vec::new();
    for (i, part) in rel.components().enumerate() {
        let std::path::Component::Normal(name) = part else {
            return None;
        };
        let name = name.to_str()?;
        if SKIP_ANYWHERE.contains(&name) || (i == 0 && SKIP_AT_TOP.contains(&name)) {
            return None;
        }
        parts.push(name);
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn add_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    rel: &Path,
    top: bool,
    avoid: Option<(u64, u64)>,
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
        let name_str = name.to_string_lossy();
        if SKIP_ANYWHERE.contains(&name_str.as_ref())
            || (top && SKIP_AT_TOP.contains(&name_str.as_ref()))
        {
            continue;
        }
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        let rel_path = rel.join(name);
        if kind.is_dir() {
            if avoid == Some((meta.dev(), meta.ino())) {
                continue;
            }
            builder.append_dir(&rel_path, &path)?;
            add_dir(builder, &path, &rel_path, false, avoid)?;
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

    #[test]
    fn skips_and_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        fs::create_dir_all(src.join(".git")).unwrap();
        fs::create_dir_all(src.join("target")).unwrap();
        fs::create_dir_all(src.join(".wharf/data")).unwrap();
        fs::create_dir_all(src.join("sub/target")).unwrap();
        fs::create_dir_all(src.join("sub/.git")).unwrap();
        fs::write(src.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(src.join("target/x"), "x").unwrap();
        fs::write(src.join("sub/target/keep"), "k").unwrap();
        fs::write(src.join("sub/.git/HEAD"), "x").unwrap();
        std::os::unix::fs::symlink("Dockerfile", src.join("link")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = elsewhere.path().join("outside.Dockerfile");
        fs::write(&outside, "FROM scratch\n").unwrap();
        let bytes = tar_context(src, &src.join(".wharf/data"), Some((".x", &outside))).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
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
    fn dockerfile_paths() {
        let ctx = Path::new("/src/app");
        let at = |p: &str| path_in_context(ctx, Path::new(p));
        assert_eq!(at("/src/app/Dockerfile").as_deref(), Some("Dockerfile"));
        assert_eq!(
            at("/src/app/docker/web.Dockerfile").as_deref(),
            Some("docker/web.Dockerfile")
        );
        assert_eq!(at("/src/Dockerfile"), None);
        assert_eq!(at("/src/app/target/Dockerfile"), None);
        assert_eq!(at("/src/app/a/.git/Dockerfile"), None);
        assert_eq!(
            at("/src/app/a/target/Dockerfile").as_deref(),
            Some("a/target/Dockerfile")
        );
    }
}
