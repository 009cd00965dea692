//! Commit statuses, as requests to send, and when to retry them.
//!
//! One internal [`StatusState`] maps to each forge's words (control-plane
//! notes §1.2–§1.6, summary 5):
//!
//! | state | GitHub | GitLab | Gitea, Forgejo | Bitbucket Cloud |
//! |---|---|---|---|---|
//! | Pending | `pending` | `pending` | `pending` | `INPROGRESS` |
//! | Running | `pending` | `running` | `pending` | `INPROGRESS` |
//! | Success | `success` | `success` | `success` | `SUCCESSFUL` |
//! | Failure | `failure` | `failed` | `failure` | `FAILED` |
//! | Error | `error` | `failed` | `error` | `FAILED` |
//!
//! and [`status_request`] builds the call:
//!
//! | forge | request | auth | body |
//! |---|---|---|---|
//! | GitHub | `POST {api}/repos/{owner}/{repo}/statuses/{sha}` | `Authorization: Bearer` | `state`, `context`, `description`, `target_url` |
//! | GitLab | `POST {api}/projects/{url-encoded path}/statuses/{sha}` | `PRIVATE-TOKEN` | `state`, `name`, `description`, `target_url` |
//! | Gitea, Forgejo | `POST {api}/repos/{owner}/{repo}/statuses/{sha}` | `Authorization: token` | `state`, `context`, `description`, `target_url` |
//! | Bitbucket Cloud | `POST {api}/2.0/repositories/{workspace}/{repo}/commit/{sha}/statuses/build` | `Authorization: Bearer` | `key`, `state`, `name`, `description`, `url` |
//!
//! `{api}` is given by the caller, so tests can point it at a local
//! double; [`default_api_base`] guesses it from a clone URL. Posting is
//! retried on the [`backoff`] schedule, up to [`STATUS_ATTEMPTS`] tries,
//! while [`retryable`] says so.

use std::fmt;
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::forge::Forge;

/// A pipeline's or deploy's state, as wharf sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    /// Waiting to run.
    Pending,
    /// Running.
    Running,
    /// Every step passed, or the deploy went live.
    Success,
    /// A step failed, or the deploy failed or was rolled back.
    Failure,
    /// wharf itself could not run it (a fetch failed, the server stopped).
    Error,
}

/// The word `forge` uses for `state`.
pub fn state_word(forge: Forge, state: StatusState) -> &'static str {
    use StatusState::*;
    match forge {
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => match state {
            Pending | Running => "pending",
            Success => "success",
            Failure => "failure",
            Error => "error",
        },
        Forge::GitLab => match state {
            Pending => "pending",
            Running => "running",
            Success => "success",
            Failure | Error => "failed",
        },
        Forge::Bitbucket => match state {
            Pending | Running => "INPROGRESS",
            Success => "SUCCESSFUL",
            Failure | Error => "FAILED",
        },
    }
}

/// A commit status to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The state.
    pub state: StatusState,
    /// The status's name: GitHub's and Gitea's `context`, GitLab's `name`,
    /// Bitbucket's `key` and `name`. A new status with the same name
    /// replaces the old one on the forge.
    pub context: String,
    /// One line for the forge's UI; GitHub's is cut to 140 characters.
    pub description: Option<String>,
    /// Where the forge links to, the pipeline on this server.
    pub target_url: Option<String>,
}

/// An HTTP request to send, built without sending it.
#[derive(Clone, PartialEq)]
pub struct StatusRequest {
    /// Always `POST`.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// Headers to send, the token among them.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl StatusRequest {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Debug output hides the token, so a request can be logged.
impl fmt::Debug for StatusRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let secret = name.eq_ignore_ascii_case("authorization")
                    || name.eq_ignore_ascii_case("private-token");
                (
                    name.as_str(),
                    if secret { "<redacted>" } else { value.as_str() },
                )
            })
            .collect();
        f.debug_struct("StatusRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// Why a status request could not be built; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatusError {
    /// The app has no forge token, or an empty one.
    #[error(
        "could not post a commit status to {forge}: the app has no {forge} token; set one to have pipelines reported on commits"
    )]
    NoToken { forge: Forge },
    /// The token has characters that cannot go in a header.
    #[error(
        "could not post a commit status to {forge}: the app's {forge} token has spaces, line breaks or other characters a header cannot carry; set it again as the forge shows it"
    )]
    BadToken { forge: Forge },
    /// The API base is not an http(s) URL.
    #[error(
        "could not post a commit status to {forge}: the API address `{api_base}` is not an http:// or https:// URL; set the app's forge API address"
    )]
    BadApiBase { forge: Forge, api_base: String },
    /// The repository name is not one the forge's path takes.
    #[error(
        "could not post a commit status to {forge}: `{repo}` is not a repository name like `owner/name`{hint}"
    )]
    BadRepo {
        forge: Forge,
        repo: String,
        hint: &'static str,
    },
    /// The commit is not 40 or 64 hex digits.
    #[error("could not post a commit status to {forge}: `{sha}` is not a git commit id")]
    BadCommit { forge: Forge, sha: String },
    /// The status has no name.
    #[error(
        "could not post a commit status to {forge}: the status has no name; give it one such as `wharf/ci`"
    )]
    NoContext { forge: Forge },
}

