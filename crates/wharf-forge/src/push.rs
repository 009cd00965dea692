//! Push payloads of each forge, read into one [`Push`] shape.
//!
//! Fields read (control-plane notes §1.2–§1.6):
//!
//! | forge | ref | commit | deleted | repo | clone URL | pusher |
//! |---|---|---|---|---|---|---|
//! | GitHub | `ref` | `after` | `deleted`, or `after` all zeros | `repository.full_name` | `repository.clone_url` | `pusher.name` |
//! | GitLab | `ref` | `after` | `after` all zeros | `project.path_with_namespace` | `project.git_http_url` | `user_username`, else `user_name` |
//! | Gitea, Forgejo | `ref` | `after` | `after` all zeros | `repository.full_name` | `repository.clone_url` | `pusher.login`, else `pusher.username` |
//! | Bitbucket Cloud | `push.changes[].new` (`type`, `name`) | `new.target.hash` | `closed`, or `new` null | `repository.full_name` | `https://bitbucket.org/{full_name}.git` | `actor.nickname`, else `actor.display_name` |
//!
//! Bitbucket sends one payload for several refs pushed at once, so
//! [`parse_push`] gives a list: one [`Push`] per ref, in the payload's
//! order; the other forges send one ref per delivery. Bitbucket's payload
//! has no clone URL; it is built from the full name (an inference the
//! notes flag).
//!
//! Ref names, commit ids and clone URLs end up in `git` command lines, so
//! they are checked here: a ref must be a valid git ref name, a commit 40
//! or 64 hex digits, a clone URL free of whitespace and not an option.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::forge::Forge;

/// One ref's update, the same shape whichever forge sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The full ref, `refs/heads/main` or `refs/tags/v1`.
    pub ref_name: String,
    /// The branch, when the ref is under `refs/heads/`.
    pub branch: Option<String>,
    /// The tag, when the ref is under `refs/tags/`.
    pub tag: Option<String>,
    /// The ref's commit after the push, lower-case hex; `None` when the
    /// ref was deleted.
    pub commit: Option<String>,
    /// Whether the push deleted the ref.
    pub deleted: bool,
    /// The repository's full name: `owner/name`, or GitLab's
    /// `group/subgroup/name`.
    pub repo: String,
    /// The URL to fetch the commit from over HTTP(S).
    pub clone_url: String,
    /// The URL to fetch it from over SSH, when the forge sends one.
    pub ssh_url: Option<String>,
    /// Who pushed, when the forge says.
    pub pusher: Option<String>,
}

/// Why a push payload could not be read. The delivery is recorded and not
/// acted on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PushError {
    /// Not JSON, or a field the push needs is missing or of another type.
    #[error(
        "could not read the {forge} push payload: {detail}; the delivery was recorded and nothing was deployed; check that the webhook sends JSON push events"
    )]
    Payload { forge: Forge, detail: String },
    /// The ref is not a valid git ref name.
    #[error(
        "the {forge} push names the ref `{ref_name}`, which is not a valid git ref; the delivery was recorded and nothing was deployed"
    )]
    BadRef { forge: Forge, ref_name: String },
    /// The commit is not 40 or 64 hex digits.
    #[error(
        "the {forge} push names the commit `{commit}`, which is not a git commit id; the delivery was recorded and nothing was deployed"
    )]
    BadCommit { forge: Forge, commit: String },
    /// The clone URL could not safely be given to git.
    #[error(
        "the {forge} push gives the clone URL `{url}`, which wharf will not pass to git; the delivery was recorded and nothing was deployed"
    )]
    BadCloneUrl { forge: Forge, url: String },
    /// The repository has no name.
    #[error(
        "the {forge} push does not name its repository; the delivery was recorded and nothing was deployed"
    )]
    NoRepo { forge: Forge },
}

