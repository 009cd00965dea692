//! Each forge's deliveries, end to end through the crate: a table of
//! documented payloads (`tests/fixtures/`) with the headers the forge
//! sends, signed the way it signs, then detected, verified, classified,
//! keyed and parsed; and a table of commit-status requests.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;
use sha2::Sha256;
use wharf_forge::{
    Event, Forge, KeySource, Status, StatusState, VerifyError, VerifyOptions, classify,
    default_api_base, delivery_key, detect, parse_push, status_request, verify,
};

const SECRET: &str = "wharf hook secret 5f0c";
/// A GitLab signing token: `whsec_` and the base64 of 32 bytes.
const SIGNING_TOKEN: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const NOW: i64 = 1_767_225_600;

/// How the forge proves the delivery is its own.
#[derive(Debug, Clone, Copy)]
enum Signing {
    /// `X-Hub-Signature-256: sha256=<hex>`.
    GitHub,
    /// `X-Gitea-Signature: <hex>`, `X-Hub-Signature-256`, `X-Hub-Signature: sha1=…`.
    Gitea,
    /// `X-Forgejo-Signature: <hex>` and the Gitea set.
    Forgejo,
    /// `X-Hub-Signature: sha256=<hex>`.
    Bitbucket,
    /// `X-Gitlab-Token: <secret>`.
    GitLabToken,
    /// `webhook-signature: v1,<base64>`, sent `age` seconds ago.
    GitLabSigningToken { age: i64 },
}

impl Signing {
    fn secret(self) -> &'static str {
        match self {
            Signing::GitLabSigningToken { .. } => SIGNING_TOKEN,
            _ => SECRET,
        }
    }

    /// Whether the proof covers the body (GitLab's plain token does not).
    fn covers_body(self) -> bool {
        !matches!(self, Signing::GitLabToken)
    }

    fn headers(self, body: &[u8], id: &str) -> Vec<(&'static str, String)> {
        let digest = hmac_hex(SECRET.as_bytes(), body);
        match self {
            Signing::GitHub => vec![("X-Hub-Signature-256", format!("sha256={digest}"))],
            Signing::Gitea => vec![
                ("X-Gitea-Signature", digest.clone()),
                ("X-Gogs-Signature", digest.clone()),
                ("X-Hub-Signature-256", format!("sha256={digest}")),
                (
                    "X-Hub-Signature",
                    "sha1=0000000000000000000000000000000000000000".into(),
                ),
            ],
            Signing::Forgejo => vec![
                ("X-Forgejo-Signature", digest.clone()),
                ("X-Gitea-Signature", digest.clone()),
                ("X-Hub-Signature-256", format!("sha256={digest}")),
            ],
            Signing::Bitbucket => vec![("X-Hub-Signature", format!("sha256={digest}"))],
            Signing::GitLabToken => vec![("X-Gitlab-Token", SECRET.into())],
            Signing::GitLabSigningToken { age } => {
                let timestamp = (NOW - age).to_string();
                let key = BASE64
                    .decode(SIGNING_TOKEN.trim_start_matches("whsec_"))
                    .unwrap_or_default();
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key");
                mac.update(format!("{id}.{timestamp}.").as_bytes());
                mac.update(body);
                let signature = BASE64.encode(mac.finalize().into_bytes());
                vec![
                    ("webhook-id", id.into()),
                    ("webhook-timestamp", timestamp),
                    ("webhook-signature", format!("v1,{signature}")),
                ]
            }
        }
    }

    fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Signing::GitHub => &["X-Hub-Signature-256"],
            Signing::Gitea => &[
                "X-Gitea-Signature",
                "X-Gogs-Signature",
                "X-Hub-Signature-256",
                "X-Hub-Signature",
            ],
            Signing::Forgejo => &[
                "X-Forgejo-Signature",
                "X-Gitea-Signature",
                "X-Hub-Signature-256",
            ],
            Signing::Bitbucket => &["X-Hub-Signature"],
            Signing::GitLabToken => &["X-Gitlab-Token"],
            Signing::GitLabSigningToken { .. } => &["webhook-signature"],
        }
    }
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What a push should read as.
#[derive(Debug)]
struct Expected {
    ref_name: &'static str,
    branch: Option<&'static str>,
    commit: Option<&'static str>,
    deleted: bool,
    repo: &'static str,
    clone_url: &'static str,
    pusher: Option<&'static str>,
}

