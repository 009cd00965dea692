//! The build context of a release: the source tree as a tar archive in
//! memory, skipping `.git` (at any depth), `.wharf` and `target` (at the top),
//! and the data directory when it lives inside the source.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Names never sent at any depth (`.git` may be a file in worktrees).
const SKIP_ANYWHERE: &[&str] = &[".git"];
/// Names never sent at the top of the source.
const SKIP_AT_TOP: &[&str] = &[".wharf", "target"];

/// Tars `source` (symlinks as links, never followed). `avoid` is a directory
/// never included (the data dir, when it lives inside the source tree).
pub(crate) fn tar_context(source: &Path, avoid: &Path) -> std::io::Result<Vec<u8>> {
    let avoid = fs::metadata(avoid).ok().map(|m| (m.dev(), m.ino()));
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    add_dir(&mut builder, source, Path::new(""), true, avoid)?;
    builder.into_inner()
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
        let bytes = tar_context(src, &src.join(".wharf/data")).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["Dockerfile", "link", "sub", "sub/target", "sub/target/keep"]
        );
    }
}
