//! The CLI's own behaviour: config errors and `config show`, exit codes,
//! `wharf up` in the foreground.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{get, owned_instances, owned_processes, wharf_bin};

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `wharf config show` of an example app, which must succeed.
fn config_show(example: &str) -> String {
    let out = Command::new(wharf_bin())
        .args(["config", "show"])
        .arg(workspace_root().join("examples").join(example))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn config_show_of_the_example_app() {
    insta::assert_snapshot!(config_show("hello"));
}

#[test]
fn config_show_of_the_docker_example_app() {
    insta::assert_snapshot!(config_show("hello-docker"));
}

/// A docker app on a server whose engine is unreachable: the deploy fails
/// naming the socket it tried and how to fix it; process apps are unaffected.
#[test]
fn an_unreachable_docker_engine_is_a_clear_deploy_error() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("no-docker.sock");
    let host = format!("unix://{}", socket.display());
    let server = support::Server::start_on(&tmp.path().join("data"), &[("DOCKER_HOST", &host)]);
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("wharf.toml"),
        "name = \"boxed\"\nruntime = \"docker\"\n[processes.web]\n",
    )
    .unwrap();
    let out = server.wharf(&["deploy", app.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("could not reach the Docker engine at {host}"))
            && stderr.contains("Set DOCKER_HOST"),
        "unclear error:\n{stderr}"
    );
}

#[test]
fn config_errors_are_all_reported_with_locations_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        r#"name = "Bad_Name"

[processes.web]
comand = "bin/web"
instances = 0
http = { path = "api" }
health = { interval = "soon" }

[deploy]
retain = 5
drain = "10s"
"#,
    )
    .unwrap();
    let out = Command::new(wharf_bin())
        .args(["config", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&dir.path().display().to_string(), "[APP]");
    insta::assert_snapshot!(stderr);
}

#[test]
fn commands_without_a_server_say_so_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(wharf_bin())
        .args(["status"])
        .env("WHARF_DATA", dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "error: no wharf server is running on {}",
            dir.path().display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("start one with `wharf up` or `wharf server`"),
        "{stderr}"
    );
}

#[test]
fn up_serves_the_app_and_ctrl_c_stops_everything_even_with_its_terminal_gone() {
    let app = support::App::builder("upapp").instances(1).build();
    let data = app.path().join(".wharf");
    let mut child = Command::new(wharf_bin())
        .args(["up", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg(app.path())
        .env("HOME", app.path())
        .env_remove("WHARF_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed, with its instances, even when an assertion below fails.
    struct KillOnDrop(std::process::Child, std::path::PathBuf);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            if let Ok(data) = self.1.canonicalize() {
                for (pid, _) in owned_processes(&data) {
                    support::signal(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
    }
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut child = KillOnDrop(child, data.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    // The reader stops (closing the pipe) after the "is live" line, and
    // stdout is closed from the start: like a terminal that went away, which
    // must not keep Ctrl-C from stopping everything.
    drop(child.0.stdout.take());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let live = line.contains(" is live at ");
            let _ = tx.send(line);
            if live {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'is live' line; saw:\n{}", seen.join("\n")));
        if let Some(url) = line.strip_prefix("upapp is live at ") {
            break url.to_owned();
        }
        seen.push(line);
    };
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/"), (200, Some(1)));
    assert_eq!(owned_instances(&data.canonicalize().unwrap()).len(), 1);

    support::signal(child.0.id(), nix::sys::signal::Signal::SIGINT);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        owned_processes(&data.canonicalize().unwrap()).is_empty(),
        "instances left after Ctrl-C"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the proxy still listens after Ctrl-C"
    );
}