/// Reads a push payload from `forge` (the raw body of an [`Event::Push`]
/// delivery) into one [`Push`] per ref it updates.
///
/// [`Event::Push`]: crate::Event::Push
pub fn parse_push(forge: Forge, body: &[u8]) -> Result<Vec<Push>, PushError> {
    let payload = |detail: serde_json::Error| PushError::Payload {
        forge,
        detail: detail.to_string(),
    };
    let raw: Vec<RawPush> = match forge {
        Forge::GitHub => {
            let p: GitHubPush = serde_json::from_slice(body).map_err(payload)?;
            vec![RawPush {
                ref_name: p.ref_name,
                after: Some(p.after),
                deleted: p.deleted,
                repo: p.repository.full_name,
                clone_url: p.repository.clone_url,
                ssh_url: p.repository.ssh_url,
                pusher: p.pusher.and_then(|u| u.name.or(u.login)),
            }]
        }
        Forge::GitLab => {
            let p: GitLabPush = serde_json::from_slice(body).map_err(payload)?;
            vec![RawPush {
                ref_name: p.ref_name,
                after: Some(p.after),
                deleted: false,
                repo: p.project.path_with_namespace,
                clone_url: p.project.git_http_url,
                ssh_url: p.project.git_ssh_url,
                pusher: p.user_username.or(p.user_name),
            }]
        }
        Forge::Gitea | Forge::Forgejo => {
            let p: GiteaPush = serde_json::from_slice(body).map_err(payload)?;
            vec![RawPush {
                ref_name: p.ref_name,
                after: Some(p.after),
                deleted: false,
                repo: p.repository.full_name,
                clone_url: p.repository.clone_url,
                ssh_url: p.repository.ssh_url,
                pusher: p.pusher.and_then(|u| u.login.or(u.username)),
            }]
        }
        Forge::Bitbucket => {
            let p: BitbucketPush = serde_json::from_slice(body).map_err(payload)?;
            let repo = p.repository.full_name;
            let pusher = p.actor.and_then(|a| a.nickname.or(a.display_name));
            let mut out = Vec::with_capacity(p.push.changes.len());
            for change in p.push.changes {
                let deleted = change.closed || change.new.is_none();
                let Some(side) = change.new.or(change.old) else {
                    return Err(PushError::Payload {
                        forge,
                        detail: "a change has neither `new` nor `old`".into(),
                    });
                };
                let ref_name = match side.kind.as_str() {
                    "branch" => format!("refs/heads/{}", side.name),
                    "tag" => format!("refs/tags/{}", side.name),
                    _ => side.name,
                };
                out.push(RawPush {
                    ref_name,
                    after: if deleted {
                        None
                    } else {
                        side.target.map(|t| t.hash)
                    },
                    deleted,
                    repo: repo.clone(),
                    clone_url: format!("https://bitbucket.org/{repo}.git"),
                    ssh_url: Some(format!("git@bitbucket.org:{repo}.git")),
                    pusher: pusher.clone(),
                });
            }
            out
        }
    };
    raw.into_iter().map(|raw| raw.check(forge)).collect()
}

/// A push as read, before its fields are checked.
struct RawPush {
    ref_name: String,
    after: Option<String>,
    deleted: bool,
    repo: String,
    clone_url: String,
    ssh_url: Option<String>,
    pusher: Option<String>,
}

