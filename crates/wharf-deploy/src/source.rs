//! What a release is made from, as one hash: so a restarted `wharf up`
//! can tell whether the working tree still is the serving release's source
//! (then it restores that release and deploys nothing) or has changed.
//!
//! The files hashed are those a commit would hold: in a git work tree,
//! tracked and untracked files minus what `.gitignore` excludes (so a
//! build's output, `target/` or `bin/`, does not count as a change); outside
//! git, every file but `.git`, `.wharf` and `target`. `.wharf` (wharf's own
//! data dir next to the app) never counts. Each file contributes its path,
//! whether it is executable or a link, and its content.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wharf_store::ReleaseRow;

/// Names never part of a source tree (outside git also `target`).
const NEVER: &[&str] = &[".git", ".wharf"];

/// The hash of the source tree in `dir`: `sha256:<hex>`.
pub async fn source_hash(dir: &Path) -> std::io::Result<String> {
    let dir = dir.to_path_buf();
    let files = match git_files(&dir).await {
        Some(files) => files,
        None => {
            let walk = dir.clone();
            tokio::task::spawn_blocking(move || walk_files(&walk))
                .await
                .map_err(std::io::Error::other)??
        }
    };
    tokio::task::spawn_blocking(move || hash_files(&dir, files))
        .await
        .map_err(std::io::Error::other)?
}

/// Why a deploy of the tree whose hash is `hash` and whose resolved config
/// (with any `--env`) serialises to `config_json` would make something
/// else than `release`; `None` when it is the same.
pub fn differs(release: &ReleaseRow, hash: &str, config_json: &str) -> Option<String> {
    let n = release.number;
    match &release.source_hash {
        None => Some(format!(
            "release {n} was made before wharf recorded sources, so it cannot tell"
        )),
        Some(h) if h != hash => Some(format!("the source has changed since release {n}")),
        Some(_) if release.config_json != config_json => Some(format!(
            "its configuration (wharf.toml or --env) differs from release {n}'s"
        )),
        Some(_) => None,
    }
}

/// The files git would commit, relative to `dir`; `None` outside a git
/// work tree (or without git).
async fn git_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .filter(|p| {
            !p.components()
                .any(|c| NEVER.iter().any(|n| c.as_os_str() == *n))
        })
        .collect();
    files.sort();
    files.dedup();
    Some(files)
}

/// Every file under `dir` but `.git`, `.wharf` and `target`, relative, sorted.
fn walk_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let name = entry.file_name();
            if NEVER.iter().any(|n| name == *n) || (rel.as_os_str().is_empty() && name == "target")
            {
                continue;
            }
            let path = rel.join(&name);
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hash_files(dir: &Path, files: Vec<PathBuf>) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for rel in files {
        let path = dir.join(&rel);
        // Listed by git but deleted from the tree: not part of it.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        h.update(rel.as_os_str().as_bytes());
        h.update([0]);
        if meta.file_type().is_symlink() {
            h.update(b"link\0");
            h.update(std::fs::read_link(&path)?.as_os_str().as_bytes());
        } else if meta.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            h.update(if exec { b"exec\0" } else { b"file\0" });
            h.update(meta.len().to_le_bytes());
            let mut f = std::fs::File::open(&path)?;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        } else {
            // A directory git lists (a submodule) or a special file.
            h.update(b"other\0");
        }
        h.update([0]);
    }
    let digest = h.finalize();
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    #[tokio::test]
    async fn outside_git_every_file_but_wharfs_own_counts() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "wharf.toml", "name = \"a\"");
        write(dir.path(), "src/main.rs", "fn main() {}");
        let first = source_hash(dir.path()).await.unwrap();
        assert!(first.starts_with("sha256:") && first.len() == 71, "{first}");
        assert_eq!(source_hash(dir.path()).await.unwrap(), first);

        write(dir.path(), ".wharf/wharf.db", "state");
        write(dir.path(), "target/debug/a", "binary");
        assert_eq!(source_hash(dir.path()).await.unwrap(), first, "not sources");

        write(dir.path(), "src/main.rs", "fn main() { }");
        let changed = source_hash(dir.path()).await.unwrap();
        assert_ne!(changed, first);
        std::fs::set_permissions(
            dir.path().join("src/main.rs"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(
            source_hash(dir.path()).await.unwrap(),
            changed,
            "mode counts"
        );
    }

    #[tokio::test]
    async fn in_git_ignored_files_do_not_count_and_untracked_ones_do() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        write(dir.path(), ".gitignore", "/bin/\n");
        write(dir.path(), "wharf.toml", "name = \"a\"");
        let first = source_hash(dir.path()).await.unwrap();
        // A build's output, and wharf's data dir even when not ignored.
        write(dir.path(), "bin/app", "built");
        write(dir.path(), ".wharf/wharf.db", "state");
        assert_eq!(source_hash(dir.path()).await.unwrap(), first);
        // A new file nobody committed yet is part of what a deploy takes.
        write(dir.path(), "new.rs", "x");
        assert_ne!(source_hash(dir.path()).await.unwrap(), first);
    }

    #[test]
    fn differs_says_why() {
        let release = |hash: Option<&str>| ReleaseRow {
            app_id: 1,
            number: 3,
            revision: None,
            config_json: "{\"a\":1}".into(),
            dir: None,
            status: wharf_store::ReleaseStatus::Ready,
            created_ms: 0,
            source_hash: hash.map(str::to_owned),
            source: None,
        };
        assert_eq!(differs(&release(Some("h")), "h", "{\"a\":1}"), None);
        assert_eq!(
            differs(&release(Some("h")), "x", "{\"a\":1}").unwrap(),
            "the source has changed since release 3"
        );
        assert!(
            differs(&release(Some("h")), "h", "{\"a\":2}")
                .unwrap()
                .contains("configuration")
        );
        assert!(
            differs(&release(None), "h", "{\"a\":1}")
                .unwrap()
                .contains("cannot tell")
        );
    }
}
