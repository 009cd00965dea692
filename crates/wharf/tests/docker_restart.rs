//! End to end on the docker runtime, around restarts: `wharf up` stopped
//! (Ctrl-C) or killed (-9) and started again restores the release that was
//! serving — after a rollback, the rolled-back-to one — with its accessory
//! booted first, since the app's health check needs it; it deploys the
//! working tree only when it is not that release's source. Also: an
//! unchanged rebuild comes from the engine's cache, two servers on one
//! engine refuse to share an app name, and `wharf apps remove` takes
//! everything of an app but its volumes (unless asked).
//!
//! Real `wharf` binary, this machine's Docker engine; these tests fail,
//! never skip, without it. One at a time ([`serial`]), cleaned up by
//! [`Cleanup`] pass or fail.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::docker::{Cleanup, Up, cli, kv_app, put, read, serial};
use support::{Server, get, tail};

fn app_name(test: &str) -> String {
    format!("r{}-{test}", std::process::id())
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn up_after_ctrl_c_restores_the_same_release_with_its_accessory() {
    let _serial = serial();
    let name = app_name("up");
    let guard = Cleanup::new(&[&name], &[]);
    let app = kv_app(&name, true);
    let up = Up::start(&app, &guard.data);
    assert_eq!(put(up.proxy, "/kv/k", "kept"), 204);
    let (stderr, stdout) = up.interrupt();
    assert!(
        stderr.contains("stopped accessory kv (its data is kept)"),
        "{stderr}"
    );
    // The build's output was shown once, as the deploy's progress; the
    // log follower shows instances only.
    assert!(stderr.contains("| Step 1/"), "{stderr}");
    assert!(
        !stdout.contains("Step 1/"),
        "build output replayed:\n{stdout}"
    );
    let containers = guard.engine.containers(&guard.data);
    assert_eq!(
        containers[&format!("wharf-{name}-kv")].2,
        "exited",
        "{containers:?}"
    );
    assert!(guard.engine.running_instances(&guard.data).is_empty());

    // The next `up` boots the accessory, then brings release 1 back: the
    // working tree is its source, so nothing is built or deployed.
    let up = Up::start(&app, &guard.data);
    assert!(
        up.took < Duration::from_secs(60),
        "live again after {:?}",
        up.took
    );
    assert_eq!(get(up.proxy, "/"), (200, Some(1)));
    assert_eq!(read(up.proxy, "/kv/k"), (200, "kept".into()));
    let (stderr, _) = up.interrupt();
    assert!(
        stderr.contains(&format!(
            "{name} release 1 was serving when wharf stopped: restoring it"
        )) && stderr.contains("boot accessories")
            && stderr.contains("nothing to deploy"),
        "{stderr}"
    );
    assert!(!stderr.contains("| Step 1/"), "nothing is built:\n{stderr}");
}

#[test]
fn up_after_a_kill_9_with_the_accessory_stopped_restores_the_app() {
    let _serial = serial();
    let name = app_name("kill");
    let guard = Cleanup::new(&[&name], &[]);
    let app = kv_app(&name, true);
    let up = Up::start(&app, &guard.data);
    assert_eq!(put(up.proxy, "/kv/k", "kept"), 204);
    // The database goes away (the app turns unhealthy), then the server
    // dies without stopping anything.
    ok(&cli(&guard.data, &["accessory", "stop", "kv"]));
    let stderr = up.kill9();
    let containers = guard.engine.containers(&guard.data);
    assert_eq!(containers[&format!("wharf-{name}-kv")].2, "exited");
    assert_eq!(
        guard.engine.running_instances(&guard.data).len(),
        2,
        "the instances outlive a killed server:\n{stderr}"
    );

    let up = Up::start(&app, &guard.data);
    assert_eq!(get(up.proxy, "/"), (200, Some(1)));
    assert_eq!(read(up.proxy, "/kv/k"), (200, "kept".into()));
    let status: serde_json::Value =
        serde_json::from_str(&ok(&cli(&guard.data, &["status", "--json"]))).unwrap();
    assert_eq!(status["apps"][0]["state"], "serving", "{status:#}");
    assert_eq!(status["apps"][0]["release"], 1, "{status:#}");
    let events = ok(&cli(&guard.data, &["events"]));
    assert!(
        events.contains("interrupted") || events.contains("restore"),
        "{events}"
    );
    let (stderr, _) = up.interrupt();
    assert!(stderr.contains("restoring it"), "{stderr}");
}

#[test]
fn a_rollback_survives_a_restart_of_up_and_unchanged_sources_build_from_cache() {
    let _serial = serial();
    let name = app_name("back");
    let guard = Cleanup::new(&[&name], &[]);
    let app = kv_app(&name, false);
    let up = Up::start(&app, &guard.data);
    assert_eq!(get(up.proxy, "/"), (200, Some(1)));

    // A deploy of the unchanged tree: every build step from the cache.
    let out = cli(
        &guard.data,
        &["deploy", app.path_str(), "--env", "HELLO_MESSAGE=two"],
    );
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{progress}");
    assert!(progress.contains("| Step 1/"), "{progress}");
    assert!(progress.contains("Using cache"), "{progress}");
    assert!(
        !progress.contains("Running in"),
        "a build step ran again:\n{progress}"
    );
    assert_eq!(get(up.proxy, "/"), (200, Some(2)));
    ok(&cli(&guard.data, &["rollback"]));
    assert_eq!(get(up.proxy, "/"), (200, Some(1)));
    up.interrupt();

    // The rolled-back-to release comes back, and stays.
    let up = Up::start(&app, &guard.data);
    assert_eq!(get(up.proxy, "/"), (200, Some(1)));
    let (stderr, _) = up.interrupt();
    assert!(
        stderr.contains("release 1 was serving when wharf stopped")
            && stderr.contains("nothing to deploy"),
        "{stderr}"
    );

    // --deploy deploys anyway; a changed tree deploys by itself.
    let up = Up::start_with(&app, &guard.data, &["--deploy"]);
    assert_eq!(get(up.proxy, "/"), (200, Some(3)));
    up.interrupt();
    std::fs::write(app.path().join("notes.txt"), "changed").unwrap();
    let up = Up::start(&app, &guard.data);
    assert_eq!(get(up.proxy, "/"), (200, Some(4)));
    let (stderr, _) = up.interrupt();
    assert!(
        stderr.contains("the source has changed since release 3: deploying the working tree"),
        "{stderr}"
    );
}

#[test]
fn two_servers_on_one_engine_refuse_to_share_an_app_name() {
    let _serial = serial();
    let name = app_name("twin");
    let guard = Cleanup::new(&[&name], &[]);
    let first = Server::start_on(&guard.data, &[]);
    let app = support::docker::DockerApp::new(&name, "", "");
    assert_eq!(first.deploy_dir(app.path(), &[]), 1);
    let before = guard.engine.running_instances(&guard.data);

    let second = Server::start_on(&guard.scratch().join("other-data"), &[]);
    let out = second.wharf(&["deploy", app.path_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "network wharf-{name} belongs to the wharf server with data directory {}",
            guard.data.display()
        )) && stderr.contains("rename the app"),
        "{stderr}"
    );
    // The first server's app is untouched.
    assert_eq!(get(first.proxy, "/"), (200, Some(1)));
    assert_eq!(guard.engine.running_instances(&guard.data), before);
}