const USER_AGENT: &str = concat!("wharf/", env!("CARGO_PKG_VERSION"));
/// GitHub rejects longer descriptions.
const GITHUB_DESCRIPTION_MAX: usize = 140;

/// Builds the request that sets `status` on commit `sha` of `repo`
/// (`owner/name`; GitLab also takes `group/sub/name` or a numeric project
/// id) at `forge`'s API `api_base` (see [`default_api_base`]), signed in
/// with `token`.
pub fn status_request(
    forge: Forge,
    api_base: &str,
    repo: &str,
    sha: &str,
    token: &str,
    status: &Status,
) -> Result<StatusRequest, StatusError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(StatusError::NoToken { forge });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StatusError::BadToken { forge });
    }
    let base = api_base.trim().trim_end_matches('/');
    let valid_base = ["https://", "http://"].iter().any(|scheme| {
        base.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            && base.len() > scheme.len()
    }) && !base.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid_base {
        return Err(StatusError::BadApiBase {
            forge,
            api_base: api_base.chars().take(200).collect(),
        });
    }
    if !(matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(StatusError::BadCommit {
            forge,
            sha: sha
                .chars()
                .take(80)
                .flat_map(char::escape_default)
                .collect(),
        });
    }
    let sha = sha.to_ascii_lowercase();
    let context = status.context.trim();
    if context.is_empty() {
        return Err(StatusError::NoContext { forge });
    }
    let bad_repo = |hint| StatusError::BadRepo {
        forge,
        repo: repo
            .chars()
            .take(200)
            .flat_map(char::escape_default)
            .collect(),
        hint,
    };
    let repo_path = repo.trim();
    let repo_path = repo_path.strip_suffix(".git").unwrap_or(repo_path);
    let segments: Vec<&str> = repo_path.split('/').collect();
    if !segments.iter().all(|s| is_path_segment(s)) {
        return Err(bad_repo(""));
    }

    let state = state_word(forge, status.state);
    let description = status.description.as_deref().map(str::trim);
    let target_url = status.target_url.as_deref().map(str::trim);
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            body.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    };

    let (url, auth) = match forge {
        Forge::GitHub | Forge::Gitea | Forge::Forgejo => {
            let [owner, name] = segments.as_slice() else {
                return Err(bad_repo(""));
            };
            put("state", Some(state));
            put("context", Some(context));
            let description = match forge {
                Forge::GitHub => description.map(|d| truncate(d, GITHUB_DESCRIPTION_MAX)),
                _ => description.map(str::to_owned),
            };
            put("description", description.as_deref());
            put("target_url", target_url);
            let auth = match forge {
                Forge::GitHub => ("Authorization", format!("Bearer {token}")),
                _ => ("Authorization", format!("token {token}")),
            };
            (format!("{base}/repos/{owner}/{name}/statuses/{sha}"), auth)
        }
        Forge::GitLab => {
            put("state", Some(state));
            put("name", Some(context));
            put("description", description);
            put("target_url", target_url);
            let project = segments.join("%2F");
            (
                format!("{base}/projects/{project}/statuses/{sha}"),
                ("PRIVATE-TOKEN", token.to_owned()),
            )
        }
        Forge::Bitbucket => {
            let [workspace, name] = segments.as_slice() else {
                return Err(bad_repo(", the workspace and the repository's slug"));
            };
            put("key", Some(context));
            put("state", Some(state));
            put("name", Some(context));
            put("description", description);
            put("url", target_url);
            (
                format!("{base}/2.0/repositories/{workspace}/{name}/commit/{sha}/statuses/build"),
                ("Authorization", format!("Bearer {token}")),
            )
        }
    };

    let mut headers = vec![(auth.0.to_owned(), auth.1)];
    if forge == Forge::GitHub {
        headers.push(("Accept".into(), "application/vnd.github+json".into()));
        headers.push(("X-GitHub-Api-Version".into(), "2022-11-28".into()));
    } else {
        headers.push(("Accept".into(), "application/json".into()));
    }
    headers.push(("Content-Type".into(), "application/json".into()));
    headers.push(("User-Agent".into(), USER_AGENT.into()));

    Ok(StatusRequest {
        method: Method::POST,
        url,
        headers,
        body: Value::Object(body),
    })
}