impl RawPush {
    fn check(self, forge: Forge) -> Result<Push, PushError> {
        if !is_valid_ref(&self.ref_name) {
            return Err(PushError::BadRef {
                forge,
                ref_name: printable(&self.ref_name),
            });
        }
        let mut deleted = self.deleted;
        let commit = match self.after {
            Some(after) if after.bytes().all(|b| b == b'0') && !after.is_empty() => {
                deleted = true;
                None
            }
            Some(_) if deleted => None,
            Some(after) if is_commit_id(&after) => Some(after.to_ascii_lowercase()),
            Some(after) => {
                return Err(PushError::BadCommit {
                    forge,
                    commit: printable(&after),
                });
            }
            None if deleted => None,
            None => {
                return Err(PushError::Payload {
                    forge,
                    detail: "the updated ref has no commit".into(),
                });
            }
        };
        if self.repo.trim().is_empty() || self.repo.chars().any(char::is_control) {
            return Err(PushError::NoRepo { forge });
        }
        if !is_safe_url(&self.clone_url) {
            return Err(PushError::BadCloneUrl {
                forge,
                url: printable(&self.clone_url),
            });
        }
        let ssh_url = self.ssh_url.filter(|url| is_safe_url(url));
        let branch = self.ref_name.strip_prefix("refs/heads/").map(str::to_owned);
        let tag = self.ref_name.strip_prefix("refs/tags/").map(str::to_owned);
        let pusher = self
            .pusher
            .filter(|p| !p.trim().is_empty() && !p.chars().any(char::is_control));
        Ok(Push {
            ref_name: self.ref_name,
            branch,
            tag,
            commit,
            deleted,
            repo: self.repo,
            clone_url: self.clone_url,
            ssh_url,
            pusher,
        })
    }
}

/// At most 100 characters with control characters escaped, for messages.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(100)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 100 {
        out.push('…');
    }
    out
}

/// 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_commit_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A git ref name, by the rules of `git check-ref-format`, with at least
/// three components under `refs/` (`refs/heads/x`, `refs/tags/x`, or
/// another namespace, kept but giving no branch or tag). Stricter than
/// git in one way: no component may start with `-`, so a branch name can
/// never be read as an option.
fn is_valid_ref(name: &str) -> bool {
    if name.is_empty()
        || name.len() > 255
        || name.starts_with('/')
        || name.starts_with('-')
        || name.ends_with('/')
        || name.ends_with('.')
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name == "@"
        || !name.starts_with("refs/")
    {
        return false;
    }
    let bad_char = |c: char| {
        c.is_ascii_control()
            || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\' | '\u{7f}')
    };
    if name.chars().any(bad_char) {
        return false;
    }
    let components: Vec<&str> = name.split('/').collect();
    components.len() >= 3
        && components
            .iter()
            .all(|c| !c.is_empty() && !c.starts_with(['.', '-']) && !c.ends_with(".lock"))
}

