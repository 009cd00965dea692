//! Sources fetched with git: `wharf deploy --git URL --ref REF`, and the
//! commits pipelines build. The `git` CLI fetches the commit into
//! `<sources>/git-<commit>/` (the checkout, without `.git`); the release
//! records `git URL COMMIT`.
//!
//! What may be fetched: `https://`, `http://`, `ssh://`, `git://` and
//! `user@host:path` URLs from anyone; a path or `file://` URL on the
//! server's own disk only from a local caller (a remote one could
//! otherwise read any repository on the server). A ref is a branch, tag
//! or commit name: no leading `-`, no `..`, no spaces or shell
//! characters. git never prompts (`GIT_TERMINAL_PROMPT=0`), and a fetch
//! that takes over 10 minutes is stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL or ref is not one wharf fetches (the caller's mistake).
    #[error("{0}")]
    Refused(String),
    /// git could not fetch it (no such ref, unreachable, refused).
    #[error("could not fetch `{reference}` of {url}: {why}")]
    Fetch {
        url: String,
        reference: String,
        why: String,
    },
    #[error("could not run git ({0}); install git on the server")]
    NoGit(std::io::Error),
    #[error("git {what} took over {secs}s")]
    Timeout { what: String, secs: u64 },
    #[error("git {what} failed: {why}")]
    Git { what: String, why: String },
    #[error("could not prepare {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FetchError {
    /// Whether the caller's input is at fault (a 400, not a 500).
    pub fn is_callers(&self) -> bool {
        matches!(self, FetchError::Refused(_) | FetchError::Fetch { .. })
    }
}

/// Whether `url` may be fetched by a caller (`local`: on the server's
/// machine). `Err` says why not.
pub fn check_url(url: &str, local: bool) -> Result<(), String> {
    let remote_ok = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .any(|s| url.starts_with(s))
        || scp_like(url);
    let local_ok = url.starts_with("file://") || url.starts_with('/');
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("`{url}` is not a git URL"));
    }
    match (remote_ok, local_ok, local) {
        (true, _, _) | (_, true, true) => Ok(()),
        (_, true, false) => Err(format!(
            "`{url}` is a repository on the server's disk, which only a caller on the server may name; use an https:// or ssh:// URL"
        )),
        _ => Err(format!(
            "`{url}` is not a git URL wharf fetches: use https://, ssh://, git:// or user@host:path"
        )),
    }
}

/// `user@host:path`, as git reads it.
fn scp_like(url: &str) -> bool {
    let Some((user_host, path)) = url.split_once(':') else {
        return false;
    };
    !path.is_empty()
        && !path.starts_with("//")
        && user_host.contains('@')
        && user_host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_".contains(c))
}

/// Whether `reference` is a ref or commit name git takes as one.
pub fn check_ref(reference: &str) -> Result<(), String> {
    let ok = !reference.is_empty()
        && !reference.starts_with('-')
        && !reference.contains("..")
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{reference}` is not a branch, tag or commit name (letters, digits, `.`, `_`, `/`, `-`; not starting with `-`)"
        ))
    }
}

/// Fetches `reference` of `url` and checks it out under `sources`:
/// (the checkout, the full commit id). A commit fetched before is not
/// fetched again.
pub async fn fetch(
    sources: &Path,
    url: &str,
    reference: &str,
    local: bool,
) -> Result<(PathBuf, String), FetchError> {
    check_url(url, local).map_err(FetchError::Refused)?;
    check_ref(reference).map_err(FetchError::Refused)?;
    let io = |source: std::io::Error| FetchError::Io {
        path: sources.to_path_buf(),
        source,
    };
    if reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit()) {
        let dest = sources.join(format!("git-{}", reference.to_ascii_lowercase()));
        if dest.is_dir() {
            return Ok((dest, reference.to_ascii_lowercase()));
        }
    }
    tokio::fs::create_dir_all(sources).await.map_err(io)?;
    let tmp = sources.join(format!(
        ".git-{}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
        fastrand::u32(..)
    ));
    let commit = match fetch_into(&tmp, url, reference).await {
        Ok(commit) => commit,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
    };
    let dest = sources.join(format!("git-{commit}"));
    if dest.is_dir() {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        return Ok((dest, commit));
    }
    let _ = tokio::fs::remove_dir_all(tmp.join(".git")).await;
    match tokio::fs::rename(&tmp, &dest).await {
        Ok(()) => Ok((dest, commit)),
        Err(_) if dest.is_dir() => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            Ok((dest, commit))
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            Err(io(e))
        }
    }
}

async fn fetch_into(tmp: &Path, url: &str, reference: &str) -> Result<String, FetchError> {
    git(None, &["init", "-q", &tmp.to_string_lossy()]).await?;
    git(
        Some(tmp),
        &[
            "fetch",
            "--quiet",
            "--depth",
            "1",
            "--no-tags",
            "--",
            url,
            reference,
        ],
    )
    .await
    .map_err(|e| match e {
        FetchError::Git { why, .. } => FetchError::Fetch {
            url: url.to_owned(),
            reference: reference.to_owned(),
            why,
        },
        other => other,
    })?;
    let commit = git(Some(tmp), &["rev-parse", "FETCH_HEAD^{commit}"]).await?;
    git(
        Some(tmp),
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "FETCH_HEAD",
        ],
    )
    .await?;
    Ok(commit.trim().to_owned())
}

/// Runs git; its stdout, or its stderr's last line as the error.
async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, FetchError> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let what = args.first().copied().unwrap_or("").to_owned();
    let out = match tokio::time::timeout(FETCH_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(FetchError::NoGit(e)),
        Err(_) => {
            return Err(FetchError::Timeout {
                what,
                secs: FETCH_TIMEOUT.as_secs(),
            });
        }
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(FetchError::Git {
            what,
            why: stderr
                .lines()
                .last()
                .unwrap_or("git failed")
                .trim()
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_refs() {
        for url in [
            "https://github.com/acme/shop.git",
            "ssh://git@github.com/acme/shop.git",
            "git@github.com:acme/shop.git",
            "git://example.com/x",
        ] {
            assert_eq!(check_url(url, false), Ok(()), "{url}");
        }
        assert!(check_url("/srv/git/shop.git", true).is_ok());
        assert!(check_url("file:///srv/git/shop.git", true).is_ok());
        for (url, local) in [
            ("/srv/git/shop.git", false),
            ("file:///etc", false),
            ("ext::sh -c evil", true),
            ("--upload-pack=evil", true),
            ("shop", true),
            ("http://x/a b", true),
        ] {
            assert!(check_url(url, local).is_err(), "{url}");
        }
        for r in ["main", "v1.2.3", "feature/x", "5f2c9e1"] {
            assert_eq!(check_ref(r), Ok(()), "{r}");
        }
        for r in ["", "-x", "a..b", "a b", "a;b", "--upload-pack=x"] {
            assert!(check_ref(r).is_err(), "{r}");
        }
    }
}
