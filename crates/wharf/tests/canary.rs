//! Progressive delivery end to end: canary steps, automatic rollback of a
//! bad release, the blue-green bake, sticky assignment, promote and abort.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::{App, Load, Server, get, get_with, header};

/// Fast analysis for tests: checks every 200 ms over the last 5 s. The
/// latency rule is kept out of the way (a loaded CI machine can slow a cold
/// release's tail); these tests are about errors, steps and stickiness.
const FAST_ANALYSIS: &str = r#"
[deploy.analysis]
interval = "200ms"
window = "5s"
min_requests = 20
min_errors = 3
p99_floor = "5s"
"#;

fn live_release(server: &Server) -> i64 {
    server.status()["apps"][0]["release"].as_i64().unwrap()
}

fn assert_only(server: &Server, release: i64) {
    for _ in 0..30 {
        assert_eq!(
            get(server.proxy, "/after"),
            (200, Some(release)),
            "release {release} must answer everything"
        );
    }
}

#[test]
fn a_good_canary_walks_every_step_and_is_promoted() {
    let server = Server::start();
    let config = format!(
        "strategy = \"canary\"\nsteps = [{{ weight = 20, pause = \"1s\" }}, {{ weight = 60, pause = \"1s\" }}]\n{FAST_ANALYSIS}"
    );
    let app = App::builder("goodcanary").deploy(&config).build();
    assert_eq!(server.deploy(&app, &[]), 1);
    let load = Load::start(server.proxy, 3, 1);

    let out = server.wharf(&[
        "deploy",
        app.path().to_str().unwrap(),
        "--env",
        "HELLO_MESSAGE=v2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("canary: step 1 of 2: 20% to release 2 for 1s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("canary: step 2 of 2: 60% to release 2 for 1s"),
        "{stderr}"
    );
    assert!(stderr.contains("goodcanary deployed release 2"), "{stderr}");

    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
    assert_eq!(live_release(&server), 2);
    assert_only(&server, 2);
    let status = server.status();
    assert!(status["apps"][0]["progressive"].is_null(), "{status:#}");
}

/// A one-request HTTP server that hands over the body it receives.
fn hook() -> (String, mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/wharf", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read the head, then Content-Length bytes of body.
        loop {
            let n = s.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = header(head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if body.len() >= len || n == 0 {
                    s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .unwrap();
                    tx.send(body.to_owned()).unwrap();
                    return;
                }
            }
        }
    });
    (url, rx)
}