/// A URL that can be given to git as an argument: not empty, no
/// whitespace or control characters, not an option, and `scheme://…`,
/// scp-like `user@host:path` or an absolute path. Whether to fetch from
/// a URL a payload names at all (rather than the app's configured
/// origin) is the caller's decision.
pub(crate) fn is_safe_url(url: &str) -> bool {
    !url.is_empty()
        && url.len() <= 2048
        && !url.starts_with('-')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && (url.contains("://")
            || url.starts_with('/')
            || url
                .split_once(':')
                .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/')))
}

#[derive(Deserialize)]
struct GitHubPush {
    #[serde(rename = "ref")]
    ref_name: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    repository: GitHubRepo,
    pusher: Option<GitHubUser>,
}

#[derive(Deserialize)]
struct GitHubRepo {
    full_name: String,
    clone_url: String,
    ssh_url: Option<String>,
}

#[derive(Deserialize)]
struct GitHubUser {
    name: Option<String>,
    login: Option<String>,
}

#[derive(Deserialize)]
struct GitLabPush {
    #[serde(rename = "ref")]
    ref_name: String,
    after: String,
    user_name: Option<String>,
    user_username: Option<String>,
    project: GitLabProject,
}

#[derive(Deserialize)]
struct GitLabProject {
    path_with_namespace: String,
    git_http_url: String,
    git_ssh_url: Option<String>,
}

#[derive(Deserialize)]
struct GiteaPush {
    #[serde(rename = "ref")]
    ref_name: String,
    after: String,
    repository: GiteaRepo,
    pusher: Option<GiteaUser>,
}

#[derive(Deserialize)]
struct GiteaRepo {
    full_name: String,
    clone_url: String,
    ssh_url: Option<String>,
}

#[derive(Deserialize)]
struct GiteaUser {
    login: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct BitbucketPush {
    push: BitbucketChanges,
    repository: BitbucketRepo,
    actor: Option<BitbucketActor>,
}

#[derive(Deserialize)]
struct BitbucketChanges {
    changes: Vec<BitbucketChange>,
}

#[derive(Deserialize)]
struct BitbucketChange {
    new: Option<BitbucketRef>,
    old: Option<BitbucketRef>,
    #[serde(default)]
    closed: bool,
}

#[derive(Deserialize)]
struct BitbucketRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: Option<BitbucketTarget>,
}

#[derive(Deserialize)]
struct BitbucketTarget {
    hash: String,
}

#[derive(Deserialize)]
struct BitbucketRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct BitbucketActor {
    nickname: Option<String>,
    display_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "bffeb74224043ba2feb48d137756c8a9331c449a";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn parse(forge: Forge, value: serde_json::Value) -> Result<Vec<Push>, PushError> {
        parse_push(forge, value.to_string().as_bytes())
    }

    fn one(forge: Forge, value: serde_json::Value) -> Push {
        match parse(forge, value) {
            Ok(mut pushes) if pushes.len() == 1 => pushes.remove(0),
            other => panic!("expected one push, got {other:?}"),
        }
    }

    fn github(ref_name: &str, after: &str, deleted: bool) -> serde_json::Value {
        json!({
            "ref": ref_name, "before": "28e1879d029cb852e4844d9c718537df08844e03",
            "after": after, "created": false, "deleted": deleted, "forced": false,
            "base_ref": null, "compare": "https://github.com/octo/app/compare/x...y",
            "commits": [], "head_commit": null,
            "repository": {
                "id": 1, "name": "app", "full_name": "octo/app",
                "clone_url": "https://github.com/octo/app.git",
                "ssh_url": "git@github.com:octo/app.git"
            },
            "pusher": {"name": "octocat", "email": "octocat@example.com"},
            "sender": {"login": "octocat"}
        })
    }

    #[test]
    fn github_branch_push() {
        let push = one(Forge::GitHub, github("refs/heads/main", SHA, false));
        assert_eq!(
            push,
            Push {
                ref_name: "refs/heads/main".into(),
                branch: Some("main".into()),
                tag: None,
                commit: Some(SHA.into()),
                deleted: false,
                repo: "octo/app".into(),
                clone_url: "https://github.com/octo/app.git".into(),
                ssh_url: Some("git@github.com:octo/app.git".into()),
                pusher: Some("octocat".into()),
            }
        );
    }

    #[test]
    fn github_tag_push_keeps_the_ref_without_a_branch() {
        let push = one(Forge::GitHub, github("refs/tags/v1.2.0", SHA, false));
        assert_eq!(push.branch, None);
        assert_eq!(push.tag.as_deref(), Some("v1.2.0"));
        assert_eq!(push.ref_name, "refs/tags/v1.2.0");
    }

    #[test]
    fn github_branch_delete() {
        let push = one(Forge::GitHub, github("refs/heads/old", ZERO, true));
        assert!(push.deleted);
        assert_eq!(push.commit, None);
        assert_eq!(push.branch.as_deref(), Some("old"));
    }

    #[test]
    fn gitlab_push_and_delete() {
        let body = |after: &str| {
            json!({
                "object_kind": "push", "event_name": "push",
                "before": "95790bf891e76fee5e1747ab589903a6a1f80f22", "after": after,
                "ref": "refs/heads/master", "checkout_sha": after,
                "user_id": 4, "user_name": "John Smith", "user_username": "jsmith",
                "project_id": 15,
                "project": {
                    "id": 15, "name": "Diaspora",
                    "git_ssh_url": "git@example.com:mike/diaspora.git",
                    "git_http_url": "http://example.com/mike/diaspora.git",
                    "path_with_namespace": "mike/diaspora", "default_branch": "master"
                },
                "commits": [], "total_commits_count": 4
            })
        };
        let push = one(Forge::GitLab, body(SHA));
        assert_eq!(push.branch.as_deref(), Some("master"));
        assert_eq!(push.commit.as_deref(), Some(SHA));
        assert_eq!(push.repo, "mike/diaspora");
        assert_eq!(push.clone_url, "http://example.com/mike/diaspora.git");
        assert_eq!(push.pusher.as_deref(), Some("jsmith"));
        let push = one(Forge::GitLab, body(ZERO));
        assert!(push.deleted);
        assert_eq!(push.commit, None);
    }

    #[test]
    fn gitea_and_forgejo_push() {
        let body = json!({
            "ref": "refs/heads/develop",
            "before": "28e1879d029cb852e4844d9c718537df08844e03",
            "after": SHA,
            "compare_url": "http://localhost:3000/gitea/webhooks/compare/a...b",
            "commits": [{"id": SHA, "message": "Webhooks Yay!"}],
            "repository": {
                "id": 140, "name": "webhooks", "full_name": "gitea/webhooks",
                "clone_url": "http://localhost:3000/gitea/webhooks.git",
                "ssh_url": "ssh://gitea@localhost:2222/gitea/webhooks.git"
            },
            "pusher": {"id": 1, "login": "gitea", "username": "gitea"},
            "sender": {"id": 1, "login": "gitea"}
        });
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let push = one(forge, body.clone());
            assert_eq!(push.branch.as_deref(), Some("develop"));
            assert_eq!(push.commit.as_deref(), Some(SHA));
            assert_eq!(push.repo, "gitea/webhooks");
            assert_eq!(push.clone_url, "http://localhost:3000/gitea/webhooks.git");
            assert_eq!(push.pusher.as_deref(), Some("gitea"));
        }
    }

    fn bitbucket_ref(kind: &str, name: &str, hash: &str) -> serde_json::Value {
        json!({"type": kind, "name": name, "target": {"type": "commit", "hash": hash}})
    }

    #[test]
    fn bitbucket_push_has_one_entry_per_change() {
        let body = json!({
            "actor": {"type": "user", "display_name": "Emma", "nickname": "emma"},
            "repository": {"type": "repository", "full_name": "team/repo", "name": "repo"},
            "push": {"changes": [
                {
                    "new": bitbucket_ref("branch", "main", SHA),
                    "old": bitbucket_ref("branch", "main", "28e1879d029cb852e4844d9c718537df08844e03"),
                    "created": false, "closed": false, "forced": false
                },
                {
                    "new": bitbucket_ref("tag", "v2", SHA),
                    "old": null, "created": true, "closed": false, "forced": false
                },
                {
                    "new": null,
                    "old": bitbucket_ref("branch", "gone", SHA),
                    "created": false, "closed": true, "forced": false
                }
            ]}
        });
        let pushes = parse(Forge::Bitbucket, body).unwrap_or_default();
        assert_eq!(pushes.len(), 3);
        assert_eq!(pushes[0].branch.as_deref(), Some("main"));
        assert_eq!(pushes[0].commit.as_deref(), Some(SHA));
        assert_eq!(pushes[0].clone_url, "https://bitbucket.org/team/repo.git");
        assert_eq!(pushes[0].pusher.as_deref(), Some("emma"));
        assert_eq!(pushes[1].ref_name, "refs/tags/v2");
        assert_eq!(pushes[1].branch, None);
        assert!(pushes[2].deleted);
        assert_eq!(pushes[2].commit, None);
        assert_eq!(pushes[2].branch.as_deref(), Some("gone"));
    }

    #[test]
    fn bitbucket_with_no_changes_is_no_push() {
        let body = json!({"repository": {"full_name": "team/repo"}, "push": {"changes": []}});
        assert_eq!(parse(Forge::Bitbucket, body), Ok(vec![]));
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let cases: Vec<(Forge, Vec<u8>)> = vec![
            (Forge::GitHub, b"".to_vec()),
            (Forge::GitHub, b"not json".to_vec()),
            (Forge::GitHub, b"\xff\xfe".to_vec()),
            (Forge::GitHub, b"[]".to_vec()),
            (Forge::GitHub, br#"{"ref": 5}"#.to_vec()),
            (Forge::GitLab, br#"{"ref": "refs/heads/x", "after": "a"}"#.to_vec()),
            (Forge::Gitea, br#"{"zen": "ping"}"#.to_vec()),
            (Forge::Bitbucket, br#"{"push": {"changes": [{}]}, "repository": {"full_name": "a/b"}}"#.to_vec()),
            (Forge::Bitbucket, br#"{"push": {"changes": [{"new": {"type": "branch", "name": "x"}}]}, "repository": {"full_name": "a/b"}}"#.to_vec()),
        ];
        for (forge, body) in cases {
            let result = parse_push(forge, &body);
            assert!(result.is_err(), "{forge}: {result:?}");
        }
    }

    #[test]
    fn refs_commits_and_urls_are_checked_before_git_sees_them() {
        for bad in [
            "main",
            "refs/heads/",
            "refs/heads/-x",
            "refs/heads/a..b",
            "refs/heads/a b",
            "refs/heads/a\nb",
            "refs/heads/x.lock",
            "refs/heads/.hidden",
            "refs/heads/a:b",
            "refs/heads/@{u}",
            "--upload-pack=evil",
        ] {
            let err = parse(Forge::GitHub, github(bad, SHA, false));
            assert!(
                matches!(err, Err(PushError::BadRef { .. })),
                "{bad:?}: {err:?}"
            );
        }
        for ok in [
            "refs/heads/feature/x-1",
            "refs/heads/release_2.0",
            "refs/tags/v1",
        ] {
            assert!(parse(Forge::GitHub, github(ok, SHA, false)).is_ok(), "{ok}");
        }
        for bad in ["abc", "--help", &"g".repeat(40), &"a".repeat(41)] {
            let err = parse(Forge::GitHub, github("refs/heads/main", bad, false));
            assert!(
                matches!(err, Err(PushError::BadCommit { .. })),
                "{bad}: {err:?}"
            );
        }
        let upper = SHA.to_uppercase();
        let push = one(Forge::GitHub, github("refs/heads/main", &upper, false));
        assert_eq!(push.commit.as_deref(), Some(SHA));

        for bad in [
            "",
            "-oProxyCommand=x",
            "https://a b",
            "relative/path",
            "file",
            ":x",
        ] {
            let mut body = github("refs/heads/main", SHA, false);
            body["repository"]["clone_url"] = json!(bad);
            let err = parse(Forge::GitHub, body);
            assert!(
                matches!(err, Err(PushError::BadCloneUrl { .. })),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn clone_urls_of_every_form_git_takes() {
        for ok in [
            "https://github.com/octo/app.git",
            "ssh://git@example.com:2222/octo/app.git",
            "git@github.com:octo/app.git",
            "file:///srv/git/app.git",
            "/srv/git/app.git",
        ] {
            let mut body = github("refs/heads/main", SHA, false);
            body["repository"]["clone_url"] = json!(ok);
            assert!(parse(Forge::GitHub, body).is_ok(), "{ok}");
        }
    }

    #[test]
    fn messages_name_the_forge_and_escape_input() {
        let err = parse(Forge::GitHub, github("refs/heads/a\nb", SHA, false)).err();
        assert_eq!(
            err.map(|e| e.to_string()).unwrap_or_default(),
            "the GitHub push names the ref `refs/heads/a\\nb`, which is not a valid git ref; the delivery was recorded and nothing was deployed"
        );
    }
}
