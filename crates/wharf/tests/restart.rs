//! End to end, with the real binary: what a restarted server does while
//! and after it restores its apps. It answers at once (API, and 503 with
//! `Retry-After` for an app being restored), restores apps independently,
//! tells the truth about a restore that failed, and gets out of that
//! state with a rollback or a deploy. Health probes of an instance that
//! keeps failing back off to the configured interval (counted by the
//! app's dependency, which its `/up` asks).

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::upstream::Upstream;
use support::{App, Server, header, hello_bin, tail};

/// An app on host `<name>.test` whose `/up` passes only while `upstream`
/// (its "database") does, checked every `interval`.
fn app_needing(name: &str, upstream: &Upstream, interval: &str, extra_env: &str) -> App {
    let app = App::builder(name).build();
    app.write_config(&format!(
        r#"name = "{name}"

[env]
HELLO_KV_URL = "{url}"
HELLO_UP_NEEDS_KV = "1"
{extra_env}

[processes.web]
command = "{bin}"
instances = 1
http = {{ host = "{name}.test" }}
health = {{ path = "/up", interval = "{interval}", timeout = "1s", threshold = 1 }}
stop_timeout = "5s"

[deploy]
health_timeout = "5s"
drain_timeout = "2s"
"#,
        url = upstream.url(),
        bin = hello_bin().display(),
    ));
    app
}

/// One GET to the proxy for `host`: (status, head, body).
fn get_host(proxy: SocketAddr, host: &str, path: &str) -> (u16, String, String) {
    support::get_from(proxy, host, path, &[])
}

fn app_status(server: &Server, name: &str) -> serde_json::Value {
    let status = server.status();
    status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no app {name} in {status:#}"))
}

#[test]
fn a_failed_restore_says_so_answers_503_and_a_rollback_or_deploy_fixes_it() {
    let db = Upstream::start(200);
    let app = app_needing("shaky", &db, "1s", "");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut first = Server::start_on(&data, &[]);
    assert_eq!(first.deploy(&app, &[]), 1);
    assert_eq!(get_host(first.proxy, "shaky.test", "/").0, 200);
    first.stop();

    // Its database is down when the server comes back.
    db.set_status(500);
    let before = db.ups();
    let started = Instant::now();
    let second = Server::start_answering(&data, &[]);
    let (status, head, body) = get_host(second.proxy, "shaky.test", "/");
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(header(&head, "retry-after").is_some(), "{head}");
    let restoring = app_status(&second, "shaky");
    assert!(
        restoring["state"] == "restoring" || restoring["state"] == "not_serving",
        "{restoring:#}"
    );
    assert!(restoring["release"].is_null(), "{restoring:#}");
    second.wait_recovered();
    let elapsed = started.elapsed();

    // The truth: nothing serves, and why.
    let down = app_status(&second, "shaky");
    assert_eq!(down["state"], "not_serving", "{down:#}");
    assert!(down["release"].is_null(), "{down:#}");
    let detail = down["state_detail"].as_str().unwrap();
    assert!(
        detail.starts_with("restore of release 1 failed: ")
            && detail.contains("did not become healthy")
            && detail.contains("no release is serving")
            && !detail.contains("keeps serving"),
        "{detail}"
    );
    let text = second.ok(&["status"]);
    assert!(
        text.contains("shaky: not serving: restore of release 1 failed"),
        "{text}"
    );
    let releases = second.ok(&["releases", "--json"]);
    assert!(!releases.contains("\"live\""), "{releases}");
    // The restore was a job of the queue, like every change to the app.
    let jobs: serde_json::Value = serde_json::from_str(&second.ok(&["jobs", "--json"])).unwrap();
    let restore = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "restore")
        .unwrap_or_else(|| panic!("no restore job: {jobs:#}"));
    assert_eq!(restore["state"], "failed", "{restore:#}");
    assert!(
        restore["error"]
            .as_str()
            .unwrap()
            .contains("did not become healthy"),
        "{restore:#}"
    );
    let (status, head, _) = get_host(second.proxy, "shaky.test", "/");
    assert_eq!(status, 503, "{head}");
    assert_eq!(
        header(&head, "retry-after").as_deref(),
        Some("30"),
        "{head}"
    );

    // Probed fast at first, then at the 1 s interval: about 8 probes in
    // the 5 s health timeout, not the 50 of a fixed 100 ms pace.
    let probes = db.ups() - before;
    assert!(
        (4..=12).contains(&probes),
        "{probes} health probes in {elapsed:?}\n{}",
        tail(&second.log_text(), 30)
    );

    // A rollback to that very release fails honestly while the database
    // is down, and brings it back once it is up.
    let out = second.wharf(&["rollback", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no release is serving") && !stderr.contains("keeps serving"),
        "{stderr}"
    );
    db.set_status(200);
    assert_eq!(second.rollback(Some(1)), 1);
    assert_eq!(app_status(&second, "shaky")["state"], "serving");
    assert_eq!(get_host(second.proxy, "shaky.test", "/").0, 200);
    // And a deploy works from there.
    assert_eq!(second.deploy(&app, &[]), 2);
    let (status, head, _) = get_host(second.proxy, "shaky.test", "/");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "x-hello-release").as_deref(), Some("2"));
}

