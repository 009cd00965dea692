//! End to end on the docker runtime: the real `wharf` binary, this
//! machine's real Docker engine, images built `FROM scratch` from the
//! statically linked example app. These tests fail (never skip) when the
//! engine is unreachable. They run one at a time ([`serial`]) and remove
//! every container, image, volume and network they made ([`Cleanup`]).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::docker::{Cleanup, DockerApp, kv_app, put, read, serial};
use support::{Load, Server, assert_serves, get_full, live_release, tail};

/// A unique app name per test and run (apps of two test runs must never
/// share images, networks or volumes).
fn app_name(test: &str) -> String {
    format!("d{}-{test}", std::process::id())
}

#[test]
fn twenty_deploys_and_five_rollbacks_on_docker_drop_nothing() {
    let _serial = serial();
    let name = app_name("zero");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let app = DockerApp::new(&name, "", "");
    assert_eq!(server.deploy_dir(app.path(), &[]), 1);
    assert_serves(&server, 1);

    let (report, live) = support::twenty_deploys_and_five_rollbacks(&server, app.path());
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
    assert!(report.ok > 300, "too little load: {}", report.ok);

    // Exactly the live release's two containers run.
    let running = guard.engine.running_instances(&server.data);
    let mut ids: Vec<&String> = running.keys().collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            &format!("{name}-r{live}-web-1"),
            &format!("{name}-r{live}-web-2")
        ],
        "containers of old releases are left"
    );
}

#[test]
fn failing_release_command_and_health_check_keep_the_old_release_serving() {
    let _serial = serial();
    let name = app_name("fail");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let app = DockerApp::new(&name, "", "");
    assert_eq!(server.deploy_dir(app.path(), &[]), 1);
    let before = guard.engine.running_instances(&server.data);
    let load = Load::start(server.proxy, 2, 1);

    // A release command that fails: it runs in a one-off container of the
    // new image, before any instance of it starts.
    let failing = DockerApp::new(
        &name,
        r#"release_command = "/hello probe http://127.0.0.1:9/nothing-listens""#,
        "",
    );
    let out = server.wharf(&["deploy", failing.path_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "release command of {name} release 2 failed (exit code 1)"
        )) && stderr.contains("no instance was started, release 1 keeps serving"),
        "unclear failure:\n{stderr}"
    );

    // A release that never gets healthy.
    let out = server.wharf(&["deploy", app.path_str(), "--env", "HELLO_UP_STATUS=503"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{name} release 3: instance {name}-r3-web-"))
            && stderr.contains("status 503")
            && stderr.contains("release 1 keeps serving"),
        "unclear failure:\n{stderr}"
    );

    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
    assert_eq!(live_release(&server), 1);
    assert_serves(&server, 1);
    assert_eq!(
        guard.engine.running_instances(&server.data),
        before,
        "the serving containers changed, or the failed releases' are left"
    );
}

