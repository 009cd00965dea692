//! Release snapshots of the `process` runtime: a copy of the source tree,
//! made beside its final place and renamed into it, so a half-copied release
//! never exists under its final name.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::RuntimeError;

/// Names never copied at any depth (`.git` may be a file in worktrees).
const SKIP_ANYWHERE: &[&str] = &[".git"];
/// Names never copied at the top of the source.
const SKIP_AT_TOP: &[&str] = &[".wharf", "target"];

/// Copies `source` to `dest` (which must not exist), atomically from the
/// point of view of `dest`. `avoid` is a directory never copied (the data
/// dir, when it lives inside the source tree).
pub(crate) fn snapshot(source: &Path, dest: &Path, avoid: &Path) -> Result<(), RuntimeError> {
    let meta = match fs::metadata(source) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(RuntimeError::NotADirectory {
                path: source.to_owned(),
            });
        }
        Err(err) => return Err(RuntimeError::io("read release source", source, err)),
    };
    if !meta.is_dir() {
        return Err(RuntimeError::NotADirectory {
            path: source.to_owned(),
        });
    }
    let parent = dest.parent().ok_or_else(|| {
        RuntimeError::io(
            "create release directory",
            dest,
            std::io::Error::other("no parent directory"),
        )
    })?;
    fs::create_dir_all(parent)
        .map_err(|err| RuntimeError::io("create releases directory", parent, err))?;
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    // Leftovers of an earlier crash for this release.
    remove_stale(parent, &format!(".tmp-{name}-"));
    remove_stale(parent, &format!(".old-{name}-"));

    let stamp = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!(".tmp-{name}-{stamp}"));
    let avoid = fs::metadata(avoid).ok().map(|m| (m.dev(), m.ino()));
    if let Err(err) = copy_dir(source, &tmp, true, avoid) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(err);
    }
    if fs::symlink_metadata(dest).is_ok() {
        // Re-prepare (e.g. after a crash): move the old one aside, then swap.
        let old = parent.join(format!(".old-{name}-{stamp}"));
        fs::rename(dest, &old)
            .map_err(|err| RuntimeError::io("move aside old release", dest, err))?;
        let renamed = fs::rename(&tmp, dest);
        let _ = fs::remove_dir_all(&old);
        renamed
            .map_err(|err| RuntimeError::io("move prepared release into place at", dest, err))?;
    } else {
        fs::rename(&tmp, dest)
            .map_err(|err| RuntimeError::io("move prepared release into place at", dest, err))?;
    }
    Ok(())
}

/// Deletes a release: renamed away first, so it is gone at once under its name.
pub(crate) fn remove(dest: &Path) -> Result<(), RuntimeError> {
    if fs::symlink_metadata(dest).is_err() {
        return Ok(());
    }
    let Some(parent) = dest.parent() else {
        return Ok(());
    };
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    let old = parent.join(format!(".old-{name}-{}", std::process::id()));
    fs::rename(dest, &old).map_err(|err| RuntimeError::io("remove release", dest, err))?;
    fs::remove_dir_all(&old).map_err(|err| RuntimeError::io("remove release files in", old, err))
}

fn remove_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn copy_dir(
    from: &Path,
    to: &Path,
    top: bool,
    avoid: Option<(u64, u64)>,
) -> Result<(), RuntimeError> {
    fs::create_dir(to).map_err(|err| RuntimeError::io("create directory", to, err))?;
    let entries =
        fs::read_dir(from).map_err(|err| RuntimeError::io("read directory", from, err))?;
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| RuntimeError::io("read directory", from, err))?;
        names.push(entry.path());
    }
    names.sort();
    for src in names {
        let Some(name) = src.file_name() else {
            continue;
        };
        let name_str = name.to_string_lossy();
        let dst = to.join(name);
        // Never follows symlinks, so a symlink loop cannot recurse.
        let meta = fs::symlink_metadata(&src).map_err(|err| RuntimeError::io("read", &src, err))?;
        let kind = meta.file_type();
        if SKIP_ANYWHERE.contains(&name_str.as_ref())
            || (top && SKIP_AT_TOP.contains(&name_str.as_ref()))
        {
            continue;
        }
        if kind.is_symlink() {
            let target =
                fs::read_link(&src).map_err(|err| RuntimeError::io("read symlink", &src, err))?;
            std::os::unix::fs::symlink(&target, &dst)
                .map_err(|err| RuntimeError::io("create symlink", &dst, err))?;
        } else if kind.is_dir() {
            if avoid == Some((meta.dev(), meta.ino())) {
                continue;
            }
            copy_dir(&src, &dst, false, avoid)?;
        } else if kind.is_file() {
            // Copies the permission bits too, so binaries stay executable.
            fs::copy(&src, &dst).map_err(|err| RuntimeError::io("copy file", &src, err))?;
        } else {
            tracing::debug!(path = %src.display(), "not copying special file into release");
        }
    }
    // Kept, but always owner-writable so retention can delete the release.
    let mode = fs::metadata(from)
        .map_err(|err| RuntimeError::io("read", from, err))?
        .permissions()
        .mode()
        | 0o700;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(|err| RuntimeError::io("set permissions of", to, err))?;
    Ok(())
}
