//! `wharf import compose|kamal` as a person runs it: in the app's directory,
//! writing wharf.toml, warnings on stderr, exit codes, `--json`.
//! (The mapping itself is tested fixture by fixture in `wharf-import`.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wharf(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .current_dir(dir)
        .env_remove("WHARF_DATA")
        .output()
        .unwrap()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wharf-import/tests/fixtures")
        .join(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A temp app directory holding the web + worker + Postgres compose file.
fn compose_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("compose/web-postgres-worker/docker-compose.yml"),
        dir.path().join("docker-compose.yml"),
    )
    .unwrap();
    dir
}

#[test]
fn import_compose_writes_wharf_toml_and_warns_on_stderr() {
    let app = compose_app();
    let out = wharf(app.path(), &["import", "compose"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));

    let written = std::fs::read_to_string(app.path().join("wharf.toml")).unwrap();
    assert!(written.contains("name = \"shop\""), "{written}");
    assert!(written.contains("[accessories.db]"), "{written}");
    // Warnings: `warning: file:line:col: key: message`, one line each.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert!(
        warnings.contains(&"warning: docker-compose.yml:15:5: services.web.depends_on: nothing to change: wharf boots accessories before the app, runs the release command, then starts the processes of a release together"),
        "{stderr}"
    );
    assert_eq!(
        warnings.len(),
        written_warning_count(&written),
        "{stderr}\n{written}"
    );
    assert!(
        stderr.contains("wrote wharf.toml from docker-compose.yml"),
        "{stderr}"
    );

    // What it wrote is a valid wharf.toml.
    let check = wharf(app.path(), &["config", "check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

/// The count the header of the written file states.
fn written_warning_count(toml: &str) -> usize {
    let line = toml
        .lines()
        .find(|l| l.starts_with("# The import printed "))
        .unwrap();
    line.trim_start_matches("# The import printed ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn import_refuses_to_overwrite_without_force() {
    let app = compose_app();
    std::fs::write(app.path().join("wharf.toml"), "# mine\n").unwrap();

    let out = wharf(app.path(), &["import", "compose"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: wharf.toml already exists; pass --force to overwrite it"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(app.path().join("wharf.toml")).unwrap(),
        "# mine\n"
    );

    let out = wharf(app.path(), &["import", "compose", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(app.path().join("wharf.toml")).unwrap();
    assert!(written.contains("name = \"shop\""), "{written}");
}

#[test]
fn import_json_prints_the_toml_and_the_warnings() {
    let app = compose_app();
    let out = wharf(
        app.path(),
        &["import", "compose", "--json", "--stdout", "--name", "store"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning:"),
        "{}",
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let toml = json["toml"].as_str().unwrap();
    assert!(toml.contains("name = \"store\""), "{toml}");
    assert!(json["written"].is_null());
    let warnings = json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), written_warning_count(toml));
    let first = &warnings[0];
    assert_eq!(first["location"], "docker-compose.yml:10:9");
    assert_eq!(first["key"], "services.web.ports[0]");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("host port 3000")
    );
    // --stdout wrote nothing.
    assert!(!app.path().join("wharf.toml").exists());
}

#[test]
fn import_stdout_prints_the_toml() {
    let app = compose_app();
    let out = wharf(app.path(), &["import", "compose", "--stdout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(
        toml.starts_with("# Imported from docker-compose.yml"),
        "{toml}"
    );
    assert!(text(&out.stderr).contains("warning: "));
    assert!(!app.path().join("wharf.toml").exists());
}

#[test]
fn import_kamal_from_its_default_path() {
    let app = tempfile::tempdir().unwrap();
    std::fs::create_dir(app.path().join("config")).unwrap();
    std::fs::copy(
        fixture("kamal/roles-proxy/config/deploy.yml"),
        app.path().join("config/deploy.yml"),
    )
    .unwrap();
    let out = wharf(app.path(), &["import", "kamal", "--out", "."]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: config/deploy.yml:28:7: servers.admin.proxy.ssl: "),
        "{stderr}"
    );
    let written = std::fs::read_to_string(app.path().join("wharf.toml")).unwrap();
    assert!(
        written.contains(
            "hosts = [\"shop.acme.test\", \"www.shop.acme.test\"]\npath = \"/\"\ntls = true\n"
        ),
        "{written}"
    );
}

#[test]
fn missing_or_broken_files_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    let out = wharf(empty.path(), &["import", "kamal"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no config/deploy.yml in "), "{stderr}");
    assert!(stderr.contains("`wharf import kamal FILE`"), "{stderr}");

    let out = wharf(empty.path(), &["import", "compose"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("no docker-compose.yml, compose.yml, compose.yaml, docker-compose.yaml in "),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(
        empty.path().join("compose.yaml"),
        "services:\n  web:\n    build: .\n   ports: [1]\n",
    )
    .unwrap();
    let out = wharf(empty.path(), &["import", "compose"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: compose.yaml:4:"), "{stderr}");
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(!empty.path().join("wharf.toml").exists());
}

/// `--json` prints its result on stdout when the import fails too, with
/// the error, and keeps the exit code.
#[test]
fn import_json_reports_a_failure_on_stdout() {
    let app = tempfile::tempdir().unwrap();
    std::fs::create_dir(app.path().join("config")).unwrap();
    std::fs::copy(
        fixture("kamal/placeholder/config/deploy.yml"),
        app.path().join("config/deploy.yml"),
    )
    .unwrap();
    let out = wharf(app.path(), &["import", "kamal", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    let error = json["error"].as_str().unwrap();
    assert!(
        error.starts_with("config/deploy.yml:10:7: `servers.web[0]` is `192.168.0.1`"),
        "{error}"
    );
    assert!(json["toml"].is_null());
    assert!(text(&out.stderr).contains("error: config/deploy.yml:10:7:"));
    assert!(!app.path().join("wharf.toml").exists());
}

/// `--service` picks the app, the `.env` next to the compose file gives
/// `${VAR}` their values, and the result says it passes `config check`.
#[test]
fn import_compose_reads_dotenv_and_takes_service() {
    let app = tempfile::tempdir().unwrap();
    for f in ["docker-compose.yml", ".env", "docker.env", "redis.conf"] {
        std::fs::copy(
            fixture(&format!("compose/env-files/{f}")),
            app.path().join(f),
        )
        .unwrap();
    }
    let out = wharf(app.path(), &["import", "compose", "--json", "--stdout"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert!(json["check"].is_null(), "{}", json["check"]);
    let toml = json["toml"].as_str().unwrap();
    assert!(
        toml.contains("image = \"docker.io/wikiteam/wiki:0.81.1\""),
        "{toml}"
    );

    let out = wharf(
        app.path(),
        &["import", "compose", "--stdout", "--service", "worker"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(
        toml.contains("# The app is the service `worker` (named with `--service`)"),
        "{toml}"
    );

    let out = wharf(app.path(), &["import", "compose", "--service", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("has no service `nope`"),
        "{}",
        text(&out.stderr)
    );
}