struct Case {
    name: &'static str,
    fixture: &'static str,
    /// Headers the forge sends besides the proof.
    headers: &'static [(&'static str, &'static str)],
    signing: Signing,
    forge: Forge,
    event: Event,
    /// The de-duplication key and its header.
    key: (&'static str, &'static str),
    pushes: &'static [Expected],
}

const GITHUB_DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
const GITEA_DELIVERY: &str = "f6266f16-1bf3-46a5-9ea4-602e06ead473";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "GitHub push to main",
            fixture: "github_push.json",
            headers: &[
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", GITHUB_DELIVERY),
                ("X-GitHub-Hook-ID", "292430182"),
                ("User-Agent", "GitHub-Hookshot/044aadd"),
            ],
            signing: Signing::GitHub,
            forge: Forge::GitHub,
            event: Event::Push,
            key: (GITHUB_DELIVERY, "X-GitHub-Delivery"),
            pushes: &[Expected {
                ref_name: "refs/heads/main",
                branch: Some("main"),
                commit: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
                deleted: false,
                repo: "Codertocat/Hello-World",
                clone_url: "https://github.com/Codertocat/Hello-World.git",
                pusher: Some("Codertocat"),
            }],
        },
        Case {
            name: "GitHub tag push",
            fixture: "github_tag_push.json",
            headers: &[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "tag-1")],
            signing: Signing::GitHub,
            forge: Forge::GitHub,
            event: Event::Push,
            key: ("tag-1", "X-GitHub-Delivery"),
            pushes: &[Expected {
                ref_name: "refs/tags/v1.0.0",
                branch: None,
                commit: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
                deleted: false,
                repo: "Codertocat/Hello-World",
                clone_url: "https://github.com/Codertocat/Hello-World.git",
                pusher: Some("Codertocat"),
            }],
        },
        Case {
            name: "GitHub branch deleted",
            fixture: "github_delete_branch.json",
            headers: &[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "del-1")],
            signing: Signing::GitHub,
            forge: Forge::GitHub,
            event: Event::Push,
            key: ("del-1", "X-GitHub-Delivery"),
            pushes: &[Expected {
                ref_name: "refs/heads/feature-x",
                branch: Some("feature-x"),
                commit: None,
                deleted: true,
                repo: "Codertocat/Hello-World",
                clone_url: "https://github.com/Codertocat/Hello-World.git",
                pusher: Some("Codertocat"),
            }],
        },
        Case {
            name: "GitHub ping",
            fixture: "github_ping.json",
            headers: &[("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", "ping-1")],
            signing: Signing::GitHub,
            forge: Forge::GitHub,
            event: Event::Ping,
            key: ("ping-1", "X-GitHub-Delivery"),
            pushes: &[],
        },
        Case {
            name: "GitLab push with the secret token",
            fixture: "gitlab_push.json",
            headers: &[
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Instance", "https://gitlab.example.com"),
                ("X-Gitlab-Webhook-UUID", "16f5a0b8-new-per-request"),
                (
                    "X-Gitlab-Event-UUID",
                    "13792a34-cac6-4fda-95a8-c58e00a3954e",
                ),
                ("Idempotency-Key", "3d3b3f8c-stable-across-retries"),
            ],
            signing: Signing::GitLabToken,
            forge: Forge::GitLab,
            event: Event::Push,
            key: ("3d3b3f8c-stable-across-retries", "Idempotency-Key"),
            pushes: &[Expected {
                ref_name: "refs/heads/master",
                branch: Some("master"),
                commit: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
                deleted: false,
                repo: "mike/diaspora",
                clone_url: "http://example.com/mike/diaspora.git",
                pusher: Some("jsmith"),
            }],
        },
        Case {
            name: "GitLab push with a signing token",
            fixture: "gitlab_push.json",
            headers: &[
                ("X-Gitlab-Event", "Push Hook"),
                ("Idempotency-Key", "msg_2b7d0a6c"),
            ],
            signing: Signing::GitLabSigningToken { age: 42 },
            forge: Forge::GitLab,
            event: Event::Push,
            key: ("msg_2b7d0a6c", "webhook-id"),
            pushes: &[Expected {
                ref_name: "refs/heads/master",
                branch: Some("master"),
                commit: Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"),
                deleted: false,
                repo: "mike/diaspora",
                clone_url: "http://example.com/mike/diaspora.git",
                pusher: Some("jsmith"),
            }],
        },
        Case {
            name: "GitLab tag push",
            fixture: "gitlab_tag_push.json",
            headers: &[
                ("X-Gitlab-Event", "Tag Push Hook"),
                ("Idempotency-Key", "tag-key"),
            ],
            signing: Signing::GitLabToken,
            forge: Forge::GitLab,
            event: Event::Push,
            key: ("tag-key", "Idempotency-Key"),
            pushes: &[Expected {
                ref_name: "refs/tags/v1.0.0",
                branch: None,
                commit: Some("82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"),
                deleted: false,
                repo: "jsmith/example",
                clone_url: "http://example.com/jsmith/example.git",
                pusher: Some("jsmith"),
            }],
        },
        Case {
            name: "Gitea push",
            fixture: "gitea_push.json",
            headers: &[
                ("X-GitHub-Delivery", GITEA_DELIVERY),
                ("X-GitHub-Event", "push"),
                ("X-Gogs-Delivery", GITEA_DELIVERY),
                ("X-Gogs-Event", "push"),
                ("X-Gitea-Delivery", GITEA_DELIVERY),
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Event-Type", "push"),
            ],
            signing: Signing::Gitea,
            forge: Forge::Gitea,
            event: Event::Push,
            key: (GITEA_DELIVERY, "X-Gitea-Delivery"),
            pushes: &[Expected {
                ref_name: "refs/heads/develop",
                branch: Some("develop"),
                commit: Some("bffeb74224043ba2feb48d137756c8a9331c449a"),
                deleted: false,
                repo: "gitea/webhooks",
                clone_url: "http://localhost:3000/gitea/webhooks.git",
                pusher: Some("gitea"),
            }],
        },
        Case {
            name: "Forgejo push",
            fixture: "forgejo_push.json",
            headers: &[
                ("X-Forgejo-Delivery", "8c1e3bb2-2f6b-4f3e-9d5e-0f3f3f2c9a11"),
                ("X-Forgejo-Event", "push"),
                ("X-Forgejo-Event-Type", "push"),
                ("X-Gitea-Delivery", "8c1e3bb2-2f6b-4f3e-9d5e-0f3f3f2c9a11"),
                ("X-Gitea-Event", "push"),
                ("X-GitHub-Delivery", "8c1e3bb2-2f6b-4f3e-9d5e-0f3f3f2c9a11"),
                ("X-GitHub-Event", "push"),
                ("X-Gogs-Event", "push"),
            ],
            signing: Signing::Forgejo,
            forge: Forge::Forgejo,
            event: Event::Push,
            key: ("8c1e3bb2-2f6b-4f3e-9d5e-0f3f3f2c9a11", "X-Forgejo-Delivery"),
            pushes: &[Expected {
                ref_name: "refs/heads/main",
                branch: Some("main"),
                commit: Some("a4b9e2c1d0f7e6b5a4938271605f4e3d2c1b0a99"),
                deleted: false,
                repo: "forgejo-example/app",
                clone_url: "https://codeberg.org/forgejo-example/app.git",
                pusher: Some("frida"),
            }],
        },
        Case {
            name: "Bitbucket Cloud push",
            fixture: "bitbucket_push.json",
            headers: &[
                ("X-Event-Key", "repo:push"),
                ("X-Hook-UUID", "{a7d0c1e4-3b6e-4a8b-9c55-2a8d7f8d1f0e}"),
                ("X-Request-UUID", "{5d6c2c3e-97c4-4f4b-8bb3-6f3b9f0e9d21}"),
                ("X-Attempt-Number", "1"),
                ("User-Agent", "Bitbucket-Webhooks/2.0"),
            ],
            signing: Signing::Bitbucket,
            forge: Forge::Bitbucket,
            event: Event::Push,
            key: ("{5d6c2c3e-97c4-4f4b-8bb3-6f3b9f0e9d21}", "X-Request-UUID"),
            pushes: &[Expected {
                ref_name: "refs/heads/main",
                branch: Some("main"),
                commit: Some("709d658dc5b6d6afcd46049c2f332ee3f515a67d"),
                deleted: false,
                repo: "team_name/repo_name",
                clone_url: "https://bitbucket.org/team_name/repo_name.git",
                pusher: Some("emma"),
            }],
        },
        Case {
            name: "Bitbucket Cloud branch deleted",
            fixture: "bitbucket_branch_deleted.json",
            headers: &[
                ("X-Event-Key", "repo:push"),
                ("X-Hook-UUID", "{a7d0c1e4-3b6e-4a8b-9c55-2a8d7f8d1f0e}"),
                ("X-Request-UUID", "{0b0e6d0a-1111-4c2c-8f88-2f6d9a0c3e44}"),
                ("X-Attempt-Number", "2"),
            ],
            signing: Signing::Bitbucket,
            forge: Forge::Bitbucket,
            event: Event::Push,
            key: ("{0b0e6d0a-1111-4c2c-8f88-2f6d9a0c3e44}", "X-Request-UUID"),
            pushes: &[Expected {
                ref_name: "refs/heads/feature/old",
                branch: Some("feature/old"),
                commit: None,
                deleted: true,
                repo: "team_name/repo_name",
                clone_url: "https://bitbucket.org/team_name/repo_name.git",
                pusher: Some("emma"),
            }],
        },
    ]
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("could not read {}: {e}", path.display()))
}

