//! kill -9 of the server at each step of a deploy, then a restart: exactly
//! one release serves, the store is consistent, nothing is orphaned.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use support::{App, Server, get, owned_instances, owned_processes};

#[test]
fn kill_9_at_each_deploy_step_then_restart_converges() {
    // (step at which release 2's deploy dies, release serving after restart)
    let cases = [
        ("preparing", 1),
        ("releasing", 1),
        ("starting", 1),
        ("health_checking", 1),
        ("switched", 2),
        ("draining", 2),
        ("stopping_old", 2),
    ];
    for (step, expect) in cases {
        crash_at(step, expect);
    }
}

#[test]
fn kill_9_during_a_canary_step_then_restart_serves_the_stable_release() {
    let app = App::builder("crashy")
        .deploy("strategy = \"canary\"\nsteps = [{ weight = 50, pause = \"10m\" }]")
        .build();
    crash_with(&app, "canary", 1);
}

fn crash_at(step: &str, expect: i64) {
    let app = App::builder("crashy")
        .release_command("echo release $WHARF_RELEASE")
        .build();
    crash_with(&app, step, expect);
}

fn crash_with(app: &App, step: &str, expect: i64) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let failpoint = format!("{step}@2");
    let mut first = Server::start_on(&data, &[("WHARF_FAILPOINT", &failpoint)]);
    assert_eq!(first.deploy(app, &[]), 1, "[{step}]");
    let mut deploy = first
        .cmd(&["deploy", app.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    first.wait_for_log("failpoint reached", Duration::from_secs(60));
    first.kill9();
    let cli = deploy.wait().unwrap();
    assert!(
        !cli.success(),
        "[{step}] the CLI must not report success when the server died"
    );

    let mut second = Server::start_on(&data, &[]);
    let status = second.status();
    let app_status = &status["apps"][0];
    assert_eq!(
        app_status["release"].as_i64(),
        Some(expect),
        "[{step}] serving release after restart: {status:#}"
    );
    assert!(
        app_status["deploying"].is_null(),
        "[{step}] no deploy is left open: {status:#}"
    );
    let instances: BTreeSet<String> = app_status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["release"].as_i64(), Some(expect), "[{step}] {i:#}");
            assert_eq!(i["state"], "healthy", "[{step}] {i:#}");
            i["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(instances.len(), 2, "[{step}] {status:#}");
    // Every process the data dir owns is one the store knows: no orphans.
    let running = owned_instances(&second.data);
    assert_eq!(
        running, instances,
        "[{step}] processes running vs instances recorded"
    );
    for _ in 0..10 {
        assert_eq!(get(second.proxy, "/"), (200, Some(expect)), "[{step}]");
    }
    let events = second.ok(&["events", "--json"]);
    assert!(
        events.contains("interrupted"),
        "[{step}] the interrupted deploy is recorded: {events}"
    );
    // And the app can be deployed again (a canary is promoted by hand).
    let mut again = second
        .cmd(&["deploy", app.path().to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut promoted = false;
    while again.try_wait().unwrap().is_none() {
        if !promoted && !second.status()["apps"][0]["progressive"].is_null() {
            second.ok(&["promote"]);
            promoted = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = again.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "[{step}] the deploy after the restart failed"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let next = report["release"].as_i64().unwrap();
    assert_eq!(get(second.proxy, "/"), (200, Some(next)), "[{step}]");
    second.stop();
    assert!(
        owned_processes(&data.canonicalize().unwrap()).is_empty(),
        "[{step}] processes left after a clean stop"
    );
}
