//! The durable job queue, end to end with the real binary: deploys sent
//! at once run one at a time per app and the newest waiting one wins (the
//! one it replaces is told so); a cancel stops a running deploy before its
//! switch and the old release keeps serving; a kill -9 mid-job, then a
//! restart, ends the interrupted job (recovery brought back what served)
//! and runs the one that waited after it.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{App, Server, get, live_release};

/// An app whose instances take `delay` to become healthy, so a deploy
/// stays running long enough to be raced.
fn slow_app(name: &str, delay: &str) -> App {
    let app = App::builder(name).build();
    app.write_config(&format!(
        r#"name = "{name}"

[processes.web]
command = "{bin}"
env = {{ HELLO_STARTUP_DELAY = "{delay}" }}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "100ms" }}

[deploy]
health_timeout = "30s"
drain_timeout = "1s"
"#,
        bin = support::hello_bin().display()
    ));
    app
}

/// `wharf deploy DIR --wait --json` in the background.
fn deploy_in_background(server: &Server, app: &App) -> Child {
    server
        .cmd(&["deploy", app.path().to_str().unwrap(), "--wait", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn jobs(server: &Server) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&server.ok(&["jobs", "--json", "--limit", "50"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn job(server: &Server, id: i64) -> serde_json::Value {
    jobs(server)
        .into_iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("no job {id}"))
}

/// Whether job `id` exists and is in `state`.
fn job_is(server: &Server, id: i64, state: &str) -> bool {
    jobs(server)
        .iter()
        .any(|j| j["id"] == id && j["state"] == state)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_deploys_at_once_run_the_first_and_the_newest() {
    let server = Server::start();
    let app = slow_app("queued", "1500ms");
    let first = deploy_in_background(&server, &app);
    wait_for("the first deploy to run", Duration::from_secs(20), || {
        jobs(&server).iter().any(|j| j["state"] == "running")
    });
    let second = deploy_in_background(&server, &app);
    wait_for(
        "the second deploy to queue",
        Duration::from_secs(10),
        || jobs(&server).len() == 2,
    );
    let third = deploy_in_background(&server, &app);

    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    let third = third.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("queued as job 2, behind job 1")
            && stderr.contains("job 2 was superseded by job 3"),
        "{stderr}"
    );
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(
        report["release"], 2,
        "the newest deploy made the second release"
    );
    assert_eq!(live_release(&server), 2);
    assert_eq!(get(server.proxy, "/").1, Some(2));

    let states: Vec<(i64, String)> = jobs(&server)
        .iter()
        .map(|j| {
            (
                j["id"].as_i64().unwrap(),
                j["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (3, "succeeded".to_owned()),
            (2, "superseded".to_owned()),
            (1, "succeeded".to_owned())
        ]
    );
    assert_eq!(job(&server, 2)["superseded_by"], 3);
    // Without --wait, a deploy queued behind another returns at once.
    let running = deploy_in_background(&server, &app);
    wait_for("a running deploy", Duration::from_secs(20), || {
        jobs(&server).iter().any(|j| j["state"] == "running")
    });
    let out = server.wharf(&["deploy", app.path().to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is queued behind job 4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    running.wait_with_output().unwrap();
    wait_for("the queued deploy", Duration::from_secs(30), || {
        job_is(&server, 5, "succeeded")
    });
    let logs = server.ok(&["job", "logs", "5"]);
    assert!(logs.contains("switch traffic"), "{logs}");
}

#[test]
fn cancelling_a_running_deploy_keeps_the_old_release_serving() {
    let server = Server::start();
    // The second release's instances take 20 s to become healthy: the
    // cancel must not wait for the health checks to end.
    let app = App::builder("cancelled").build();
    app.write_config(&format!(
        r#"name = "cancelled"

[env]
HELLO_STARTUP_DELAY = "20s"

[processes.web]
command = "{bin}"
http = {{ path = "/" }}
health = {{ path = "/up", interval = "100ms" }}

[deploy]
health_timeout = "30s"
drain_timeout = "1s"
"#,
        bin = support::hello_bin().display()
    ));
    server.deploy(&app, &["--env", "HELLO_STARTUP_DELAY=0s"]);
    let deploying = deploy_in_background(&server, &app);
    wait_for("the deploy to run", Duration::from_secs(20), || {
        job_is(&server, 2, "running")
    });
    wait_for("its health checks", Duration::from_secs(20), || {
        server.ok(&["job", "logs", "2"]).contains("health checks")
    });
    let asked = Instant::now();
    let said = server.wharf(&["job", "cancel", "2"]);
    assert!(
        said.status.success(),
        "{}",
        String::from_utf8_lossy(&said.stderr)
    );
    let out = deploying.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cancelled on request before it switched"),
        "{stderr}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the cancel took {:?}",
        asked.elapsed()
    );
    assert_eq!(job(&server, 2)["state"], "cancelled");
    assert_eq!(live_release(&server), 1);
    assert_eq!(get(server.proxy, "/").1, Some(1));
    // Nothing of the cancelled release keeps running.
    wait_for("only release 1's instance", Duration::from_secs(10), || {
        support::owned_instances(&server.data)
            .iter()
            .all(|i| i.contains("-r1-"))
    });
    let out = server.wharf(&["job", "cancel", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already ended (cancelled)"));
}

#[test]
fn kill_9_mid_job_then_restart_ends_it_and_runs_the_waiting_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_on(&data, &[]);
    let app = slow_app("resumed", "3s");
    server.deploy(&app, &[]);
    let deploying = deploy_in_background(&server, &app);
    wait_for("the deploy to run", Duration::from_secs(20), || {
        job_is(&server, 2, "running")
    });
    let out = server.wharf(&["deploy", app.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(job(&server, 3)["state"], "queued");
    server.kill9();
    let _ = deploying.wait_with_output();

    let server = Server::start_on(&data, &[]);
    wait_for("both jobs to end", Duration::from_secs(60), || {
        let jobs = jobs(&server);
        jobs.iter().all(|j| {
            j["state"] == "succeeded" || j["state"] == "failed" || j["state"] == "cancelled"
        })
    });
    // Taken over by the new server, and ended: recovery brought back
    // release 1; the deploy is not run a second time.
    let resumed = job(&server, 2);
    assert_eq!(resumed["state"], "failed", "{resumed:#}");
    assert_eq!(resumed["attempts"], 2, "{resumed:#}");
    assert!(
        resumed["error"]
            .as_str()
            .unwrap()
            .contains("interrupted by a server restart before it switched"),
        "{resumed:#}"
    );
    assert!(
        resumed["error"]
            .as_str()
            .unwrap()
            .contains("release 1 was restored and serves"),
        "{resumed:#}"
    );
    // Recovery is resuming the job: its first attempt's steps, then the
    // restore its second attempt ran; no separate restore job.
    let view: serde_json::Value =
        serde_json::from_str(&server.ok(&["job", "show", "2", "--json"])).unwrap();
    let steps = view["steps"].as_array().unwrap();
    let step = |attempt: i64, name: &str| {
        steps
            .iter()
            .find(|s| s["attempt"] == attempt && s["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no step {name} of attempt {attempt}: {view:#}"))
    };
    assert_eq!(step(1, "deploy ")["state"], "succeeded", "{view:#}");
    assert!(
        steps
            .iter()
            .any(|s| s["attempt"] == 1 && s["state"] == "interrupted"),
        "the step the crash cut is recorded as interrupted: {view:#}"
    );
    assert_eq!(step(2, "restore ")["state"], "succeeded", "{view:#}");
    assert_eq!(step(2, "switch traffic")["state"], "succeeded", "{view:#}");
    assert!(
        jobs(&server).iter().all(|j| j["kind"] != "restore"),
        "the resumed job carries the restore"
    );
    assert_eq!(job(&server, 3)["state"], "succeeded");
    // The waiting job ran after the resumed one: it made the last release.
    let live = live_release(&server);
    assert!(live >= 3, "release {live} serves, not the waiting job's");
    assert_eq!(get(server.proxy, "/").1, Some(live));
    assert!(
        job(&server, 3)["started_ms"].as_i64() >= job(&server, 2)["finished_ms"].as_i64(),
        "the waiting job started before the resumed one ended"
    );
}

/// `wharf run` is a job too: its output on stdout and stderr, its exit code
/// as wharf's and the job's, the env of the process it names, and it runs
/// beside a running deploy instead of waiting for it.
#[test]
fn a_one_off_run_is_a_job_beside_a_running_deploy() {
    let server = Server::start();
    let app = slow_app("oneoff", "3s");
    app.write_config(&format!(
        r#"name = "oneoff"

[processes.web]
command = "{bin}"
env = {{ HELLO_STARTUP_DELAY = "3s" }}
http = {{ path = "/" }}
health = {{ path = "/up", interval = "100ms" }}

[processes.worker]
command = "sleep 1000"
env = {{ QUEUE = "mail" }}

[deploy]
health_timeout = "30s"
drain_timeout = "1s"
"#,
        bin = support::hello_bin().display()
    ));
    server.deploy(&app, &[]);
    let deploying = deploy_in_background(&server, &app);
    wait_for("the deploy to run", Duration::from_secs(20), || {
        job_is(&server, 2, "running")
    });

    let out = server.wharf(&[
        "run",
        "--process",
        "worker",
        "--",
        "sh",
        "-c",
        "echo queue=$QUEUE; echo oops >&2; exit 3",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "queue=mail", "{stderr}");
    assert!(stderr.contains("oops"), "{stderr}");
    // It did not wait for the deploy, which is still running.
    assert!(job_is(&server, 2, "running"));
    let run = jobs(&server)
        .into_iter()
        .find(|j| j["kind"] == "run")
        .expect("a run job");
    assert_eq!(run["state"], "failed", "{run:#}");
    assert_eq!(run["exit_code"], 3, "{run:#}");
    let logs = server.ok(&["job", "logs", &run["id"].to_string()]);
    assert!(
        logs.contains("queue=mail") && logs.contains("oops"),
        "{logs}"
    );

    let out = server.wharf(&["run", "--process", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no process \"nope\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = deploying.wait_with_output();
}