fn header_map(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_str(value).expect("valid header value");
        map.append(name, value);
    }
    map
}

/// The headers of `case` as the forge sends them for `body`.
fn delivery(case: &Case, body: &[u8]) -> HeaderMap {
    let mut pairs: Vec<(&str, String)> = case
        .headers
        .iter()
        .map(|(n, v)| (*n, (*v).to_owned()))
        .collect();
    pairs.push(("Content-Type", "application/json".into()));
    pairs.extend(case.signing.headers(body, case.key.0));
    header_map(&pairs)
}

fn options() -> VerifyOptions {
    VerifyOptions::at(NOW)
}

#[test]
fn each_delivery_is_detected_verified_classified_keyed_and_parsed() {
    for case in cases() {
        let body = fixture(case.fixture);
        let headers = delivery(&case, &body);
        let name = case.name;

        assert_eq!(detect(&headers), Some(case.forge), "{name}: detect");
        let secret = case.signing.secret();
        let verified = verify(case.forge, &headers, &body, Some(secret), options());
        assert!(verified.is_ok(), "{name}: verify: {verified:?}");
        assert_eq!(
            classify(case.forge, &headers),
            Some(case.event.clone()),
            "{name}"
        );

        let key = delivery_key(case.forge, &headers, &body);
        assert_eq!(key.id, case.key.0, "{name}: key");
        assert_eq!(
            key.source,
            KeySource::Header(case.key.1),
            "{name}: key source"
        );
        assert_eq!(key.body_sha256.len(), 64, "{name}");

        if case.event != Event::Push {
            continue;
        }
        let pushes = match parse_push(case.forge, &body) {
            Ok(pushes) => pushes,
            Err(err) => panic!("{name}: {err}"),
        };
        assert_eq!(pushes.len(), case.pushes.len(), "{name}: {pushes:?}");
        for (push, want) in pushes.iter().zip(case.pushes) {
            assert_eq!(push.ref_name, want.ref_name, "{name}");
            assert_eq!(push.branch.as_deref(), want.branch, "{name}");
            assert_eq!(push.commit.as_deref(), want.commit, "{name}");
            assert_eq!(push.deleted, want.deleted, "{name}");
            assert_eq!(push.repo, want.repo, "{name}");
            assert_eq!(push.clone_url, want.clone_url, "{name}");
            assert_eq!(push.pusher.as_deref(), want.pusher, "{name}");
            if want.branch.is_none() {
                assert!(push.tag.is_some(), "{name}: a tag keeps its name");
            }
        }
    }
}

