//! Volumes on the host: what the process runtime links into a release, and
//! the directory sizes `wharf volumes` shows.
//!
//! A named volume of the process runtime is `<data>/apps/<app>/volumes/<name>`,
//! outside every `releases/<n>`, so it outlives them all. Before an instance
//! or a task of a release starts, `<release>/<target>` is made a symlink to
//! it (or to the host path of a bind). Like a docker named volume, an empty
//! volume is first seeded with what the release has at the target, so a
//! directory the app ships with (`storage/.keep`) is still there.
//!
//! Architecture invariant: nothing here ever deletes a volume's data; only
//! [`remove_named`] does, and only `wharf volumes remove` and
//! `wharf apps remove --volumes` call it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::{RuntimeError, VolumeMount, VolumeSource, release};

/// `<app_dir>/volumes`.
pub(crate) fn volumes_dir(app_dir: &Path) -> PathBuf {
    app_dir.join("volumes")
}

/// Where `mount` lives on the host.
pub(crate) fn host_path(app_dir: &Path, mount: &VolumeMount) -> PathBuf {
    match &mount.source {
        VolumeSource::Named(name) => volumes_dir(app_dir).join(name),
        VolumeSource::Bind(path) => path.clone(),
    }
}

/// Links every volume of `mounts` into the release directory `workdir`
/// (targets are relative to it). Idempotent: a link already in place is
/// left alone.
pub(crate) fn link_all(
    app_dir: &Path,
    workdir: &Path,
    mounts: &[VolumeMount],
) -> Result<(), RuntimeError> {
    for mount in mounts {
        link(app_dir, workdir, mount)?;
    }
    Ok(())
}

fn link(app_dir: &Path, workdir: &Path, mount: &VolumeMount) -> Result<(), RuntimeError> {
    let source = host_path(app_dir, mount);
    let target = workdir.join(mount.target.trim_start_matches('/'));
    if fs::read_link(&target).is_ok_and(|to| to == source) {
        return Ok(());
    }
    let fresh = match fs::symlink_metadata(&source) {
        Ok(_) => is_empty_dir(&source),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(&source)
                .map_err(|err| RuntimeError::io("create volume directory", &source, err))?;
            true
        }
        Err(err) => return Err(RuntimeError::io("read volume", &source, err)),
    };
    match fs::symlink_metadata(&target) {
        Ok(meta) => {
            // What the release ships at the target seeds an empty named
            // volume; otherwise the volume shadows it, as a mount would.
            if fresh && meta.is_dir() && matches!(mount.source, VolumeSource::Named(_)) {
                copy_tree(&target, &source)
                    .map_err(|err| RuntimeError::io("seed volume from", &target, err))?;
            }
            if meta.is_dir() {
                fs::remove_dir_all(&target)
            } else {
                fs::remove_file(&target)
            }
            .map_err(|err| RuntimeError::io("replace with a volume link", &target, err))?;
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)
                    .map_err(|err| RuntimeError::io("create directory", parent, err))?;
            }
        }
        Err(err) => return Err(RuntimeError::io("read", &target, err)),
    }
    std::os::unix::fs::symlink(&source, &target)
        .map_err(|err| RuntimeError::io("link volume at", &target, err))
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// Copies the tree `from` into the existing directory `to`, keeping what
/// `to` already has (files, symlinks and permissions are copied; a file
/// that exists in both is left as it is in `to`).
pub fn merge_missing(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_into(from, to, false)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_into(from, to, true)
}

fn copy_into(from: &Path, to: &Path, overwrite: bool) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        let exists = fs::symlink_metadata(&dest).is_ok();
        if kind.is_dir() {
            copy_into(&src, &dest, overwrite)?;
        } else if exists && !overwrite {
            continue;
        } else if kind.is_symlink() {
            if exists {
                fs::remove_file(&dest)?;
            }
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dest)?;
        } else {
            fs::copy(&src, &dest)?;
        }
    }
    Ok(())
}