#[test]
fn apps_remove_takes_everything_but_the_volumes_unless_asked() {
    let _serial = serial();
    let name = app_name("rm");
    let guard = Cleanup::new(&[&name], &[]);
    let server = Server::start_on(&guard.data, &[]);
    let app = kv_app(&name, false);
    assert_eq!(server.deploy_dir(app.path(), &[]), 1);
    assert_eq!(put(server.proxy, "/kv/k", "kept"), 204);

    // Without a terminal to confirm on, it asks for --yes.
    let out = server.wharf(&["apps", "remove", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert_eq!(
        get(server.proxy, "/"),
        (200, Some(1)),
        "nothing was removed"
    );

    let removed: serde_json::Value =
        serde_json::from_str(&server.ok(&["apps", "remove", &name, "--yes", "--json"])).unwrap();
    let volume = format!("wharf-{name}-data");
    assert_eq!(
        removed["kept_volumes"],
        serde_json::json!([volume]),
        "{removed:#}"
    );
    assert!(
        guard.engine.containers(&guard.data).is_empty(),
        "{:?}",
        guard.engine.containers(&guard.data)
    );
    assert!(
        guard.engine.app_images(&name).is_empty(),
        "{:?}",
        guard.engine.app_images(&name)
    );
    assert!(!guard.engine.network_exists(&format!("wharf-{name}")));
    assert!(guard.engine.volume_exists(&volume));
    assert!(!server.data.join("apps").join(&name).exists());
    assert_eq!(server.status()["apps"], serde_json::json!([]));
    assert_eq!(get(server.proxy, "/").0, 404);

    // Deployed again it starts over at release 1, and finds its data.
    assert_eq!(server.deploy_dir(app.path(), &[]), 1);
    assert_eq!(read(server.proxy, "/kv/k"), (200, "kept".into()));
    server.ok(&["apps", "remove", &name, "--volumes", "--yes"]);
    assert!(
        !guard.engine.volume_exists(&volume),
        "{}",
        tail(&server.log_text(), 20)
    );
}