#[test]
fn each_delivery_is_refused_without_its_secret() {
    for case in cases() {
        let body = fixture(case.fixture);
        let headers = delivery(&case, &body);
        let forge = case.forge;
        let name = case.name;
        assert_eq!(
            verify(forge, &headers, &body, None, options()),
            Err(VerifyError::NoSecret { forge }),
            "{name}"
        );
        assert_eq!(
            verify(forge, &headers, &body, Some(""), options()),
            Err(VerifyError::EmptySecret { forge }),
            "{name}"
        );
        let wrong = match case.signing {
            Signing::GitLabSigningToken { .. } => "whsec_d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkh",
            _ => "not the secret",
        };
        assert!(
            matches!(
                verify(forge, &headers, &body, Some(wrong), options()),
                Err(VerifyError::BadSignature { .. })
            ),
            "{name}: a wrong secret"
        );
    }
}

#[test]
fn each_tampered_delivery_is_refused() {
    for case in cases().into_iter().filter(|c| c.signing.covers_body()) {
        let body = fixture(case.fixture);
        let headers = delivery(&case, &body);
        let mut tampered = body.clone();
        // One more byte, the JSON unchanged in meaning.
        let text = String::from_utf8_lossy(&body).replacen("\"ref\"", "\"ref\" ", 1);
        tampered.clear();
        tampered.extend_from_slice(text.as_bytes());
        if tampered == body {
            tampered.push(b'\n');
        }
        let result = verify(
            case.forge,
            &headers,
            &tampered,
            Some(case.signing.secret()),
            options(),
        );
        assert!(
            matches!(result, Err(VerifyError::BadSignature { .. })),
            "{}: {result:?}",
            case.name
        );
    }
}