#[test]
fn an_accessory_volume_keeps_data_across_deploys_and_restarts() {
    let _serial = serial();
    let name = app_name("kv");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let app = kv_app(&name, false);

    // The first deploy builds and boots the accessory (its build streamed
    // as progress); the app reaches it by name.
    let out = server.wharf(&["deploy", app.path_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("Successfully tagged wharf/{name}:accessory-kv")),
        "{stderr}"
    );
    assert_eq!(live_release(&server), 1);
    let put = put(server.proxy, "/kv/greeting", "hello from release 1");
    assert_eq!(put, 204, "writing through the app failed");
    let kv_container = format!("wharf-{name}-kv");
    let kv_id = guard.engine.containers(&server.data)[&kv_container]
        .0
        .clone();

    for n in 2..=4 {
        assert_eq!(
            server.deploy_dir(app.path(), &["--env", &format!("HELLO_MESSAGE={n}")]),
            n
        );
        assert_eq!(
            read(server.proxy, "/kv/greeting"),
            (200, "hello from release 1".into())
        );
    }
    assert_eq!(
        guard.engine.containers(&server.data)[&kv_container].0,
        kv_id,
        "deploys must not recreate an unchanged accessory"
    );

    // Restart the accessory: the named volume keeps the data.
    // By the app's name, like every other command (the server's only app).
    server.ok(&["accessory", "stop", "kv"]);
    assert_eq!(
        read(server.proxy, "/kv/greeting").0,
        502,
        "stopped store answers"
    );
    // A boot rebuilds the image (from the engine's cache: the same image,
    // so the container is kept), its output shown as it comes.
    let out = server.wharf(&["accessory", "boot", "kv", "--dir", app.path_str(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("| Successfully tagged wharf/{name}:accessory-kv")),
        "{stderr}"
    );
    let booted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(booted["state"], "running", "{booted:#}");
    assert_eq!(
        guard.engine.containers(&server.data)[&kv_container].0,
        kv_id
    );
    assert_eq!(booted["health"], "healthy", "{booted:#}");
    assert_eq!(
        read(server.proxy, "/kv/greeting"),
        (200, "hello from release 1".into())
    );

    let listed: serde_json::Value =
        serde_json::from_str(&server.ok(&["accessory", "list", "--app", &name, "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "kv", "{listed:#}");
    let logs = server.ok(&["accessory", "logs", "kv"]);
    assert!(
        logs.contains("greeting"),
        "the store's log shows the write:\n{logs}"
    );

    // `remove --volumes` deletes the data for good.
    server.ok(&["accessory", "remove", "kv", "--volumes"]);
    assert!(
        !guard
            .engine
            .containers(&server.data)
            .contains_key(&kv_container)
    );
    server.ok(&["accessory", "boot", "kv", "--app", &name]);
    assert_eq!(
        read(server.proxy, "/kv/greeting").0,
        404,
        "the volume was removed"
    );
}

#[test]
fn kill_9_mid_deploy_then_restart_adopts_the_serving_containers() {
    let _serial = serial();
    let name = app_name("crash");
    let guard = Cleanup::new(&[&name], &[]);
    let data = guard.data.clone();
    let mut server = Server::start_on(&data, &[("WHARF_FAILPOINT", "health_checking@2")]);
    let app = DockerApp::new(&name, "", "");
    assert_eq!(server.deploy_dir(app.path(), &[]), 1);
    let serving = guard.engine.running_instances(&server.data);
    assert_eq!(serving.len(), 2);

    // Release 2's containers are up and being health-checked when the
    // server dies.
    let mut deploy = server
        .cmd(&["deploy", app.path_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    server.wait_for_log("failpoint reached", Duration::from_secs(60));
    server.kill9();
    let _ = deploy.kill();
    let _ = deploy.wait();
    let during = guard.engine.running_instances(&server.data);
    assert!(
        during.keys().any(|i| i.contains("-r2-")),
        "release 2 should have been running at the kill: {during:?}"
    );

    let server = Server::start_on(&data, &[]);
    let load = Load::start(server.proxy, 2, 1);
    assert_eq!(live_release(&server), 1);
    assert_serves(&server, 1);
    // The serving containers were adopted (same ids), release 2's removed.
    assert_eq!(
        guard.engine.running_instances(&server.data),
        serving,
        "not exactly the serving release's original containers"
    );
    let orphans: Vec<String> = guard
        .engine
        .containers(&server.data)
        .into_keys()
        .filter(|n| n.contains("-r2-"))
        .collect();
    assert!(orphans.is_empty(), "orphan containers: {orphans:?}");
    let events = server.ok(&["events", "--json"]);
    assert!(events.contains("interrupted"), "{events}");

    // And the app deploys again.
    assert_eq!(server.deploy_dir(app.path(), &[]), 3);
    let report = load.finish();
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.failures);
}

#[test]
fn secrets_never_appear_in_logs_events_answers_or_the_store() {
    let _serial = serial();
    let secret = format!("s3cr3t-{}-{}", std::process::id(), fastrand_u64());
    let file_secret = format!("f1le-{}-{}", std::process::id(), fastrand_u64());
    let name = app_name("secret");
    let guard = Cleanup::new(&[&name], &[]);
    let secret_file = guard.scratch().join("token");
    std::fs::write(&secret_file, format!("{file_secret}\n")).unwrap();
    let server = Server::start_on(&guard.data, &[("TEST_HELLO_TOKEN", &secret)]);
    let app = DockerApp::new(
        &name,
        "release_command = \"/hello probe http://127.0.0.1:9/\"",
        &format!(
            "[secrets]\nHELLO_TOKEN = {{ env = \"TEST_HELLO_TOKEN\" }}\nHELLO_FILE_TOKEN = {{ file = {:?} }}\n",
            secret_file.display()
        ),
    );
    // A failing release command: its error and output, without the values…
    let out = server.wharf(&["deploy", app.path_str()]);
    assert_eq!(out.status.code(), Some(1));
    let mut seen = String::from_utf8_lossy(&out.stderr).into_owned();
    // …then a good release, whose instances have both secrets.
    std::fs::write(
        app.path().join("wharf.toml"),
        std::fs::read_to_string(app.path().join("wharf.toml"))
            .unwrap()
            .replace("release_command = \"/hello probe http://127.0.0.1:9/\"", ""),
    )
    .unwrap();
    assert_eq!(server.deploy_dir(app.path(), &[]), 2);
    assert_eq!(get_full(server.proxy, "/has-env/HELLO_TOKEN").0, 200);
    assert_eq!(get_full(server.proxy, "/has-env/HELLO_FILE_TOKEN").0, 200);
    // Rolling back to the failed release is refused, naming it, not its env.
    let out = server.wharf(&["rollback", "1"]);
    assert_eq!(out.status.code(), Some(1));
    seen.push_str(&String::from_utf8_lossy(&out.stderr));

    for args in [
        &["status", "--json"][..],
        &["events", "--json", "-n", "1000"],
        &["releases", "--json"],
        &["logs", "--json", "-n", "10000"],
        &["config", "show", app.path_str()],
        &["config", "show", app.path_str(), "--json"],
    ] {
        let out = server.wharf(args);
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let shown = server.ok(&["config", "show", app.path_str()]);
    assert!(
        shown.contains("# [secret]"),
        "config show marks secrets:\n{shown}"
    );
    seen.push_str(&server.log_text());
    // Every file the server wrote: its log, the store (SQLite pages, WAL),
    // the app's log files, release dirs.
    for file in walk(&server.data) {
        seen.push_str(&String::from_utf8_lossy(
            &std::fs::read(&file).unwrap_or_default(),
        ));
    }
    for value in [&secret, &file_secret] {
        assert!(
            !seen.contains(value.as_str()),
            "a secret's value leaked:\n{}",
            tail(&seen, 20)
        );
    }
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

fn fastrand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[test]
fn run_and_exec_use_the_live_release() {
    let _serial = serial();
    let name = app_name("oneoff");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let app = DockerApp::new(&name, "", "");
    // A fixed in-container port (`port`, as imports from compose write it):
    // the app listens on 3000 inside, the proxy reaches it on a host port.
    let toml = std::fs::read_to_string(app.path().join("wharf.toml")).unwrap();
    std::fs::write(
        app.path().join("wharf.toml"),
        toml.replace("memory = \"64MiB\"", "memory = \"64MiB\"\nport = 3000"),
    )
    .unwrap();
    assert_eq!(server.deploy_dir(app.path(), &[]), 1);

    // `run`: a one-off container of the live image, its exit code passed on.
    let out = server.wharf(&["run", "--", "/hello", "probe", "http://127.0.0.1:9/"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("probe"),
        "the command's stderr is shown"
    );
    let out = server.wharf(&["run", "--", "/hello", "probe", "http://web:1/"]);
    assert_eq!(out.status.code(), Some(1));
    let leftovers: Vec<String> = guard
        .engine
        .containers(&server.data)
        .into_keys()
        .filter(|n| n.contains("run-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "run containers are removed: {leftovers:?}"
    );

    // `exec`: inside a running instance, which listens on 3000 there.
    let host_port = server.status()["apps"][0]["instances"][0]["port"]
        .as_u64()
        .unwrap();
    assert_ne!(host_port, 3000, "the host side is an ephemeral port");
    let url = "http://127.0.0.1:3000/up";
    let out = server.wharf(&["exec", "web", "--", "/hello", "probe", url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.wharf(&["exec", "nope", "--", "/hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no process \"nope\""));

    // `--version` names the release and tags its image.
    assert_eq!(
        server.deploy_dir(app.path(), &["--version", "v2.0-test"]),
        2
    );
    let releases: serde_json::Value =
        serde_json::from_str(&server.ok(&["releases", "--json"])).unwrap();
    assert_eq!(releases[0]["revision"], "v2.0-test", "{releases:#}");
    assert!(
        guard
            .engine
            .image_exists(&format!("wharf/{name}:v2.0-test")),
        "the image is tagged with the version"
    );

    // `prune` keeps what rollback needs.
    let pruned: serde_json::Value = serde_json::from_str(&server.ok(&["prune", "--json"])).unwrap();
    assert!(pruned["images"].is_array(), "{pruned:#}");
    assert_eq!(server.rollback(None), 1);
    assert_serves(&server, 1);
}