#[test]
fn a_bad_canary_is_rolled_back_automatically_and_stable_serves_everything() {
    let server = Server::start();
    let (url, notified) = hook();
    let config = format!(
        "strategy = \"canary\"\nsteps = [{{ weight = 30, pause = \"2m\" }}]\nnotify = \"{url}\"\n{FAST_ANALYSIS}"
    );
    let app = App::builder("badcanary").deploy(&config).build();
    assert_eq!(server.deploy(&app, &[]), 1);
    let load = Load::start(server.proxy, 3, 1);

    let started = std::time::Instant::now();
    let out = server.wharf(&[
        "deploy",
        app.path().to_str().unwrap(),
        "--env",
        "HELLO_FAILURE_RATE=0.2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the rollback waited for the pause: {stderr}"
    );
    assert!(
        stderr.contains("badcanary release 2 was rolled back automatically: error rate "),
        "{stderr}"
    );
    assert!(stderr.contains("release 1 keeps serving"), "{stderr}");

    // Everything after the decision is served by the stable release.
    let report = load.finish();
    assert!(
        report.failures.iter().all(|f| f.contains("(release 2)")),
        "only the bad release may fail requests: {:#?}",
        report.failures
    );
    assert_eq!(live_release(&server), 1);
    assert_only(&server, 1);
    let events = server.ok(&["events"]);
    assert!(
        events.contains("badcanary release 2 was rolled back automatically: error rate"),
        "{events}"
    );
    assert_eq!(
        events.matches("rolled back automatically").count(),
        1,
        "the rollback is recorded once: {events}"
    );
    let releases: serde_json::Value =
        serde_json::from_str(&server.ok(&["releases", "--json"])).unwrap();
    assert_eq!(releases[0]["status"], "failed");

    let body: serde_json::Value =
        serde_json::from_str(&notified.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
    assert_eq!(
        (
            body["event"].as_str(),
            body["release"].as_i64(),
            body["serving"].as_i64()
        ),
        (Some("rollback"), Some(2), Some(1))
    );
    assert_eq!(body["violations"][0]["rule"], "error_rate", "{body:#}");
}

#[test]
fn a_bad_release_is_switched_back_after_the_bake_and_the_old_instances_never_stopped() {
    let server = Server::start();
    let config = format!("strategy = \"blue-green\"\nbake = \"1m\"\n{FAST_ANALYSIS}");
    let app = App::builder("baked").deploy(&config).build();
    assert_eq!(server.deploy(&app, &[]), 1);
    let pids = |s: &Server| -> Vec<(String, u64)> {
        s.status()["apps"][0]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["release"] == 1)
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_owned(),
                    i["pid"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let before = pids(&server);
    assert_eq!(before.len(), 2);
    let load = Load::start(server.proxy, 3, 1);

    let out = server.wharf(&[
        "deploy",
        app.path().to_str().unwrap(),
        "--env",
        "HELLO_FAILURE_RATE=0.2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bake: release 1 kept warm for 1m"),
        "{stderr}"
    );
    assert!(
        stderr.contains("baked release 2 was rolled back automatically: error rate "),
        "{stderr}"
    );
    let report = load.finish();
    assert!(
        report.failures.iter().all(|f| f.contains("(release 2)")),
        "{:#?}",
        report.failures
    );

    assert_eq!(live_release(&server), 1);
    assert_eq!(
        pids(&server),
        before,
        "the old release's instances were restarted or stopped"
    );
    let releases: serde_json::Value =
        serde_json::from_str(&server.ok(&["releases", "--json"])).unwrap();
    assert_eq!(
        (
            releases[0]["number"].as_i64(),
            releases[0]["status"].as_str()
        ),
        (Some(2), Some("failed")),
        "{releases:#}"
    );
    assert_only(&server, 1);
}

#[test]
fn sticky_assignment_then_promote_and_abort_by_hand() {
    let server = Server::start();
    let config = format!(
        "strategy = \"canary\"\nsteps = [{{ weight = 50, pause = \"10m\" }}]\n{FAST_ANALYSIS}"
    );
    let app = App::builder("sticky").deploy(&config).build();
    assert_eq!(server.deploy(&app, &[]), 1);

    let mut deploy = server
        .cmd(&["deploy", app.path().to_str().unwrap(), "--pause"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eventually!(
        server.status()["apps"][0]["progressive"]["waiting_for_promote"] == true,
        Duration::from_secs(30),
        "the canary never paused at its first step: {:#}",
        server.status()
    );
    let status = server.status();
    let p = &status["apps"][0]["progressive"];
    assert_eq!(
        (
            p["step"].as_u64(),
            p["steps"].as_u64(),
            p["candidate"]["weight"].as_u64()
        ),
        (Some(1), Some(1), Some(50)),
        "{p:#}"
    );

    // Clients keep the release they were first given.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (status, head, _) = get_with(server.proxy, "/", &[]);
        assert_eq!(status, 200);
        let cookie = header(&head, "set-cookie").expect("a new client gets a sticky cookie");
        let pair = cookie.split(';').next().unwrap().to_owned();
        assert!(pair.starts_with("wharf_sticky="), "{cookie}");
        let release: i64 = pair["wharf_sticky=".len()..].parse().unwrap();
        seen.insert(release);
        for _ in 0..20 {
            let (status, head, _) = get_with(server.proxy, "/", &[("Cookie", &pair)]);
            assert_eq!(status, 200);
            assert_eq!(
                header(&head, "x-hello-release").and_then(|r| r.parse().ok()),
                Some(release),
                "a sticky client moved"
            );
        }
    }
    assert_eq!(seen.len(), 2, "both releases get clients at 50%: {seen:?}");

    // The explicit override, with the server's token, pins a request to a release.
    let token = std::fs::read_to_string(server.data.join("token")).unwrap();
    for release in [1, 2, 1, 2] {
        let (status, head, _) = get_with(
            server.proxy,
            "/",
            &[
                ("X-Wharf-Release", &release.to_string()),
                ("X-Wharf-Token", token.trim()),
            ],
        );
        assert_eq!(status, 200);
        assert_eq!(
            header(&head, "x-hello-release").and_then(|r| r.parse().ok()),
            Some(release)
        );
        assert!(
            header(&head, "set-cookie").is_none(),
            "an overridden request is not assigned"
        );
    }
    // Without the right token the header is ignored (and never reaches the app).
    let (_, head, _) = get_with(
        server.proxy,
        "/",
        &[("X-Wharf-Release", "1"), ("X-Wharf-Token", "wrong")],
    );
    assert!(
        header(&head, "set-cookie").is_some(),
        "a request with a wrong token is routed like any other"
    );

    server.ok(&["promote"]);
    assert!(
        deploy.wait().unwrap().success(),
        "the promoted deploy failed"
    );
    assert_eq!(live_release(&server), 2);
    assert_only(&server, 2);

    // Abort: the new release goes, the stable one stays.
    let deploy = server
        .cmd(&["deploy", app.path().to_str().unwrap(), "--pause"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eventually!(
        server.status()["apps"][0]["progressive"]["waiting_for_promote"] == true,
        Duration::from_secs(30),
        "the second canary never paused"
    );
    server.ok(&["abort"]);
    let out = deploy.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sticky release 3 was rolled back by hand (`wharf abort`)"),
        "{stderr}"
    );
    assert_eq!(live_release(&server), 2);
    assert_only(&server, 2);
    let out = server.wharf(&["promote"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no canary of sticky is waiting"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