/// A repository path segment every forge takes as is: letters, digits,
/// `-`, `_`, `.`, not `.` or `..`.
fn is_path_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// At most `max` characters, the last one `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The API base to post `forge`'s statuses to, guessed from a clone URL
/// (`https://host/owner/repo.git`, `ssh://git@host:22/owner/repo.git` or
/// `git@host:owner/repo.git`):
///
/// - GitHub: `https://api.github.com` for github.com, else GitHub
///   Enterprise Server's `{scheme}://{host}/api/v3`;
/// - GitLab: `{scheme}://{host}/api/v4`;
/// - Gitea and Forgejo: `{scheme}://{host}{prefix}/api/v1`, where the
///   prefix is what an HTTP clone URL has before `owner/repo`;
/// - Bitbucket Cloud: `https://api.bitbucket.org`.
///
/// SSH and scp-like URLs give `https` and no port. `None` when the URL
/// cannot be read.
pub fn default_api_base(forge: Forge, clone_url: &str) -> Option<String> {
    if forge == Forge::Bitbucket {
        return Some("https://api.bitbucket.org".into());
    }
    let url = CloneUrl::parse(clone_url)?;
    let root = format!("{}://{}", url.scheme, url.authority);
    Some(match forge {
        Forge::GitHub if url.host.eq_ignore_ascii_case("github.com") => {
            "https://api.github.com".into()
        }
        Forge::GitHub => format!("{root}/api/v3"),
        Forge::GitLab => format!("{root}/api/v4"),
        Forge::Gitea | Forge::Forgejo => {
            let mut segments: Vec<&str> = url.path.split('/').filter(|s| !s.is_empty()).collect();
            if url.over_http {
                segments.truncate(segments.len().saturating_sub(2));
            } else {
                segments.clear();
            }
            let prefix: String = segments.iter().map(|s| format!("/{s}")).collect();
            format!("{root}{prefix}/api/v1")
        }
        Forge::Bitbucket => "https://api.bitbucket.org".into(),
    })
}

/// The forge and repository a git remote URL names, for posting statuses
/// from a checkout (`wharf ci --signoff`): the forge is known from the
/// host for the public ones (github.com, gitlab.com, bitbucket.org,
/// codeberg.org), else `forge` must say it. The repository is the URL's
/// path without a trailing `.git` (GitLab's may have subgroups).
pub fn remote_repo(url: &str, forge: Option<Forge>) -> Option<(Forge, String)> {
    let parsed = CloneUrl::parse(url)?;
    let guessed = match parsed.host.to_ascii_lowercase().as_str() {
        "github.com" => Some(Forge::GitHub),
        "gitlab.com" => Some(Forge::GitLab),
        "bitbucket.org" => Some(Forge::Bitbucket),
        "codeberg.org" => Some(Forge::Forgejo),
        _ => None,
    };
    let forge = forge.or(guessed)?;
    let repo = parsed
        .path
        .trim_matches('/')
        .trim_end_matches(".git")
        .trim_end_matches('/');
    let parts = repo.split('/').filter(|p| !p.is_empty()).count();
    if parts < 2 {
        return None;
    }
    Some((forge, repo.to_owned()))
}

/// The parts of a clone URL that locate the forge's web server.
struct CloneUrl<'a> {
    scheme: &'static str,
    /// Host, with the port for http(s) URLs.
    authority: &'a str,
    host: &'a str,
    path: &'a str,
    over_http: bool,
}

impl<'a> CloneUrl<'a> {
    fn parse(url: &'a str) -> Option<Self> {
        let url = url.trim();
        if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        if let Some((scheme, rest)) = url.split_once("://") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            // Drop `user:password@`.
            let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
            let host = host_of(authority)?;
            let scheme = scheme.to_ascii_lowercase();
            let over_http = scheme == "http" || scheme == "https";
            return Some(CloneUrl {
                scheme: if scheme == "http" { "http" } else { "https" },
                authority: if over_http { authority } else { host },
                host,
                path,
                over_http,
            });
        }
        // scp-like: `[user@]host:path`.
        let (authority, path) = url.split_once(':')?;
        if authority.contains('/') {
            return None;
        }
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host_of(host)?;
        Some(CloneUrl {
            scheme: "https",
            authority: host,
            host,
            path,
            over_http: false,
        })
    }
}