/// Bytes used by the files under `path` (symlinks not followed).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The named volumes under `app_dir`, by name.
pub(crate) fn list_named(app_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(volumes_dir(app_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Deletes named volume `name` and its data. Whether it was there.
pub(crate) fn remove_named(app_dir: &Path, name: &str) -> Result<bool, RuntimeError> {
    let dir = volumes_dir(app_dir).join(name);
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(false);
    }
    release::remove(&dir)?;
    Ok(true)
}

/// Removes everything of `app_dir` but its named volumes (`keep_volumes`)
/// or everything; returns the volumes kept (or removed).
pub(crate) fn remove_app_dir(
    app_dir: &Path,
    keep_volumes: bool,
) -> Result<Vec<String>, RuntimeError> {
    let volumes = list_named(app_dir);
    if !keep_volumes || volumes.is_empty() {
        release::remove(app_dir)?;
        return Ok(volumes);
    }
    let Ok(entries) = fs::read_dir(app_dir) else {
        return Ok(volumes);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == "volumes" {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            release::remove(&path)?;
        } else {
            fs::remove_file(&path).map_err(|err| RuntimeError::io("remove", &path, err))?;
        }
    }
    Ok(volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, target: &str) -> VolumeMount {
        VolumeMount {
            source: VolumeSource::Named(name.into()),
            target: target.into(),
            read_only: false,
        }
    }

    #[test]
    fn a_fresh_volume_is_seeded_then_shared_by_later_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        let (r1, r2) = (app.join("releases/1"), app.join("releases/2"));
        fs::create_dir_all(r1.join("storage")).unwrap();
        fs::write(r1.join("storage/.keep"), "").unwrap();
        fs::create_dir_all(r2.join("storage")).unwrap();
        fs::write(r2.join("storage/shipped"), "release 2").unwrap();
        let mounts = [named("storage", "storage")];

        link_all(&app, &r1, &mounts).unwrap();
        fs::write(r1.join("storage/db.sqlite3"), "data").unwrap();
        // Twice is fine.
        link_all(&app, &r1, &mounts).unwrap();
        link_all(&app, &r2, &mounts).unwrap();

        let volume = app.join("volumes/storage");
        assert_eq!(fs::read_link(r2.join("storage")).unwrap(), volume);
        assert_eq!(
            fs::read_to_string(r2.join("storage/db.sqlite3")).unwrap(),
            "data"
        );
        assert!(volume.join(".keep").exists());
        // Not empty any more: release 2's own files do not seed it.
        assert!(!volume.join("shipped").exists());
        assert_eq!(list_named(&app), ["storage"]);
        assert_eq!(dir_size(&volume), 4);
    }

    #[test]
    fn nested_targets_and_binds_are_linked() {
        let tmp = tempfile::tempdir().unwrap();
        let (app, release, host) = (
            tmp.path().join("app"),
            tmp.path().join("release"),
            tmp.path().join("srv/media"),
        );
        fs::create_dir_all(&release).unwrap();
        let bind = VolumeMount {
            source: VolumeSource::Bind(host.clone()),
            target: "public/media".into(),
            read_only: false,
        };
        link_all(&app, &release, &[bind]).unwrap();
        assert_eq!(fs::read_link(release.join("public/media")).unwrap(), host);
        assert!(host.is_dir());
    }

    #[test]
    fn removing_an_app_keeps_its_volumes_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        fs::create_dir_all(app.join("volumes/storage")).unwrap();
        fs::create_dir_all(app.join("releases/1")).unwrap();
        assert_eq!(remove_app_dir(&app, true).unwrap(), ["storage"]);
        assert!(app.join("volumes/storage").is_dir());
        assert!(!app.join("releases").exists());
        assert!(remove_named(&app, "storage").unwrap());
        assert!(!remove_named(&app, "storage").unwrap());
    }

    #[test]
    fn merge_missing_keeps_what_is_there() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(a.join("css")).unwrap();
        fs::create_dir_all(b.join("css")).unwrap();
        fs::write(a.join("css/app-old.css"), "old").unwrap();
        fs::write(a.join("manifest.json"), "old").unwrap();
        fs::write(b.join("manifest.json"), "new").unwrap();
        merge_missing(&a, &b).unwrap();
        assert_eq!(
            fs::read_to_string(b.join("css/app-old.css")).unwrap(),
            "old"
        );
        assert_eq!(fs::read_to_string(b.join("manifest.json")).unwrap(), "new");
    }
}