#[test]
fn a_deploy_from_a_failed_restore_succeeds() {
    let db = Upstream::start(200);
    let app = app_needing("phoenix", &db, "500ms", "");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut first = Server::start_on(&data, &[]);
    assert_eq!(first.deploy(&app, &[]), 1);
    first.stop();
    db.set_status(500);
    let second = Server::start_on(&data, &[]);
    assert_eq!(app_status(&second, "phoenix")["state"], "not_serving");
    // The fix is a new release (here: one that no longer needs the
    // database to be healthy).
    assert_eq!(
        second.deploy(&app, &["--env", "HELLO_UP_NEEDS_KV=0"]),
        2,
        "{}",
        tail(&second.log_text(), 30)
    );
    let serving = app_status(&second, "phoenix");
    assert_eq!(serving["state"], "serving", "{serving:#}");
    assert_eq!(serving["release"], 2, "{serving:#}");
    assert_eq!(get_host(second.proxy, "phoenix.test", "/").0, 200);
}

#[test]
fn one_app_being_restored_blocks_neither_another_app_nor_the_api() {
    let db = Upstream::start(200);
    // `slow` takes 6 s to start listening; `quick` starts at once.
    let slow = app_needing("slow", &db, "500ms", "HELLO_STARTUP_DELAY = \"6s\"");
    let quick = app_needing("quick", &db, "500ms", "");
    let mut config = std::fs::read_to_string(slow.path().join("wharf.toml")).unwrap();
    config = config.replace("health_timeout = \"5s\"", "health_timeout = \"30s\"");
    slow.write_config(&config);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut first = Server::start_on(&data, &[]);
    assert_eq!(first.deploy(&slow, &[]), 1);
    assert_eq!(first.deploy(&quick, &[]), 1);
    first.stop();

    let started = Instant::now();
    let second = Server::start_answering(&data, &[]);
    // The API answers at once, and says `slow` is being restored.
    let status = app_status(&second, "slow");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "status took {:?}",
        started.elapsed()
    );
    assert_eq!(status["state"], "restoring", "{status:#}");
    assert_eq!(
        status["state_detail"], "restoring release 1 after a restart",
        "{status:#}"
    );
    let text = second.ok(&["status"]);
    assert!(text.contains("slow: restoring release 1"), "{text}");
    let (code, head, body) = get_host(second.proxy, "slow.test", "/");
    assert_eq!(code, 503, "{head}\n{body}");
    assert_eq!(header(&head, "retry-after").as_deref(), Some("5"), "{head}");
    assert!(body.contains("starting up after a restart"), "{body}");

    // `quick` serves while `slow` is still being restored.
    assert_eventually!(
        get_host(second.proxy, "quick.test", "/").0 == 200,
        Duration::from_secs(5),
        "quick did not serve while slow was being restored:\n{}",
        tail(&second.log_text(), 30)
    );
    assert_eq!(app_status(&second, "quick")["state"], "serving");
    assert_eq!(app_status(&second, "slow")["state"], "restoring");

    // Then `slow` is back too.
    second.wait_recovered();
    assert_eq!(app_status(&second, "slow")["state"], "serving");
    assert_eq!(get_host(second.proxy, "slow.test", "/").0, 200);
}