/// The host of `host[:port]` (or `[v6]:port`), if it looks like one.
fn host_of(authority: &str) -> Option<&str> {
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map(|(h, _)| &authority[..=h.len()])?
    } else {
        authority.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
    ok.then_some(host)
}

/// How many times a status is tried in all, the first try included.
pub const STATUS_ATTEMPTS: u32 = 6;

/// How long to wait before try number `attempt` (the first is `0`):
/// nothing, then 1s, 2s, 4s, 8s, 16s, doubling up to 60s.
pub fn backoff(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    let secs = 1u64
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u64::MAX)
        .min(60);
    Duration::from_secs(secs)
}

/// Whether a post that got `http_status` (`None`: no answer at all) is
/// worth trying again: no answer, 408, 429 and 5xx are; other answers
/// (a bad token, an unknown repository or commit) will not change.
pub fn retryable(http_status: Option<u16>) -> bool {
    match http_status {
        None => true,
        Some(code) => code == 408 || code == 429 || (500..600).contains(&code),
    }
}

#[cfg(test)]
mod remote_tests {
    use super::*;

    #[test]
    fn remotes_name_their_forge_and_repository() {
        let cases = [
            (
                "git@github.com:acme/shop.git",
                None,
                Some((Forge::GitHub, "acme/shop")),
            ),
            (
                "https://github.com/acme/shop",
                None,
                Some((Forge::GitHub, "acme/shop")),
            ),
            (
                "https://gitlab.com/g/sub/shop.git",
                None,
                Some((Forge::GitLab, "g/sub/shop")),
            ),
            (
                "ssh://git@codeberg.org/acme/shop.git",
                None,
                Some((Forge::Forgejo, "acme/shop")),
            ),
            ("https://git.example.com/acme/shop.git", None, None),
            (
                "https://git.example.com/acme/shop.git",
                Some(Forge::Gitea),
                Some((Forge::Gitea, "acme/shop")),
            ),
            ("https://github.com/acme", None, None),
            ("not a url", None, None),
        ];
        for (url, forge, expected) in cases {
            let got = remote_repo(url, forge);
            let expected = expected.map(|(f, r)| (f, r.to_owned()));
            assert_eq!(got, expected, "{url}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

    fn status(state: StatusState) -> Status {
        Status {
            state,
            context: "wharf/ci".into(),
            description: Some("CI passed in 1m3.25s".into()),
            target_url: Some("https://wharf.example.com/apps/shop/pipelines/7".into()),
        }
    }

    fn build(forge: Forge, base: &str, repo: &str) -> Result<StatusRequest, StatusError> {
        status_request(forge, base, repo, SHA, "tkn", &status(StatusState::Success))
    }

    #[test]
    fn state_words_per_forge() {
        use StatusState::*;
        let table = [
            (
                Forge::GitHub,
                ["pending", "pending", "success", "failure", "error"],
            ),
            (
                Forge::GitLab,
                ["pending", "running", "success", "failed", "failed"],
            ),
            (
                Forge::Gitea,
                ["pending", "pending", "success", "failure", "error"],
            ),
            (
                Forge::Forgejo,
                ["pending", "pending", "success", "failure", "error"],
            ),
            (
                Forge::Bitbucket,
                ["INPROGRESS", "INPROGRESS", "SUCCESSFUL", "FAILED", "FAILED"],
            ),
        ];
        for (forge, words) in table {
            let got = [Pending, Running, Success, Failure, Error].map(|s| state_word(forge, s));
            assert_eq!(got, words, "{forge}");
        }
    }

    #[test]
    fn github_request() {
        let req = build(Forge::GitHub, "https://api.github.com/", "octo/app");
        let Ok(req) = req else { panic!("{req:?}") };
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url,
            format!("https://api.github.com/repos/octo/app/statuses/{SHA}")
        );
        assert_eq!(req.header("authorization"), Some("Bearer tkn"));
        assert_eq!(req.header("Accept"), Some("application/vnd.github+json"));
        assert_eq!(req.header("X-GitHub-Api-Version"), Some("2022-11-28"));
        assert!(
            req.header("User-Agent")
                .is_some_and(|ua| ua.starts_with("wharf/"))
        );
        assert_eq!(
            req.body,
            json!({
                "state": "success", "context": "wharf/ci",
                "description": "CI passed in 1m3.25s",
                "target_url": "https://wharf.example.com/apps/shop/pipelines/7"
            })
        );
    }

    #[test]
    fn gitlab_request_encodes_the_project_path() {
        let req = build(
            Forge::GitLab,
            "https://gitlab.example.com/api/v4",
            "group/sub/app",
        );
        let Ok(req) = req else { panic!("{req:?}") };
        assert_eq!(
            req.url,
            format!("https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}")
        );
        assert_eq!(req.header("PRIVATE-TOKEN"), Some("tkn"));
        assert_eq!(req.header("Authorization"), None);
        assert_eq!(req.body["state"], "success");
        assert_eq!(req.body["name"], "wharf/ci");
        let req = build(Forge::GitLab, "https://gitlab.example.com/api/v4", "42");
        assert!(req.is_ok_and(|r| r.url.contains("/projects/42/statuses/")));
    }

    #[test]
    fn gitea_and_forgejo_request() {
        for forge in [Forge::Gitea, Forge::Forgejo] {
            let req = build(forge, "http://127.0.0.1:3000/api/v1", "gitea/webhooks");
            let Ok(req) = req else { panic!("{req:?}") };
            assert_eq!(
                req.url,
                format!("http://127.0.0.1:3000/api/v1/repos/gitea/webhooks/statuses/{SHA}")
            );
            assert_eq!(req.header("Authorization"), Some("token tkn"));
            assert_eq!(req.body["context"], "wharf/ci");
        }
    }

    #[test]
    fn bitbucket_request() {
        let base = "https://api.bitbucket.org";
        let req = status_request(
            Forge::Bitbucket,
            base,
            "team/repo",
            SHA,
            "tkn",
            &status(StatusState::Running),
        );
        let Ok(req) = req else { panic!("{req:?}") };
        assert_eq!(
            req.url,
            format!(
                "https://api.bitbucket.org/2.0/repositories/team/repo/commit/{SHA}/statuses/build"
            )
        );
        assert_eq!(req.header("Authorization"), Some("Bearer tkn"));
        assert_eq!(
            req.body,
            json!({
                "key": "wharf/ci", "state": "INPROGRESS", "name": "wharf/ci",
                "description": "CI passed in 1m3.25s",
                "url": "https://wharf.example.com/apps/shop/pipelines/7"
            })
        );
    }

    #[test]
    fn optional_fields_are_left_out() {
        let bare = Status {
            state: StatusState::Pending,
            context: "signoff".into(),
            description: None,
            target_url: Some("  ".into()),
        };
        let req = status_request(
            Forge::GitHub,
            "https://api.github.com",
            "o/r",
            SHA,
            "t",
            &bare,
        );
        assert_eq!(
            req.map(|r| r.body).ok(),
            Some(json!({"state": "pending", "context": "signoff"}))
        );
    }

    #[test]
    fn github_descriptions_are_cut_to_140_characters() {
        let mut long = status(StatusState::Failure);
        long.description = Some("é".repeat(200));
        let req = status_request(
            Forge::GitHub,
            "https://api.github.com",
            "o/r",
            SHA,
            "t",
            &long,
        );
        let description = req
            .ok()
            .and_then(|r| r.body["description"].as_str().map(str::to_owned));
        let description = description.unwrap_or_default();
        assert_eq!(description.chars().count(), 140);
        assert!(description.ends_with('…'));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let s = status(StatusState::Success);
        let gh = Forge::GitHub;
        let api = "https://api.github.com";
        let cases = [
            (status_request(gh, api, "o/r", SHA, "", &s), "NoToken"),
            (status_request(gh, api, "o/r", SHA, "  ", &s), "NoToken"),
            (
                status_request(gh, api, "o/r", SHA, "a\r\nX-Evil: 1", &s),
                "BadToken",
            ),
            (
                status_request(gh, "ftp://x", "o/r", SHA, "t", &s),
                "BadApiBase",
            ),
            (
                status_request(gh, "https://", "o/r", SHA, "t", &s),
                "BadApiBase",
            ),
            (status_request(gh, "", "o/r", SHA, "t", &s), "BadApiBase"),
            (status_request(gh, api, "o/r", "HEAD", "t", &s), "BadCommit"),
            (status_request(gh, api, "o", SHA, "t", &s), "BadRepo"),
            (status_request(gh, api, "a/b/c", SHA, "t", &s), "BadRepo"),
            (status_request(gh, api, "o/../x", SHA, "t", &s), "BadRepo"),
            (status_request(gh, api, "o/r?x=1", SHA, "t", &s), "BadRepo"),
            (status_request(gh, api, "", SHA, "t", &s), "BadRepo"),
            (
                status_request(Forge::Bitbucket, api, "a/b/c", SHA, "t", &s),
                "BadRepo",
            ),
            (
                status_request(Forge::GitLab, api, "g//x", SHA, "t", &s),
                "BadRepo",
            ),
            (
                status_request(
                    gh,
                    api,
                    "o/r",
                    SHA,
                    "t",
                    &Status {
                        context: " ".into(),
                        ..s.clone()
                    },
                ),
                "NoContext",
            ),
        ];
        for (result, want) in cases {
            let got = match &result {
                Ok(_) => "Ok",
                Err(StatusError::NoToken { .. }) => "NoToken",
                Err(StatusError::BadToken { .. }) => "BadToken",
                Err(StatusError::BadApiBase { .. }) => "BadApiBase",
                Err(StatusError::BadRepo { .. }) => "BadRepo",
                Err(StatusError::BadCommit { .. }) => "BadCommit",
                Err(StatusError::NoContext { .. }) => "NoContext",
            };
            assert_eq!(got, want, "{result:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        for forge in Forge::ALL {
            let req = status_request(
                forge,
                "https://x.example",
                "o/r",
                SHA,
                "s3cr3t",
                &status(StatusState::Error),
            );
            let text = format!("{req:?}");
            assert!(text.contains("<redacted>"), "{forge}: {text}");
            assert!(!text.contains("s3cr3t"), "{forge}: {text}");
        }
    }

    #[test]
    fn api_base_guesses() {
        let cases = [
            (
                Forge::GitHub,
                "https://github.com/octo/app.git",
                Some("https://api.github.com"),
            ),
            (
                Forge::GitHub,
                "git@github.com:octo/app.git",
                Some("https://api.github.com"),
            ),
            (
                Forge::GitHub,
                "https://ghe.corp.example/octo/app.git",
                Some("https://ghe.corp.example/api/v3"),
            ),
            (
                Forge::GitLab,
                "https://gitlab.com/group/sub/app.git",
                Some("https://gitlab.com/api/v4"),
            ),
            (
                Forge::GitLab,
                "git@gitlab.example.com:group/app.git",
                Some("https://gitlab.example.com/api/v4"),
            ),
            (
                Forge::GitLab,
                "http://user:pw@10.0.0.5:8080/g/app.git",
                Some("http://10.0.0.5:8080/api/v4"),
            ),
            (
                Forge::Gitea,
                "http://localhost:3000/gitea/webhooks.git",
                Some("http://localhost:3000/api/v1"),
            ),
            (
                Forge::Gitea,
                "https://example.com/git/owner/repo.git",
                Some("https://example.com/git/api/v1"),
            ),
            (
                Forge::Forgejo,
                "ssh://git@codeberg.org:2222/owner/repo.git",
                Some("https://codeberg.org/api/v1"),
            ),
            (
                Forge::Forgejo,
                "https://codeberg.org/owner/repo.git",
                Some("https://codeberg.org/api/v1"),
            ),
            (
                Forge::Bitbucket,
                "https://bitbucket.org/team/repo.git",
                Some("https://api.bitbucket.org"),
            ),
            (
                Forge::Bitbucket,
                "anything",
                Some("https://api.bitbucket.org"),
            ),
            (Forge::GitHub, "", None),
            (Forge::GitHub, "not a url", None),
            (Forge::GitLab, "/srv/git/app.git", None),
            (Forge::Gitea, "https:///x", None),
        ];
        for (forge, url, want) in cases {
            assert_eq!(
                default_api_base(forge, url).as_deref(),
                want,
                "{forge} {url}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let got: Vec<u64> = (0..10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(60));
        let total: u64 = (0..STATUS_ATTEMPTS).map(|a| backoff(a).as_secs()).sum();
        assert_eq!(total, 31);
    }

    #[test]
    fn what_is_retried() {
        for (code, want) in [
            (None, true),
            (Some(500), true),
            (Some(502), true),
            (Some(429), true),
            (Some(408), true),
            (Some(201), false),
            (Some(401), false),
            (Some(404), false),
            (Some(422), false),
        ] {
            assert_eq!(retryable(code), want, "{code:?}");
        }
    }
}
