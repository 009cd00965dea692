//! Webhook intake end to end, with the real binary: a server with an
//! https API, an app watching `main`, and GitHub-shaped deliveries posted
//! over TLS with no bearer token, signed as GitHub signs them
//! (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body).
//!
//! What intake does is asserted, not the pipeline (the job runner's):
//! no secret set → 401; a ping → 200; a push to `main` → 202 and a
//! pipeline job with the push's commit and branch; the same delivery, or
//! its body under a new id → duplicate, no second job; a bad signature →
//! 401, no job, no delivery row; a push to another branch → recorded as
//! ignored, no job; every answer in well under a second. The secret file
//! is 0600, and neither the secret nor the forge token is in the server's
//! log or its database.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use support::hooks::{Answer, Api, hex, hmac_sha256, push_body};
use support::{App, Server, remote_cli};

const COMMIT: &str = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const OTHER_COMMIT: &str = "de8f2a1c0b7e4d3a9f6e5c4b3a2918a7b6c5d4e3";

#[test]
fn hmac_matches_github_s_published_test_vector() {
    let sig = hmac_sha256(b"It's a Secret to Everybody", b"Hello, World!");
    assert_eq!(
        hex(&sig),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

fn pipeline_jobs(server: &Server) -> Vec<serde_json::Value> {
    let jobs: Vec<serde_json::Value> =
        serde_json::from_str(&server.ok(&["jobs", "--json", "--limit", "100"])).unwrap();
    jobs.into_iter()
        .filter(|j| j["kind"] == "pipeline")
        .collect()
}

fn deliveries(server: &Server) -> serde_json::Value {
    serde_json::from_str(&server.ok(&["hooks", "deliveries", "shop", "--json"])).unwrap()
}

fn fast(answer: &Answer, what: &str) {
    assert!(
        answer.took < Duration::from_secs(1),
        "{what} took {:?}",
        answer.took
    );
}

#[test]
fn webhook_intake_verifies_dedups_records_and_queues_a_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The pipeline the push queues may post commit statuses once a forge
    // token is set: keep them on this machine, where nothing listens.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("server.toml"),
        "forge_api = \"http://127.0.0.1:9/api/v3\"\n",
    )
    .unwrap();
    let server = Server::start_args(&data, &[], &["--api", "127.0.0.1:0"]);
    let app = App::builder("shop")
        .instances(1)
        .deploy("branch = \"main\"")
        .build();
    assert_eq!(server.deploy(&app, &[]), 1);
    let api = Api::new(&server);

    // No secret set: refused, nothing queued or recorded.
    let body = push_body("main", COMMIT, "first");
    let answer = api.github("push", "guid-1", &body, "anything");
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.body["error"],
        "no hook secret is set for shop: run `wharf hooks secret shop`"
    );
    fast(&answer, "a refusal");
    assert!(pipeline_jobs(&server).is_empty());

    // The secret: printed once on stdout, where to paste it on stderr,
    // kept 0600 in the data dir.
    let out = server.wharf(&["hooks", "secret", "shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let url = format!("https://{}/hooks/shop", api.addr);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("X-Hub-Signature-256"), "{stderr}");
    assert!(stderr.contains("X-Gitlab-Token"), "{stderr}");
    let file = data.join("hooks/shop/secret");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), secret);

    // A ping: 200, recorded.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":4242}"#;
    let answer = api.github("ping", "guid-ping", ping, &secret);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["outcome"], "ping");
    fast(&answer, "a ping");

    // A push to `main`: 202 and a pipeline job with its commit and branch.
    let answer = api.github("push", "guid-1", &body, &secret);
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["outcome"], "queued");
    fast(&answer, "a push");
    let job = answer.body["job"]
        .as_i64()
        .expect("the answer names its job");
    let jobs = pipeline_jobs(&server);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], job);
    assert_eq!(jobs[0]["app"], "shop");
    let args: serde_json::Value = serde_json::from_str(jobs[0]["args"].as_str().unwrap()).unwrap();
    assert_eq!(args["kind"], "pipeline");
    assert_eq!(args["commit"], COMMIT);
    assert_eq!(args["branch"], "main");
    assert_eq!(args["forge"], "github");
    assert_eq!(args["repo"], "acme/shop");
    assert_eq!(args["clone_url"], "https://example.invalid/acme/shop.git");
    assert_eq!(args["delivery"], "guid-1");
    let first_delivery = answer.body["delivery"].clone();

    // The same delivery again (a redelivery), and its body under a new id
    // (a replay): duplicates naming the first job; no second job.
    for id in ["guid-1", "guid-replayed"] {
        let answer = api.github("push", id, &body, &secret);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["outcome"], "duplicate", "{id}");
        assert_eq!(answer.body["job"], job, "{id}");
        assert_eq!(answer.body["delivery"], first_delivery, "{id}");
        fast(&answer, "a duplicate");
    }
    assert_eq!(pipeline_jobs(&server).len(), 1);

    // A bad signature: 401, no job, no delivery row (only a count).
    let forged = push_body("main", OTHER_COMMIT, "forged");
    let answer = api.github("push", "guid-forged", &forged, "not-the-secret");
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("does not match the app's webhook secret"),
        "{}",
        answer.body
    );
    fast(&answer, "a bad signature");
    // No signature at all.
    let answer = api.request(
        "POST",
        "/hooks/shop",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "guid-bare"),
        ],
        &forged,
    );
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(pipeline_jobs(&server).len(), 1);

    // A push to another branch: recorded as ignored, no job.
    let dev = push_body("dev", OTHER_COMMIT, "dev work");
    let answer = api.github("push", "guid-dev", &dev, &secret);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["outcome"], "ignored_branch");
    assert!(answer.body["job"].is_null());
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("a push to `dev`; shop deploys pushes to `main`"),
        "{}",
        answer.body
    );
    assert_eq!(pipeline_jobs(&server).len(), 1);

    // An unknown sender: 400, nothing recorded.
    let answer = api.request("POST", "/hooks/shop", &[], b"{}");
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("could not tell which forge sent this delivery"),
        "{}",
        answer.body
    );
    // Too big: 413, nothing recorded.
    let huge = vec![b' '; 5 * 1024 * 1024 + 1024];
    let answer = api.github("push", "guid-huge", &huge, &secret);
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(answer.body["error"].is_string(), "{}", answer.body);

    // What came and what it did.
    let view = deliveries(&server);
    let list = view["deliveries"].as_array().unwrap();
    let outcomes: Vec<&str> = list
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ignored_branch", "queued", "ping"]);
    assert_eq!(list[1]["repeats"], 2);
    assert_eq!(list[1]["job_id"], job);
    assert_eq!(list[1]["commit"], COMMIT);
    assert_eq!(list[1]["ref_name"], "refs/heads/main");
    let refusals = view["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["forge"], "github");
    assert_eq!(refusals[0]["count"], 3);
    let out = server.wharf(&["hooks", "deliveries", "shop"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("WHEN") && table.contains("queued (+2 duplicate)"),
        "{table}"
    );
    assert!(
        table.contains(&COMMIT[..7]) && table.contains("main"),
        "{table}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused: 3 github deliveries"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Only `POST /hooks/{app}` goes without a token on the https API.
    for (method, path) in [
        ("GET", "/hooks/shop"),
        ("POST", "/v1/apps/shop/hooks/secret"),
        ("GET", "/v1/apps/shop/hooks/deliveries"),
        ("POST", "/hooks/shop/x"),
    ] {
        let answer = api.request(method, path, &[], b"");
        assert_eq!(answer.status, 401, "{method} {path}: {}", answer.body);
    }

    // Scopes: a read token lists deliveries, only admin sets a secret.
    let read = server
        .ok(&["token", "create", "--scope", "read"])
        .trim()
        .to_owned();
    let home = tmp.path().join("laptop");
    std::fs::create_dir_all(&home).unwrap();
    let as_reader = [
        ("WHARF_SERVER", format!("https://{}", api.addr)),
        ("WHARF_TOKEN", read),
    ];
    let env: Vec<(&str, &str)> = as_reader.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = remote_cli(
        &home,
        &home,
        &env,
        &["hooks", "deliveries", "shop", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = remote_cli(&home, &home, &env, &["hooks", "secret", "shop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs `admin`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The forge token, from stdin, kept like the secret.
    let mut child = server
        .cmd(&["hooks", "secret", "shop", "--forge-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let forge_token = "ghp_wharfTestForgeToken0123456789";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{forge_token}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(forge_token));
    let token_file = data.join("hooks/shop/forge-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        forge_token
    );

    // Neither value is in the server's log or its database.
    let log = server.log_text();
    assert!(log.contains("webhook delivery recorded"), "{log}");
    for value in [secret.as_str(), forge_token] {
        assert!(!log.contains(value), "a secret value is in the server log");
        for name in ["wharf.db", "wharf.db-wal"] {
            let bytes = std::fs::read(data.join(name)).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(value), "a secret value is in {name}");
        }
    }
}
