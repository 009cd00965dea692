//! End to end, with the real binary: deploys and rollbacks under load,
//! failed health checks, failed release commands.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{App, Load, Server, assert_serves, get, live_release, owned_instances};

#[test]
fn twenty_deploys_and_five_rollbacks_under_load_drop_nothing() {
    let server = Server::start();
    let app = App::builder("zero").instances(2).build();
    assert_eq!(server.deploy(&app, &[]), 1);
    assert_serves(&server, 1);

    let (report, live) = support::twenty_deploys_and_five_rollbacks(&server, app.path());
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
    assert!(
        report.ok > 500,
        "too little load to mean anything: {}",
        report.ok
    );

    // Exactly the live release's instances run; retention kept 3 releases.
    let status = server.status();
    let instances = status["apps"][0]["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert!(
        instances
            .iter()
            .all(|i| i["release"].as_i64() == Some(live) && i["state"] == "healthy"),
        "{instances:#?}"
    );
    let running = owned_instances(&server.data);
    assert_eq!(
        running.len(),
        2,
        "processes of old releases are left: {running:?}"
    );
    let releases: serde_json::Value =
        serde_json::from_str(&server.ok(&["releases", "--json"])).unwrap();
    let retained = releases
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "retained" || r["status"] == "live")
        .count();
    assert_eq!(retained, 3, "{releases:#}");
}

#[test]
fn a_release_that_never_gets_healthy_is_not_switched_to() {
    let server = Server::start();
    let app = App::builder("sick")
        .instances(2)
        .health_timeout("3s")
        .build();
    assert_eq!(server.deploy(&app, &[]), 1);
    let load = Load::start(server.proxy, 2, 1);

    let out = server.wharf(&[
        "deploy",
        app.path().to_str().unwrap(),
        "--env",
        "HELLO_UP_STATUS=503",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sick release 2: instance sick-r2-web-")
            && stderr.contains("did not become healthy within 3s: status 503")
            && stderr.contains("release 1 keeps serving"),
        "unclear failure message:\n{stderr}"
    );
    assert!(
        stderr.contains("last log lines:"),
        "the instance's last log lines are shown:\n{stderr}"
    );

    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
    assert_eq!(live_release(&server), 1);
    assert_serves(&server, 1);
    let running = owned_instances(&server.data);
    assert!(
        running.iter().all(|i| i.starts_with("sick-r1-")),
        "instances of the failed release still run: {running:?}"
    );
}

#[test]
fn a_failing_release_command_aborts_before_any_instance_starts() {
    let server = Server::start();
    let app = App::builder("mig")
        .release_command("echo migrating; test \"$HELLO_MESSAGE\" != broken || exit 3")
        .build();
    assert_eq!(server.deploy(&app, &[]), 1);

    let out = server.wharf(&[
        "deploy",
        app.path().to_str().unwrap(),
        "--env",
        "HELLO_MESSAGE=broken",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("release command of mig release 2 failed (exit code 3); no instance was started, release 1 keeps serving"),
        "{stderr}"
    );
    assert!(
        stderr.contains("migrating"),
        "the command's output is shown:\n{stderr}"
    );
    // No instance of release 2 was ever recorded or started.
    let logs = std::fs::read_dir(server.data.join("apps/mig/logs")).unwrap();
    let names: Vec<String> = logs
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("mig-r2-")),
        "an instance of release 2 started: {names:?}"
    );
    assert_eq!(live_release(&server), 1);
    assert_serves(&server, 1);
    let releases: serde_json::Value =
        serde_json::from_str(&server.ok(&["releases", "--json"])).unwrap();
    assert_eq!(releases[0]["number"], 2);
    assert_eq!(releases[0]["status"], "failed");
}

#[test]
fn a_second_deploy_of_the_same_app_queues_behind_the_running_one() {
    let server = Server::start();
    // A slow release command keeps the first deploy busy.
    let app = App::builder("busy").release_command("sleep 2").build();
    let mut first = server
        .cmd(&["deploy", app.path().to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eventually!(
        server.status()["apps"][0]["deploying"].is_array(),
        Duration::from_secs(20),
        "the first deploy never started"
    );
    // Without --wait: queued, said so, exit 0.
    let out = server.wharf(&["deploy", app.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("job 2 is queued behind job 1")
            && stderr.contains("pass --wait to follow it here"),
        "{stderr}"
    );
    // With --wait, the third replaces the queued second and goes after
    // the first.
    assert_eq!(server.deploy(&app, &["--wait"]), 2);
    assert!(first.wait().unwrap().success());
}

#[test]
fn metrics_count_requests_by_app_release_and_class() {
    let server = Server::start();
    let app = App::builder("metered").instances(1).build();
    server.deploy(&app, &[]);
    for _ in 0..5 {
        assert_eq!(get(server.proxy, "/x").0, 200);
    }
    let (status, _, body) = support::get_full(server.admin, "/metrics");
    assert_eq!(status, 200);
    let line = body
        .lines()
        .find(|l| {
            l.starts_with("wharf_http_requests_total{")
                && l.contains("app=\"metered\"")
                && l.contains("release=\"1\"")
                && l.contains("class=\"2xx\"")
        })
        .unwrap_or_else(|| panic!("no request counter for metered release 1:\n{body}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 5.0, "{line}");
    assert!(
        body.contains("wharf_deploys_total{"),
        "deploys are counted:\n{body}"
    );
    assert!(
        body.contains("wharf_http_request_duration_seconds_bucket{"),
        "latency histogram:\n{body}"
    );
}

#[test]
fn a_crashed_instance_is_restarted_and_serves_again() {
    let server = Server::start();
    let app = App::builder("crashes").instances(2).build();
    server.deploy(&app, &[]);
    let load = Load::start(server.proxy, 2, 1);
    let victim = server.status()["apps"][0]["instances"][0].clone();
    let (id, pid) = (
        victim["id"].as_str().unwrap().to_owned(),
        victim["pid"].as_u64().unwrap() as i32,
    );
    // The whole process group: the shell and the app.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    assert_eventually!(
        {
            let s = server.status();
            let inst = s["apps"][0]["instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == id.as_str())
                .cloned();
            inst.is_some_and(|i| i["state"] == "healthy" && i["pid"].as_u64() != Some(pid as u64))
        },
        Duration::from_secs(20),
        "{id} was not restarted and readmitted: {:#}",
        server.status()
    );
    let events = server.ok(&["events"]);
    assert!(
        events.contains(&format!("instance {id} exited")) && events.contains("restarting in"),
        "{events}"
    );
    // Both instances answer again.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, _, body) = support::get_full(server.proxy, "/who");
        assert_eq!(status, 200, "{body}");
        seen.insert(
            body.split("instance=")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(
        seen.len(),
        2,
        "requests reach both instances again: {seen:?}"
    );
    let report = load.finish();
    // Requests in flight on the killed process at the moment of SIGKILL may
    // fail; none after it (a crashed instance leaves the table at once).
    eprintln!(
        "requests: {} ok, {} failed around the crash",
        report.ok, report.failed
    );
    assert!(
        report.failed <= 3,
        "failed requests: {:#?}",
        report.failures
    );
}