#[test]
fn each_unsigned_delivery_is_refused() {
    for case in cases() {
        let body = fixture(case.fixture);
        let mut headers = delivery(&case, &body);
        for name in case.signing.signature_headers() {
            headers.remove(*name);
        }
        let result = verify(
            case.forge,
            &headers,
            &body,
            Some(case.signing.secret()),
            options(),
        );
        assert!(
            matches!(result, Err(VerifyError::MissingSignature { .. })),
            "{}: {result:?}",
            case.name
        );
    }
}

#[test]
fn gitlab_signing_token_outside_the_tolerance_is_refused() {
    for (age, accepted) in [
        (0, true),
        (300, true),
        (-300, true),
        (301, false),
        (-301, false),
        (3_600, false),
    ] {
        let case = Case {
            signing: Signing::GitLabSigningToken { age },
            ..cases()
                .into_iter()
                .find(|c| matches!(c.signing, Signing::GitLabSigningToken { .. }))
                .expect("a signing-token case")
        };
        let body = fixture(case.fixture);
        let headers = delivery(&case, &body);
        let result = verify(
            Forge::GitLab,
            &headers,
            &body,
            Some(SIGNING_TOKEN),
            options(),
        );
        if accepted {
            assert!(result.is_ok(), "age {age}: {result:?}");
        } else {
            assert!(
                matches!(result, Err(VerifyError::StaleTimestamp { .. })),
                "age {age}: {result:?}"
            );
        }
    }
}

/// One status request per forge, against a local double's address.
#[test]
fn status_requests_per_forge() {
    let sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
    let status = Status {
        state: StatusState::Failure,
        context: "wharf/ci".into(),
        description: Some("`Tests` failed".into()),
        target_url: Some("http://127.0.0.1:7070/apps/hello/pipelines/3".into()),
    };
    let base = "http://127.0.0.1:9999";
    let table: &[(Forge, &str, &str, &str, &str, serde_json::Value)] = &[
        (
            Forge::GitHub,
            "Codertocat/Hello-World",
            "/repos/Codertocat/Hello-World/statuses/",
            "Authorization",
            "Bearer t0k",
            json!({"state": "failure", "context": "wharf/ci", "description": "`Tests` failed",
                   "target_url": "http://127.0.0.1:7070/apps/hello/pipelines/3"}),
        ),
        (
            Forge::GitLab,
            "mike/diaspora",
            "/projects/mike%2Fdiaspora/statuses/",
            "PRIVATE-TOKEN",
            "t0k",
            json!({"state": "failed", "name": "wharf/ci", "description": "`Tests` failed",
                   "target_url": "http://127.0.0.1:7070/apps/hello/pipelines/3"}),
        ),
        (
            Forge::Gitea,
            "gitea/webhooks",
            "/repos/gitea/webhooks/statuses/",
            "Authorization",
            "token t0k",
            json!({"state": "failure", "context": "wharf/ci", "description": "`Tests` failed",
                   "target_url": "http://127.0.0.1:7070/apps/hello/pipelines/3"}),
        ),
        (
            Forge::Forgejo,
            "forgejo-example/app",
            "/repos/forgejo-example/app/statuses/",
            "Authorization",
            "token t0k",
            json!({"state": "failure", "context": "wharf/ci", "description": "`Tests` failed",
                   "target_url": "http://127.0.0.1:7070/apps/hello/pipelines/3"}),
        ),
        (
            Forge::Bitbucket,
            "team_name/repo_name",
            "/2.0/repositories/team_name/repo_name/commit/",
            "Authorization",
            "Bearer t0k",
            json!({"key": "wharf/ci", "state": "FAILED", "name": "wharf/ci",
                   "description": "`Tests` failed",
                   "url": "http://127.0.0.1:7070/apps/hello/pipelines/3"}),
        ),
    ];
    for (forge, repo, path, auth_header, auth_value, body) in table {
        let req = status_request(*forge, base, repo, sha, "t0k", &status);
        let Ok(req) = req else {
            panic!("{forge}: {req:?}")
        };
        assert_eq!(req.method, Method::POST, "{forge}");
        let expected_url = if *forge == Forge::Bitbucket {
            format!("{base}{path}{sha}/statuses/build")
        } else {
            format!("{base}{path}{sha}")
        };
        assert_eq!(req.url, expected_url, "{forge}");
        assert_eq!(req.header(auth_header), Some(*auth_value), "{forge}");
        assert_eq!(
            req.header("Content-Type"),
            Some("application/json"),
            "{forge}"
        );
        assert_eq!(&req.body, body, "{forge}");
    }
}

#[test]
fn api_bases_from_the_fixtures_clone_urls() {
    let table = [
        (Forge::GitHub, "github_push.json", "https://api.github.com"),
        (
            Forge::GitLab,
            "gitlab_push.json",
            "http://example.com/api/v4",
        ),
        (
            Forge::Gitea,
            "gitea_push.json",
            "http://localhost:3000/api/v1",
        ),
        (
            Forge::Forgejo,
            "forgejo_push.json",
            "https://codeberg.org/api/v1",
        ),
        (
            Forge::Bitbucket,
            "bitbucket_push.json",
            "https://api.bitbucket.org",
        ),
    ];
    for (forge, file, want) in table {
        let pushes = parse_push(forge, &fixture(file)).unwrap_or_default();
        let clone_url = pushes
            .first()
            .map(|p| p.clone_url.clone())
            .unwrap_or_default();
        assert_eq!(
            default_api_base(forge, &clone_url).as_deref(),
            Some(want),
            "{forge}"
        );
    }
}

/// Cut and corrupted deliveries are refused or read, never a panic.
#[test]
fn no_input_panics() {
    let files = [
        "github_push.json",
        "gitlab_push.json",
        "gitea_push.json",
        "forgejo_push.json",
        "bitbucket_push.json",
        "bitbucket_branch_deleted.json",
    ];
    let noise: [&[u8]; 6] = [b"", b"\xff", b"null", b"{}", b"\"ref\":[]", b"\\u0000"];
    for file in files {
        let body = fixture(file);
        for cut in (0..body.len()).step_by(13) {
            for extra in noise {
                let mut input = body[..cut].to_vec();
                input.extend_from_slice(extra);
                for forge in Forge::ALL {
                    let _ = parse_push(forge, &input);
                    let _ = delivery_key(forge, &HeaderMap::new(), &input);
                }
            }
        }
    }
    let values = [
        "",
        " ",
        "sha256=",
        "sha256",
        "v1,",
        "v1,====",
        "v1a,x v1,",
        "sha1=",
        "whsec_",
        "99999999999999999999",
        "-1",
        "[",
        "]",
        "[::1",
        "é",
        "\u{0}",
    ];
    let names = [
        "X-Hub-Signature-256",
        "X-Hub-Signature",
        "X-Gitea-Signature",
        "X-Forgejo-Signature",
        "X-Gitlab-Token",
        "webhook-signature",
        "webhook-id",
        "webhook-timestamp",
    ];
    for value in values {
        let Ok(value) = HeaderValue::from_str(value) else {
            continue;
        };
        for name in names {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.clone());
            headers.insert("webhook-signature", value.clone());
            for forge in Forge::ALL {
                for secret in [
                    None,
                    Some(""),
                    Some("s"),
                    Some("whsec_"),
                    Some(SIGNING_TOKEN),
                ] {
                    let result =
                        verify(forge, &headers, b"{}", secret, VerifyOptions::at(i64::MIN));
                    assert!(result.is_err(), "{forge} {name}: {value:?}");
                    let _ = verify(forge, &headers, b"{}", secret, VerifyOptions::at(i64::MAX));
                }
                let _ = classify(forge, &headers);
                let _ = delivery_key(forge, &headers, b"");
            }
        }
        if let Ok(text) = value.to_str() {
            for forge in Forge::ALL {
                let _ = default_api_base(forge, text);
                let _ = status_request(
                    forge,
                    text,
                    text,
                    text,
                    text,
                    &Status {
                        state: StatusState::Pending,
                        context: text.into(),
                        description: Some(text.into()),
                        target_url: Some(text.into()),
                    },
                );
            }
        }
    }
}
